//! `[pipeline.executor]`: where item-level work runs.
use toml_edit::{Item, Table};

/// Where the items of item-level stages run. Whole stages always run locally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecutorKind {
    #[default]
    Local,
    Slurm,
}

/// `[pipeline.executor]`: the kind, and the Slurm settings (kept with `kind = "local"` too, so
/// that `nasflow run --executor slurm` uses them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Executor {
    pub kind: ExecutorKind,
    pub slurm: SlurmSettings,
}

impl Executor {
    /// The Slurm settings, when items run on Slurm.
    pub fn slurm(&self) -> Option<&SlurmSettings> {
        (self.kind == ExecutorKind::Slurm).then_some(&self.slurm)
    }
}

/// The sbatch options of the array jobs, and how nasflow follows them.
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmSettings {
    /// `--partition`; Slurm's default partition when unset.
    pub partition: Option<String>,
    /// GPUs per item (`--gres=gpu:N`); with 0 items run on CPU.
    pub gpus_per_item: u32,
    /// `--cpus-per-task`, and the threads an item uses.
    pub cpus_per_item: u32,
    /// `--mem`, e.g. "16G".
    pub mem: Option<String>,
    /// `--time`, e.g. "04:00:00" or "1-00:00:00".
    pub time: Option<String>,
    /// At most this many tasks of an array run at once (`--array=0-N%max`).
    pub max_concurrent: Option<u32>,
    /// Further sbatch options, one per element (`["--account=nas", "--qos=long"]`).
    pub sbatch_args: Vec<String>,
    /// How many times a failed task is resubmitted before its item is reported failed.
    pub retries: u32,
    /// Seconds between two looks at the queue (squeue).
    pub poll_seconds: f64,
}

impl Default for SlurmSettings {
    fn default() -> Self {
        SlurmSettings {
            partition: None,
            gpus_per_item: 0,
            cpus_per_item: 1,
            mem: None,
            time: None,
            max_concurrent: None,
            sbatch_args: Vec::new(),
            retries: 2,
            poll_seconds: 10.0,
        }
    }
}

pub const EXECUTOR_KEYS: &[&str] = &[
    "kind",
    "partition",
    "gpus_per_item",
    "cpus_per_item",
    "mem",
    "time",
    "max_concurrent",
    "sbatch_args",
    "retries",
    "poll_seconds",
];

/// A problem with one key of `[pipeline.executor]`, placed by the config parser.
#[derive(Debug, PartialEq)]
pub enum SettingError {
    /// Not a setting (the parser knows its position and the did-you-mean).
    UnknownKey { key: String },
    Invalid {
        key: String,
        message: String,
        help: Option<String>,
    },
}

impl SettingError {
    pub fn key(&self) -> &str {
        match self {
            SettingError::UnknownKey { key } | SettingError::Invalid { key, .. } => key,
        }
    }
}

fn err(key: &str, message: String, help: Option<&str>) -> SettingError {
    SettingError::Invalid {
        key: key.to_string(),
        message,
        help: help.map(str::to_string),
    }
}

/// Reads `[pipeline.executor]`.
pub fn parse(table: &Table) -> Result<Executor, SettingError> {
    let kind = match table.get("kind") {
        None => ExecutorKind::Local,
        Some(item) => match item.as_str() {
            Some("local") => ExecutorKind::Local,
            Some("slurm") => ExecutorKind::Slurm,
            Some(other) => {
                return Err(err(
                    "kind",
                    format!("unknown executor `{other}`"),
                    Some("use kind = \"local\" (the default) or kind = \"slurm\""),
                ))
            }
            None => {
                return Err(err(
                    "kind",
                    "`pipeline.executor.kind` must be a string".into(),
                    None,
                ))
            }
        },
    };
    let mut slurm = SlurmSettings::default();
    for (key, item) in table.iter() {
        read_setting(&mut slurm, key, item)?;
    }
    Ok(Executor { kind, slurm })
}

/// One key of `[pipeline.executor]` other than `kind`.
fn read_setting(s: &mut SlurmSettings, key: &str, item: &Item) -> Result<(), SettingError> {
    let want = |what: &str| {
        err(
            key,
            format!(
                "`pipeline.executor.{key}` must be {what}, not {}",
                item.type_name()
            ),
            None,
        )
    };
    let string = || {
        item.as_str()
            .map(str::to_string)
            .ok_or_else(|| want("a string"))
    };
    let count = |min: i64| {
        item.as_integer()
            .filter(|v| *v >= min && *v <= u32::MAX as i64)
            .map(|v| v as u32)
            .ok_or_else(|| {
                want(if min == 0 {
                    "a non-negative integer"
                } else {
                    "a positive integer"
                })
            })
    };
    match key {
        "kind" => {}
        "partition" => s.partition = Some(string()?),
        "mem" => s.mem = Some(string()?),
        "time" => s.time = Some(string()?),
        "gpus_per_item" => s.gpus_per_item = count(0)?,
        "cpus_per_item" => s.cpus_per_item = count(1)?,
        "max_concurrent" => s.max_concurrent = Some(count(1)?),
        "retries" => s.retries = count(0)?,
        "poll_seconds" => {
            s.poll_seconds = number(item)
                .filter(|v| *v > 0.0 && v.is_finite())
                .ok_or_else(|| want("a positive number"))?
        }
        "sbatch_args" => {
            s.sbatch_args = string_list(item).ok_or_else(|| {
                want("a list of strings, one sbatch option each, e.g. [\"--account=nas\"]")
            })?
        }
        _ => {
            return Err(SettingError::UnknownKey {
                key: key.to_string(),
            })
        }
    }
    Ok(())
}

fn number(item: &Item) -> Option<f64> {
    item.as_float()
        .or_else(|| item.as_integer().map(|v| v as f64))
}

fn string_list(item: &Item) -> Option<Vec<String>> {
    item.as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Executor, SettingError> {
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        parse(doc.as_table())
    }

    #[test]
    fn reads_every_setting() {
        let e = parse_str(
            r#"kind = "slurm"
partition = "gpu"
gpus_per_item = 1
cpus_per_item = 4
mem = "16G"
time = "04:00:00"
max_concurrent = 32
sbatch_args = ["--account=nas", "--qos=long"]
retries = 3
poll_seconds = 2"#,
        )
        .unwrap();
        assert_eq!(
            e.slurm(),
            Some(&SlurmSettings {
                partition: Some("gpu".into()),
                gpus_per_item: 1,
                cpus_per_item: 4,
                mem: Some("16G".into()),
                time: Some("04:00:00".into()),
                max_concurrent: Some(32),
                sbatch_args: vec!["--account=nas".into(), "--qos=long".into()],
                retries: 3,
                poll_seconds: 2.0,
            })
        );
        assert_eq!(parse_str("").unwrap(), Executor::default());
        assert_eq!(
            parse_str("kind = \"slurm\"").unwrap().slurm(),
            Some(&SlurmSettings::default())
        );
        // Settings without kind = "slurm" wait for `--executor slurm`.
        let local = parse_str("retries = 5").unwrap();
        assert_eq!((local.slurm(), local.slurm.retries), (None, 5));
    }

    #[test]
    fn bad_settings_name_the_key() {
        for (text, key, needle) in [
            ("kind = \"pbs\"", "kind", "unknown executor `pbs`"),
            (
                "kind = \"slurm\"\ncpus_per_item = 0",
                "cpus_per_item",
                "positive integer",
            ),
            ("kind = \"slurm\"\nretries = -1", "retries", "non-negative"),
            (
                "kind = \"slurm\"\nsbatch_args = \"--qos=x\"",
                "sbatch_args",
                "list of strings",
            ),
            (
                "kind = \"slurm\"\npoll_seconds = 0",
                "poll_seconds",
                "positive number",
            ),
        ] {
            let e = parse_str(text).unwrap_err();
            assert_eq!(e.key(), key, "{text}");
            let SettingError::Invalid { message, .. } = e else {
                panic!("{text}: {e:?}")
            };
            assert!(message.contains(needle), "{text}: {message}");
        }
        assert_eq!(
            parse_str("kind = \"slurm\"\npartion = \"gpu\"").unwrap_err(),
            SettingError::UnknownKey {
                key: "partion".into()
            }
        );
    }
}
