//! Benchmark tables: NB101's measured figures keyed by module hash, from
//!
//! - NB101's tfrecord (`nasbench_only108.tfrecord`, or the full file): one record per run; the
//!   figures are the means over the runs at the largest epoch budget, as arch2vec's
//!   `gen_json.py` computes them (final validation and test accuracy, final training time);
//! - arch2vec's `data.json` (`{"0": {validation_accuracy, test_accuracy, training_time,
//!   module_adjacency 7x7, module_operations 7x5, [hash]}, ...}`), already averaged;
//! - JSON Lines keyed by `hash` as in the shared NB101 figures (`trainable_parameters`,
//!   `validation_accuracy` by epoch, `training_time_108`, optional `adjacency` and `ops`).
//!
//! The format follows the file name: `*.tfrecord`, `*.json`, `*.jsonl`. A table keeps its
//! file's order (the tfrecord's order is NB101's `hash_iterator()` order, which arch2vec's
//! train/validation split follows).
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::cell::Cell;
use super::encode::Arch2vec;
use super::hash::{module_hash, ModuleHash};
use super::space::Space;
use super::tfrecord::{self, ModelMetrics};

/// The measured figures of one cell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trainable_parameters: Option<u64>,
    /// Final validation accuracy at `epochs`, the mean over `runs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Training time in seconds at `epochs`, the mean over `runs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_time: Option<f64>,
    /// Validation accuracy by epoch budget (mean over runs), where the table has several.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub validation_by_epochs: BTreeMap<u32, f64>,
    pub epochs: u32,
    pub runs: u32,
}

/// One row: a hash, the cell when the table stores it, and the figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub hash: ModuleHash,
    pub cell: Option<Cell>,
    pub figures: Figures,
}

/// The keyword of the table built into nasflow (10,000 NB101 cells with their figures).
pub const EMBEDDED_10K: &str = "nb101-10k";

/// A benchmark table in its file's order.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub source: PathBuf,
    rows: Vec<Row>,
    index: HashMap<ModuleHash, usize>,
}

/// A table file that cannot be read: the file, where in it, and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {what}", path.display(), at.as_ref().map(|a| format!(" {a}")).unwrap_or_default())]
pub struct TableError {
    pub path: PathBuf,
    /// `record 12 (byte 3456)`, `line 7`, `entry "17"`.
    pub at: Option<String>,
    pub what: String,
}

impl Table {
    /// Loads a table, choosing the reader by file name.
    pub fn load(path: &Path) -> Result<Table, TableError> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".tfrecord") {
            Table::from_tfrecord(path)
        } else if name.ends_with(".jsonl") {
            Table::from_jsonl(path)
        } else if name.ends_with(".json") {
            Table::from_arch2vec_json(path)
        } else {
            Err(err(path, None, "unknown table format: name the file *.tfrecord (NB101), *.json (arch2vec data.json) or *.jsonl (hash-keyed JSON Lines)"))
        }
    }

    fn from_rows(path: &Path, rows: Vec<Row>) -> Table {
        let index = rows.iter().enumerate().map(|(i, r)| (r.hash, i)).collect();
        Table {
            source: path.to_path_buf(),
            rows,
            index,
        }
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn get(&self, hash: &ModuleHash) -> Option<&Row> {
        self.index.get(hash).map(|&i| &self.rows[i])
    }

    /// The rows whose hash is in the space, as (index in the space, row), and the number of
    /// rows that are not.
    pub fn join<'a>(&'a self, space: &Space) -> (Vec<(usize, &'a Row)>, usize) {
        let mut found = Vec::new();
        let mut missing = 0;
        for r in &self.rows {
            match space.position(&r.hash) {
                Some(i) => found.push((i, r)),
                None => missing += 1,
            }
        }
        (found, missing)
    }

    /// NB101's tfrecord. Runs are grouped by hash; the figures average the runs at the largest
    /// epoch budget seen for that hash (108 in `nasbench_only108.tfrecord`).
    pub fn from_tfrecord(path: &Path) -> Result<Table, TableError> {
        let file = File::open(path).map_err(|e| err(path, None, &e.to_string()))?;
        let mut reader = tfrecord::Reader::new(BufReader::with_capacity(1 << 20, file));
        let mut order: Vec<ModuleHash> = Vec::new();
        let mut by_hash: HashMap<ModuleHash, (Cell, Option<u64>, Runs)> = HashMap::new();
        let mut n = 0usize;
        loop {
            let at = format!("record {} (byte {})", n + 1, reader.offset);
            let data = match reader.next_record() {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) => return Err(err(path, Some(at), &e.to_string())),
            };
            let r = tfrecord_run(&data).map_err(|m| err(path, Some(at), &m))?;
            let entry = by_hash.entry(r.hash).or_insert_with(|| {
                order.push(r.hash);
                (r.cell, r.params, BTreeMap::new())
            });
            entry.2.entry(r.epochs).or_default().push(r.run);
            n += 1;
        }
        let rows = order
            .into_iter()
            .map(|hash| {
                let (cell, params, runs) = by_hash.remove(&hash).expect("grouped");
                Row {
                    hash,
                    cell: Some(cell),
                    figures: averaged(params, &runs),
                }
            })
            .collect();
        Ok(Table::from_rows(path, rows))
    }

    /// arch2vec's `data.json`; rows in the order of their integer keys. The hash is computed
    /// from the stored cell and, where the entry carries one (the info-NAS fork), checked.
    pub fn from_arch2vec_json(path: &Path) -> Result<Table, TableError> {
        #[derive(Deserialize)]
        struct Entry {
            validation_accuracy: f64,
            test_accuracy: f64,
            #[serde(default)]
            training_time: Option<f64>,
            module_adjacency: Vec<Vec<u8>>,
            module_operations: Vec<Vec<u8>>,
            #[serde(default)]
            hash: Option<String>,
        }
        let file = File::open(path).map_err(|e| err(path, None, &e.to_string()))?;
        let data: HashMap<String, Entry> = serde_json::from_reader(BufReader::new(file))
            .map_err(|e| err(path, None, &format!("not arch2vec's data.json: {e}")))?;
        let mut keyed = Vec::with_capacity(data.len());
        for (k, e) in data {
            let at = format!("entry \"{k}\"");
            let i: u64 = k
                .parse()
                .map_err(|_| err(path, Some(at.clone()), "keys must be integers"))?;
            let cell = Arch2vec::from_lists(&e.module_adjacency, &e.module_operations)
                .and_then(|a| a.decode())
                .map_err(|x| err(path, Some(at.clone()), &format!("invalid cell: {x}")))?;
            let cell = cell
                .canonical()
                .map_err(|x| err(path, Some(at.clone()), &format!("invalid cell: {x}")))?;
            let hash = module_hash(&cell);
            if let Some(h) = &e.hash {
                if h != &hash.hex() {
                    return Err(err(
                        path,
                        Some(at),
                        &format!("stored hash {h} but the cell hashes to {hash}"),
                    ));
                }
            }
            let figures = Figures {
                trainable_parameters: None,
                validation_accuracy: Some(e.validation_accuracy),
                test_accuracy: Some(e.test_accuracy),
                training_time: e.training_time,
                validation_by_epochs: BTreeMap::new(),
                epochs: 108,
                runs: 3,
            };
            keyed.push((
                i,
                Row {
                    hash,
                    cell: Some(cell),
                    figures,
                },
            ));
        }
        keyed.sort_by_key(|(i, _)| *i);
        Ok(Table::from_rows(
            path,
            keyed.into_iter().map(|(_, r)| r).collect(),
        ))
    }

    /// Hash-keyed JSON Lines (the shared `nb101-*.jsonl` format).
    pub fn from_jsonl(path: &Path) -> Result<Table, TableError> {
        let file = File::open(path).map_err(|e| err(path, None, &e.to_string()))?;
        Table::read_jsonl(path, BufReader::new(file))
    }

    /// The table built into nasflow: [`EMBEDDED_10K`], 10,000 NB101 cells with their figures
    /// (`stages/data/README.md` says where they come from).
    pub fn embedded_10k() -> Result<Table, TableError> {
        static GZ: &[u8] = include_bytes!("../../data/nb101-10k.jsonl.gz");
        let reader = BufReader::new(flate2::read::GzDecoder::new(GZ));
        Table::read_jsonl(Path::new(EMBEDDED_10K), reader)
    }

    /// A table named by a param: the embedded one by its keyword, else a file.
    pub fn open(name: &str) -> Result<Table, TableError> {
        if name == EMBEDDED_10K {
            Table::embedded_10k()
        } else {
            Table::load(Path::new(name))
        }
    }

    /// Hash-keyed JSON Lines from `reader`; `path` names it in errors.
    fn read_jsonl(path: &Path, reader: impl BufRead) -> Result<Table, TableError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Line {
            hash: ModuleHash,
            #[serde(default)]
            adjacency: Option<Vec<Vec<u8>>>,
            #[serde(default)]
            ops: Option<Vec<String>>,
            #[serde(default)]
            trainable_parameters: Option<u64>,
            #[serde(default)]
            validation_accuracy: Option<BTreeMap<String, f64>>,
            #[serde(default)]
            test_accuracy: Option<f64>,
            #[serde(default)]
            training_time_108: Option<f64>,
        }
        let mut rows = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let at = format!("line {}", i + 1);
            let line = line.map_err(|e| err(path, Some(at.clone()), &e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let l: Line = serde_json::from_str(&line)
                .map_err(|e| err(path, Some(at.clone()), &format!("bad JSON: {e}")))?;
            let cell = match (&l.adjacency, &l.ops) {
                (Some(a), Some(o)) => {
                    let ops = o
                        .iter()
                        .map(|s| super::cell::Op::parse(s))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| err(path, Some(at.clone()), &e.to_string()))?;
                    let c = Cell::new(a, &ops)
                        .and_then(|c| c.canonical().map(|_| c))
                        .map_err(|e| err(path, Some(at.clone()), &format!("invalid cell: {e}")))?;
                    Some(c)
                }
                (None, None) => None,
                _ => return Err(err(path, Some(at), "`adjacency` and `ops` come together")),
            };
            let mut by_epochs = BTreeMap::new();
            for (k, v) in l.validation_accuracy.unwrap_or_default() {
                let e: u32 = k.parse().map_err(|_| {
                    err(
                        path,
                        Some(at.clone()),
                        &format!("validation_accuracy key `{k}` is not an epoch count"),
                    )
                })?;
                by_epochs.insert(e, v);
            }
            let last = by_epochs.iter().next_back().map(|(e, v)| (*e, *v));
            rows.push(Row {
                hash: l.hash,
                cell,
                figures: Figures {
                    trainable_parameters: l.trainable_parameters,
                    validation_accuracy: last.map(|x| x.1),
                    test_accuracy: l.test_accuracy,
                    training_time: l.training_time_108,
                    epochs: last.map(|x| x.0).unwrap_or(108),
                    validation_by_epochs: by_epochs,
                    runs: 1,
                },
            });
        }
        Ok(Table::from_rows(path, rows))
    }
}

fn err(path: &Path, at: Option<String>, what: &str) -> TableError {
    TableError {
        path: path.to_path_buf(),
        at,
        what: what.to_string(),
    }
}

/// Per epoch budget: the runs' (validation, test, training time).
type Runs = BTreeMap<u32, Vec<(f64, f64, f64)>>;

/// One tfrecord record: a run of a cell at an epoch budget.
struct TfRun {
    hash: ModuleHash,
    epochs: u32,
    cell: Cell,
    params: Option<u64>,
    run: (f64, f64, f64),
}

/// Decodes one record: the JSON array [hash, epochs, adjacency bits, ops, base64 ModelMetrics].
fn tfrecord_run(data: &[u8]) -> Result<TfRun, String> {
    let (hash, epochs, bits, ops, metrics): (String, u32, String, String, String) =
        serde_json::from_slice(data).map_err(|e| {
            format!("not the JSON array [hash, epochs, adjacency, ops, metrics]: {e}")
        })?;
    let hash: ModuleHash = hash.parse().map_err(|e| format!("{e}"))?;
    let cell = Cell::parse(&bits, &ops)
        .and_then(|c| c.canonical().map(|_| c))
        .map_err(|e| format!("invalid cell: {e}"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(metrics.as_bytes())
        .map_err(|e| format!("metrics are not base64: {e}"))?;
    let m = ModelMetrics::decode(&raw[..])
        .map_err(|e| format!("metrics are not a ModelMetrics protobuf: {e}"))?;
    let last = m
        .evaluation_data
        .last()
        .ok_or("metrics have no evaluation data")?;
    Ok(TfRun {
        hash,
        epochs,
        cell,
        params: m.trainable_parameters.map(|p| p as u64),
        run: (
            last.validation_accuracy.unwrap_or(f64::NAN),
            last.test_accuracy.unwrap_or(f64::NAN),
            last.training_time.unwrap_or(f64::NAN),
        ),
    })
}

/// A cell's figures: the mean of its runs at the largest epoch budget (arch2vec averages the
/// 3 runs), and the validation accuracy per budget when there are several.
fn averaged(params: Option<u64>, runs: &Runs) -> Figures {
    let mean = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| {
        v.iter().map(f).sum::<f64>() / v.len() as f64
    };
    let (&epochs, last) = runs.iter().next_back().expect("at least one run");
    Figures {
        trainable_parameters: params,
        validation_accuracy: Some(mean(last, |r| r.0)),
        test_accuracy: Some(mean(last, |r| r.1)),
        training_time: Some(mean(last, |r| r.2)),
        validation_by_epochs: if runs.len() > 1 {
            runs.iter().map(|(e, v)| (*e, mean(v, |r| r.0))).collect()
        } else {
            BTreeMap::new()
        },
        epochs,
        runs: last.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nb101::tfrecord::{write_record, EvaluationData};

    fn metrics(params: i32, val: f64, test: f64, time: f64) -> String {
        let eval = |v, t, s| EvaluationData {
            current_epoch: Some(108.0),
            training_time: Some(s),
            train_accuracy: Some(1.0),
            validation_accuracy: Some(v),
            test_accuracy: Some(t),
            checkpoint_path: Some(String::new()),
        };
        let m = ModelMetrics {
            evaluation_data: vec![
                eval(0.1, 0.1, 0.0),
                eval(val / 2.0, test / 2.0, time / 2.0),
                eval(val, test, time),
            ],
            trainable_parameters: Some(params),
            total_time: Some(time * 1.1),
        };
        base64::engine::general_purpose::STANDARD.encode(m.encode_to_vec())
    }

    const README_BITS: &str = "0111010000000100000010000100000000100000010000000";
    const README_OPS: &str =
        "input,conv1x1-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,maxpool3x3,output";
    const README_HASH: &str = "28cfc7874f6d200472e1a9dcd8650aa0";

    fn write_tfrecord(path: &Path, records: &[String]) {
        let mut f = File::create(path).unwrap();
        for r in records {
            write_record(&mut f, r.as_bytes()).unwrap();
        }
    }

    fn record(hash: &str, bits: &str, ops: &str, m: &str) -> String {
        serde_json::to_string(&(hash, 108, bits, ops, m)).unwrap()
    }

    #[test]
    fn tfrecord_averages_three_runs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nasbench_only108.tfrecord");
        let recs: Vec<String> = [(0.9, 0.8, 100.0), (0.92, 0.84, 110.0), (0.94, 0.82, 120.0)]
            .iter()
            .map(|&(v, t, s)| {
                record(
                    README_HASH,
                    README_BITS,
                    README_OPS,
                    &metrics(2_694_282, v, t, s),
                )
            })
            .collect();
        write_tfrecord(&p, &recs);
        let t = Table::load(&p).unwrap();
        assert_eq!(t.len(), 1);
        let row = &t.rows()[0];
        assert_eq!(row.hash.hex(), README_HASH);
        assert_eq!(module_hash(row.cell.as_ref().unwrap()).hex(), README_HASH);
        let f = &row.figures;
        assert_eq!(f.trainable_parameters, Some(2_694_282));
        assert!((f.validation_accuracy.unwrap() - 0.92).abs() < 1e-12);
        assert!((f.test_accuracy.unwrap() - 0.82).abs() < 1e-9);
        assert!((f.training_time.unwrap() - 110.0).abs() < 1e-9);
        assert_eq!((f.runs, f.epochs), (3, 108));
    }

    #[test]
    fn bad_tfrecords_name_file_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.tfrecord");
        let good = record(
            README_HASH,
            README_BITS,
            README_OPS,
            &metrics(1, 0.5, 0.5, 1.0),
        );
        let cases: Vec<(Vec<String>, &str)> = vec![
            (vec![good.clone(), "[1, 2".into()], "record 2"),
            (
                vec![
                    good.clone(),
                    record(
                        README_HASH,
                        "0100",
                        "input,conv9x9,output",
                        &metrics(1, 0.5, 0.5, 1.0),
                    ),
                ],
                "record 2",
            ),
            (
                vec![record(
                    README_HASH,
                    "0100",
                    "output,input",
                    &metrics(1, 0.5, 0.5, 1.0),
                )],
                "invalid cell",
            ),
            (
                vec![record(README_HASH, README_BITS, README_OPS, "!!notbase64")],
                "base64",
            ),
        ];
        for (recs, want) in cases {
            write_tfrecord(&p, &recs);
            let e = Table::load(&p).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("t.tfrecord"), "{e}");
        }
        // Truncated and corrupted framing.
        write_tfrecord(&p, &[good.clone(), good.clone()]);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let e = Table::load(&p).unwrap_err().to_string();
        assert!(e.contains("record 2") && e.contains("truncated"), "{e}");
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        let e = Table::load(&p).unwrap_err().to_string();
        assert!(e.contains("record 1") && e.contains("checksum"), "{e}");
    }

    #[test]
    fn arch2vec_json_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let cell = Cell::parse(README_BITS, README_OPS).unwrap();
        let enc = Arch2vec::encode(&cell);
        let p = dir.path().join("data.json");
        let entry = serde_json::json!({"validation_accuracy": 0.9, "test_accuracy": 0.89, "training_time": 1500.0,
            "module_adjacency": enc.adj, "module_operations": enc.ops, "hash": README_HASH});
        std::fs::write(&p, serde_json::json!({"0": entry}).to_string()).unwrap();
        let t = Table::load(&p).unwrap();
        assert_eq!(t.rows()[0].hash.hex(), README_HASH);
        assert_eq!(t.rows()[0].figures.test_accuracy, Some(0.89));
        let mut bad = entry.clone();
        bad["hash"] = serde_json::json!("00000000000000000000000000000000");
        std::fs::write(&p, serde_json::json!({"0": entry, "1": bad}).to_string()).unwrap();
        let e = Table::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("entry \"1\"") && e.contains("stored hash"),
            "{e}"
        );

        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, format!("{{\"hash\":\"{README_HASH}\",\"trainable_parameters\":5,\"validation_accuracy\":{{\"4\":0.5,\"108\":0.9}}}}\n{{\"hash\":\"x\"}}\n")).unwrap();
        let e = Table::load(&p).unwrap_err().to_string();
        assert!(e.contains("t.jsonl line 2"), "{e}");
        std::fs::write(&p, format!("{{\"hash\":\"{README_HASH}\",\"trainable_parameters\":5,\"validation_accuracy\":{{\"4\":0.5,\"108\":0.9}}}}\n")).unwrap();
        let t = Table::load(&p).unwrap();
        assert_eq!(t.rows()[0].figures.validation_accuracy, Some(0.9));
        assert_eq!(t.rows()[0].figures.epochs, 108);
        let e = Table::load(&dir.path().join("t.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown table format"), "{e}");
    }
}
