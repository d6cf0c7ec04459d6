//! predict's zero-cost feature sets: the proxies of a `zero-cost` dep (`proxies.jsonl`), joined
//! with the table by cell id, each proxy standardised (z-score) over the kept cells. Cells
//! without all five finite proxies are left out of every feature set, so that all sets are
//! scored on the same cells.
use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use nasflow_contract::StageError;

use crate::nb101::ModuleHash;
use crate::search::table::Searchable;

use crate::zero_cost::PROXIES;

/// Each cell id's five finite proxies.
pub fn read(path: &Path) -> Result<HashMap<ModuleHash, Vec<f64>>, StageError> {
    let text = std::fs::read_to_string(path).map_err(|e| StageError::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |what: String| {
            StageError::Failed(format!(
                "{} line {}: {what} (is it zero-cost's output?)",
                path.display(),
                i + 1
            ))
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("bad JSON: {e}")))?;
        let id: ModuleHash = v["id"]
            .as_str()
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| bad("no valid `id`".into()))?;
        let values: Option<Vec<f64>> = PROXIES.iter().map(|k| v[*k].as_f64()).collect();
        if let Some(values) = values.filter(|v| v.iter().all(|x| x.is_finite())) {
            out.insert(id, values);
        }
    }
    Ok(out)
}

/// Restricts every table to the cells with proxies (the first table's order) and attaches the
/// standardised proxies; returns the cells kept.
pub fn attach(
    tables: &mut [(String, Searchable)],
    proxies: &HashMap<ModuleHash, Vec<f64>>,
) -> usize {
    let Some((_, first)) = tables.first() else {
        return 0;
    };
    let keep: Vec<usize> = (0..first.len())
        .filter(|&i| proxies.contains_key(&first.hashes[i]))
        .collect();
    let mut rows: Vec<Vec<f64>> = keep
        .iter()
        .map(|&i| proxies[&first.hashes[i]].clone())
        .collect();
    standardise(&mut rows);
    for (_, t) in tables.iter_mut() {
        *t = t.keep(&keep);
        t.zero_cost = rows.clone();
    }
    keep.len()
}

/// Each column to mean 0 and standard deviation 1 (a constant column to 0).
fn standardise(rows: &mut [Vec<f64>]) {
    let n = rows.len() as f64;
    let cols = rows.first().map_or(0, Vec::len);
    for c in 0..cols {
        let mean = rows.iter().map(|r| r[c]).sum::<f64>() / n;
        let var = rows.iter().map(|r| (r[c] - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt();
        for r in rows.iter_mut() {
            r[c] = if sd > 0.0 { (r[c] - mean) / sd } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_join_by_id_and_are_standardised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxies.jsonl");
        let id = |k: usize| format!("{:032x}", k + 1);
        let line = |k: usize, s: &str| {
            format!(
                "{{\"id\": \"{}\", \"synflow\": {s}, \"jacov\": 1, \"nwot\": {k}, \"snip\": 2, \"grad_norm\": 3}}\n",
                id(k)
            )
        };
        let text = line(0, "1.0") + &line(2, "3.0") + &line(3, "null");
        std::fs::write(&path, text).unwrap();
        let p = read(&path).unwrap();
        assert_eq!(p.len(), 2, "a non-finite proxy leaves the cell out");
        let mut tables = vec![(String::new(), crate::search::tests::table(4, 2))];
        assert_eq!(attach(&mut tables, &p), 2);
        let t = &tables[0].1;
        assert_eq!(t.len(), 2);
        assert_eq!(t.hashes[1].hex(), id(2));
        // synflow 1 and 3: z-scores -1 and 1; the constant jacov column: 0.
        assert_eq!(t.zero_cost[0][..2], [-1.0, 0.0]);
        assert_eq!(t.zero_cost[1][0], 1.0);
        assert_eq!(t.feature(1), crate::search::tests::table(4, 2).feature(2));
    }
}
