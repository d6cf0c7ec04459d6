//! Slurm's client commands: `sbatch` to submit an array, `squeue` (and `sacct` where accounting
//! is on) to follow it, `scancel` to cancel it. Every call runs the real command; their output
//! formats are fixed by explicit `--parsable` / `-o` options and parsed here.
use std::path::Path;
use std::process::Command;

use super::{SlurmError, SlurmSettings};

/// One array task as `squeue` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTask {
    pub name: String,
    pub job_id: String,
    /// The array index (`None` for a job that is not an array).
    pub task: Option<usize>,
    pub state: String,
    pub reason: String,
}

impl QueuedTask {
    /// Still queued, running or on its way out: its item may yet be published.
    pub fn active(&self) -> bool {
        !is_terminal(&self.state)
    }
}

/// Job states after which a task will not publish anything any more.
pub fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "REVOKED"
    )
}

fn run(mut cmd: Command, help: &str) -> Result<String, SlurmError> {
    let program = cmd.get_program().to_string_lossy().to_string();
    let line = std::iter::once(program.clone())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .output()
        .map_err(|source| SlurmError::Missing { program, source })?;
    if !out.status.success() {
        return Err(SlurmError::Failed {
            command: line,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            help: help.to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// What one `sbatch` call submits.
pub struct Submission<'a> {
    pub name: &'a str,
    pub tasks: usize,
    /// Log of each task; `%a` is replaced by Slurm with the task's index.
    pub output: &'a Path,
    pub workdir: &'a Path,
    pub script: &'a Path,
}

/// The sbatch arguments of a submission (without the program name).
pub fn sbatch_args(s: &SlurmSettings, sub: &Submission) -> Vec<String> {
    let mut array = format!("0-{}", sub.tasks.saturating_sub(1));
    if let Some(max) = s.max_concurrent {
        array.push_str(&format!("%{max}"));
    }
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name={}", sub.name),
        format!("--array={array}"),
        format!("--output={}", sub.output.display()),
        format!("--chdir={}", sub.workdir.display()),
        format!("--cpus-per-task={}", s.cpus_per_item),
    ];
    if let Some(p) = &s.partition {
        args.push(format!("--partition={p}"));
    }
    if s.gpus_per_item > 0 {
        args.push(format!("--gres=gpu:{}", s.gpus_per_item));
    }
    if let Some(m) = &s.mem {
        args.push(format!("--mem={m}"));
    }
    if let Some(t) = &s.time {
        args.push(format!("--time={t}"));
    }
    args.extend(s.sbatch_args.iter().cloned());
    args.push(sub.script.display().to_string());
    args
}

/// Submits an array; returns its job id.
pub fn sbatch(s: &SlurmSettings, sub: &Submission) -> Result<String, SlurmError> {
    let mut cmd = Command::new("sbatch");
    cmd.args(sbatch_args(s, sub));
    let out = run(
        cmd,
        "check [pipeline.executor] (partition, time, mem, gpus_per_item, sbatch_args) against `sinfo` and your cluster's limits",
    )?;
    parse_job_id(&out).ok_or_else(|| SlurmError::Failed {
        command: "sbatch".into(),
        stderr: format!("no job id in its output: {out:?}"),
        help: "is `sbatch` Slurm's?".into(),
    })
}

/// `sbatch --parsable` prints `JOBID` or `JOBID;CLUSTER`.
pub fn parse_job_id(out: &str) -> Option<String> {
    let id = out.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

const SQUEUE_FORMAT: &str = "%F|%K|%T|%r|%j";

/// The tasks of this user's jobs with these names, one line per array task, finished ones
/// included while the controller still remembers them (`MinJobAge`, 300 s by default).
pub fn squeue(names: &[String]) -> Result<Vec<QueuedTask>, SlurmError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = Command::new("squeue");
    cmd.args(["--me", "--noheader", "--array", "--states=all"])
        .arg(format!("--format={SQUEUE_FORMAT}"))
        .arg(format!("--name={}", names.join(",")));
    let out = run(cmd, "is the Slurm controller reachable? (`sinfo`)")?;
    Ok(parse_squeue(&out))
}

pub fn parse_squeue(out: &str) -> Vec<QueuedTask> {
    out.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(5, '|');
            let job_id = parts.next()?.trim().to_string();
            let task = parts.next()?.trim().parse().ok();
            let state = parts.next()?.trim().to_string();
            let reason = parts.next()?.trim().to_string();
            let name = parts.next()?.trim().to_string();
            Some(QueuedTask {
                name,
                job_id,
                task,
                state,
                reason,
            })
        })
        .collect()
}

/// The final state of a task from accounting (`sacct`), where the cluster keeps it; `None`
/// where accounting is off or does not know the task.
pub fn sacct_state(job_id: &str, task: usize) -> Option<String> {
    let mut cmd = Command::new("sacct");
    cmd.args([
        "--noheader",
        "--parsable2",
        "--format=State,ExitCode",
        "--jobs",
    ])
    .arg(format!("{job_id}_{task}"));
    let out = run(cmd, "").ok()?;
    let line = out.lines().next()?.trim();
    let (state, code) = line.split_once('|')?;
    (!state.is_empty()).then(|| format!("{state} (exit {code})"))
}

/// Cancels this user's jobs with these names (scancel takes one name per call).
pub fn scancel(names: &[String]) -> Result<(), SlurmError> {
    for name in names {
        let mut cmd = Command::new("scancel");
        cmd.arg("--me").arg(format!("--name={name}"));
        run(cmd, "cancel them by hand: `scancel --me --name=NAME`")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_squeue_lines_of_arrays() {
        let out = "12|2|PENDING|Resources|nasflow-pretrain-ab12-0\n\
                   12|0|RUNNING|None|nasflow-pretrain-ab12-0\n\
                   12|1|FAILED|NonZeroExitCode|nasflow-pretrain-ab12-0\n\
                   15|N/A|RUNNING|None|other\n";
        let tasks = parse_squeue(out);
        assert_eq!(tasks.len(), 4);
        assert_eq!(tasks[0].task, Some(2));
        assert!(tasks[0].active() && tasks[1].active() && !tasks[2].active());
        assert_eq!(tasks[2].reason, "NonZeroExitCode");
        assert_eq!(tasks[3].task, None);
        assert_eq!(tasks[1].name, "nasflow-pretrain-ab12-0");
    }

    #[test]
    fn job_ids_with_and_without_cluster() {
        assert_eq!(parse_job_id("123\n"), Some("123".into()));
        assert_eq!(parse_job_id("123;gpu-cluster\n"), Some("123".into()));
        assert_eq!(parse_job_id("Submitted batch job 5"), None);
    }

    #[test]
    fn sbatch_args_carry_the_settings() {
        let s = SlurmSettings {
            partition: Some("gpu".into()),
            gpus_per_item: 1,
            cpus_per_item: 4,
            mem: Some("16G".into()),
            time: Some("04:00:00".into()),
            max_concurrent: Some(8),
            sbatch_args: vec!["--qos=long".into()],
            ..SlurmSettings::default()
        };
        let sub = Submission {
            name: "n",
            tasks: 20,
            output: Path::new("/c/logs/sub-0-%a.log"),
            workdir: Path::new("/p"),
            script: Path::new("/c/sub-0.sh"),
        };
        let args = sbatch_args(&s, &sub);
        for want in [
            "--array=0-19%8",
            "--partition=gpu",
            "--gres=gpu:1",
            "--cpus-per-task=4",
            "--mem=16G",
            "--time=04:00:00",
            "--qos=long",
            "--output=/c/logs/sub-0-%a.log",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
        assert_eq!(args.last().unwrap(), "/c/sub-0.sh");
        let plain = sbatch_args(&SlurmSettings::default(), &sub);
        assert!(plain.contains(&"--array=0-19".to_string()));
        assert!(!plain
            .iter()
            .any(|a| a.starts_with("--gres") || a.starts_with("--partition")));
    }
}
