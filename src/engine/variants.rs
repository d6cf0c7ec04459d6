//! Named variants of a pipeline, declared in pipeline.toml next to the stages:
//!
//! ```toml
//! [variants.reference.train-vae]      # one variant: stage params to override
//! variant = "arch2vec"
//!
//! [sweeps.epochs.train-vae]           # a matrix: every combination of the listed values
//! epochs = [10, 30]
//! [sweeps.epochs.predict]
//! train_sizes = [[250], [1000]]       # a list-valued param: a list of lists
//! ```
//!
//! A sweep named `epochs` expands to variants `epochs[train-vae.epochs=10,predict.train_sizes=[250]]`
//! and so on (the last axis changes fastest). A variant is a list of overrides applied like
//! `--set`; since stage keys depend only on what a stage sees, variants share every upstream
//! stage their overrides do not reach.
use std::path::Path;

use toml_edit::{Item, Table};

use crate::config::{ConfigError, Cx, Origin, Override, Pos};

/// A named set of overrides.
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    /// The `[variants.X]` or `[sweeps.X]` table it comes from.
    pub group: String,
    pub overrides: Vec<Override>,
}

fn tables<'a>(cx: &Cx, item: &'a Item, what: &str) -> Result<&'a Table, ConfigError> {
    item.as_table().ok_or_else(|| {
        cx.err(
            span_pos(cx, item),
            format!("`{what}` must be a table"),
            Some(format!(
                "write it as [{what}.STAGE] with param = value lines"
            )),
        )
    })
}

fn span_pos(cx: &Cx, item: &Item) -> Pos {
    item.span()
        .map(|s| cx.pos(s.start))
        .unwrap_or(Pos { line: 1, col: 1 })
}

fn make(cx: &Cx, group: &str, stage: &str, param: &str, value: &toml_edit::Value) -> Override {
    let pos = value
        .span()
        .map(|s| cx.pos(s.start))
        .unwrap_or(Pos { line: 1, col: 1 });
    let mut value = value.clone();
    value.decor_mut().clear();
    Override {
        stage: stage.to_string(),
        param: param.to_string(),
        raw: format!("[{group}] {stage}.{param}={value}"),
        value,
        origin: Origin::File(pos),
    }
}

/// The variants a pipeline file declares, in file order, sweeps expanded.
pub fn load(file: &Path) -> Result<Vec<Variant>, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse(file, &text)
}

/// The variants of pipeline text (`file` names it in messages).
pub fn parse(file: &Path, text: &str) -> Result<Vec<Variant>, ConfigError> {
    let cx = Cx::new(file, text);
    let doc = cx.document()?;
    let mut out = Vec::new();
    if let Some(item) = doc.get("variants") {
        for (name, v) in tables(&cx, item, "variants")?.iter() {
            out.push(variant(&cx, name, v)?);
        }
    }
    if let Some(item) = doc.get("sweeps") {
        for (name, v) in tables(&cx, item, "sweeps")?.iter() {
            out.extend(sweep(&cx, name, v)?);
        }
    }
    Ok(out)
}

/// `[variants.NAME.STAGE] param = value`.
fn variant(cx: &Cx, name: &str, v: &Item) -> Result<Variant, ConfigError> {
    let group = format!("variants.{name}");
    let mut overrides = Vec::new();
    for (stage, params) in tables(cx, v, &group)?.iter() {
        let t = tables(cx, params, &format!("{group}.{stage}"))?;
        for (param, value) in t.iter() {
            let value = value.as_value().ok_or_else(|| {
                cx.err(
                    cx.item_pos(t, param),
                    format!("`{group}.{stage}.{param}` must be a value"),
                    None,
                )
            })?;
            overrides.push(make(cx, &group, stage, param, value));
        }
    }
    Ok(Variant {
        name: name.to_string(),
        group,
        overrides,
    })
}

/// `[sweeps.NAME.STAGE] param = [values...]`: every combination, the last axis fastest.
fn sweep(cx: &Cx, name: &str, v: &Item) -> Result<Vec<Variant>, ConfigError> {
    let group = format!("sweeps.{name}");
    let mut axes: Vec<(String, String, Vec<toml_edit::Value>)> = Vec::new();
    for (stage, params) in tables(cx, v, &group)?.iter() {
        let t = tables(cx, params, &format!("{group}.{stage}"))?;
        for (param, value) in t.iter() {
            let list = value.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                cx.err(
                    cx.item_pos(t, param),
                    format!(
                        "`{group}.{stage}.{param}` must be a non-empty list of values to sweep"
                    ),
                    Some("a list-valued param sweeps over a list of lists: [[250], [1000]]".into()),
                )
            })?;
            axes.push((
                stage.to_string(),
                param.to_string(),
                list.iter().cloned().collect(),
            ));
        }
    }
    let total: usize = axes.iter().map(|a| a.2.len()).product();
    let mut out = Vec::with_capacity(total);
    for mut k in 0..total {
        // Mixed radix, the last axis fastest.
        let mut picks = vec![0; axes.len()];
        for (j, a) in axes.iter().enumerate().rev() {
            picks[j] = k % a.2.len();
            k /= a.2.len();
        }
        let overrides: Vec<Override> = axes
            .iter()
            .zip(&picks)
            .map(|((stage, param, values), &p)| make(cx, &group, stage, param, &values[p]))
            .collect();
        let label: Vec<String> = overrides
            .iter()
            .map(|o| format!("{}.{}={}", o.stage, o.param, o.value))
            .collect();
        out.push(Variant {
            name: format!("{name}[{}]", label.join(",")),
            group: name.to_string(),
            overrides,
        });
    }
    Ok(out)
}

/// The variants `names` select: a variant's name, a sweep's name (all its points), or `all`.
pub fn select<'a>(all: &'a [Variant], names: &[String]) -> Result<Vec<&'a Variant>, String> {
    let mut out: Vec<&Variant> = Vec::new();
    for n in names {
        let hits: Vec<&Variant> = all
            .iter()
            .filter(|v| n == "all" || v.name == *n || v.group == *n)
            .collect();
        if hits.is_empty() {
            let known: Vec<&str> = all.iter().map(|v| v.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("no variant `{n}`: the pipeline declares no [variants.NAME] or [sweeps.NAME] tables")
            } else {
                format!("no variant `{n}`; declared: {}", known.join(", "))
            });
        }
        for h in hits {
            if !out.iter().any(|o| o.name == h.name) {
                out.push(h);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[stages.a]
kind = "cmd"
run = "true"
[variants.ref.a]
x = "y"
n = 3
[sweeps.grid.a]
e = [10, 30]
s = [[1], [2, 3]]
"#;

    #[test]
    fn variants_and_sweeps_expand_in_order() {
        let v = parse(Path::new("p.toml"), TEXT).unwrap();
        let names: Vec<&str> = v.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ref",
                "grid[a.e=10,a.s=[1]]",
                "grid[a.e=10,a.s=[2, 3]]",
                "grid[a.e=30,a.s=[1]]",
                "grid[a.e=30,a.s=[2, 3]]"
            ]
        );
        assert_eq!(v[0].overrides.len(), 2);
        assert_eq!(v[0].overrides[1].value.as_integer(), Some(3));
        assert_eq!(select(&v, &["grid".into()]).unwrap().len(), 4);
        assert_eq!(select(&v, &["all".into(), "ref".into()]).unwrap().len(), 5);
        let e = select(&v, &["nope".into()]).unwrap_err();
        assert!(e.contains("declared: ref"), "{e}");
    }

    #[test]
    fn a_sweep_value_must_be_a_list_and_errors_are_located() {
        let e = parse(Path::new("p.toml"), "[sweeps.g.a]\ne = 3\n").unwrap_err();
        assert!(e.to_string().contains("non-empty list"), "{e}");
        assert!(e.to_string().starts_with("p.toml:2:5:"), "{e}");
        let v = parse(Path::new("p.toml"), TEXT).unwrap();
        assert_eq!(
            v[0].overrides[1].origin,
            Origin::File(Pos { line: 7, col: 5 })
        );
    }
}
