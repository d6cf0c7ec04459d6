//! Utility commands the `nasflow` CLI mounts as subcommands (`nasflow nb101 ...`), so that users
//! and checks can query the NB101 space without a pipeline. The engine knows them only as clap
//! commands with a run function; nothing here may call libtorch (see the crate's linking rule).
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::nb101::params::{trainable_parameters, Skeleton};
use crate::nb101::{module_hash, Arch2vec, Cell, Space, Table};

pub use nasflow_contract::{Tool, ToolError};

pub fn tools() -> Vec<Tool> {
    vec![Tool {
        command: || Nb101::command().name("nb101"),
        run: |m| {
            run_nb101(Nb101::from_arg_matches(m).map_err(|e| ToolError::Usage(e.to_string()))?)
        },
    }]
}

/// Query the NAS-Bench-101 cell space: enumerate it, describe a cell, load benchmark tables.
#[derive(Debug, Parser)]
#[command(name = "nb101")]
pub struct Nb101 {
    #[command(subcommand)]
    cmd: Nb101Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// nasflow's compact binary space file (24 bytes a cell, checksummed).
    Bin,
    /// One {"hash", "matrix", "ops"} object a line.
    Jsonl,
}

#[derive(Debug, Subcommand)]
enum Nb101Cmd {
    /// Enumerate all unique cells (423,624); print the count and the time taken.
    ///
    /// Cells are sorted by hash; each is NB101's representative of its isomorphism class, in
    /// NB101's stored vertex order.
    Enumerate {
        /// Write the cells here (`-` for stdout with --format jsonl).
        #[arg(long)]
        out: Option<PathBuf>,
        /// File format (default: jsonl for a *.jsonl name or `-`, else bin).
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Read and check a space file from `enumerate --out`; print the count and the time taken.
    Load { file: PathBuf },
    /// Describe one cell as JSON: validity, hash, pruned matrix and ops, parameter count.
    ///
    /// A well-formed cell outside the NB101 space (disconnected, more than 9 edges) prints
    /// `"valid": false` with the reason; malformed input is an error (exit 2).
    Info {
        /// Row-major adjacency as a 0/1 string of n*n characters.
        #[arg(long)]
        matrix: String,
        /// Comma-separated ops: input,conv3x3-bn-relu,conv1x1-bn-relu,maxpool3x3,output.
        #[arg(long)]
        ops: String,
        /// Stem channels of the network the parameter count is for.
        #[arg(long, default_value_t = 128)]
        channels: usize,
        #[arg(long, default_value_t = 3)]
        stacks: usize,
        #[arg(long, default_value_t = 3)]
        cells_per_stack: usize,
        #[arg(long, default_value_t = 10)]
        classes: usize,
    },
    /// Load a benchmark table (*.tfrecord, arch2vec data.json, *.jsonl) and join it with the
    /// space; print a JSON summary.
    Table {
        file: PathBuf,
        /// A space file from `enumerate --out` (default: enumerate now).
        #[arg(long)]
        space: Option<PathBuf>,
    },
}

fn failed(e: impl std::fmt::Display) -> ToolError {
    ToolError::Failed(e.to_string())
}

fn run_nb101(args: Nb101) -> Result<(), ToolError> {
    match args.cmd {
        Nb101Cmd::Enumerate { out, format } => enumerate(out, format),
        Nb101Cmd::Load { file } => {
            let t0 = Instant::now();
            let space = Space::read(&file).map_err(|e| ToolError::Usage(e.to_string()))?;
            println!(
                "{} cells loaded in {:.3} s",
                space.len(),
                t0.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Nb101Cmd::Info {
            matrix,
            ops,
            channels,
            stacks,
            cells_per_stack,
            classes,
        } => {
            let cell = Cell::parse(&matrix, &ops)
                .map_err(|e| ToolError::Usage(format!("--matrix/--ops: {e}")))?;
            let skeleton = Skeleton {
                in_channels: 3,
                init_channels: channels,
                stacks,
                cells_per_stack,
                classes,
            };
            let v = match cell.canonical() {
                Ok(c) => {
                    let a = Arch2vec::encode(&c);
                    json!({
                        "valid": true,
                        "hash": module_hash(&c),
                        "matrix": c.matrix(),
                        "ops": c.ops().iter().map(|o| o.name()).collect::<Vec<_>>(),
                        "vertices": c.num_vertices(),
                        "edges": c.num_edges(),
                        "pruned": c != cell,
                        "trainable_parameters": trainable_parameters(&c, &skeleton),
                        "arch2vec": {"adjacency": a.adj, "ops": a.ops},
                    })
                }
                Err(e) => json!({"valid": false, "reason": e.to_string()}),
            };
            println!("{}", serde_json::to_string(&v).expect("json"));
            Ok(())
        }
        Nb101Cmd::Table { file, space } => {
            let t0 = Instant::now();
            let table = Table::load(&file).map_err(|e| ToolError::Usage(e.to_string()))?;
            let space = match space {
                Some(p) => Space::read(&p).map_err(|e| ToolError::Usage(e.to_string()))?,
                None => Space::enumerate(),
            };
            let (found, missing) = table.join(&space);
            let best = |f: fn(&crate::nb101::Figures) -> Option<f64>| {
                table
                    .rows()
                    .iter()
                    .filter_map(|r| f(&r.figures))
                    .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
            };
            let v = json!({
                "file": file,
                "rows": table.len(),
                "in_space": found.len(),
                "not_in_space": missing,
                "best_validation_accuracy": best(|f| f.validation_accuracy),
                "best_test_accuracy": best(|f| f.test_accuracy),
                "seconds": t0.elapsed().as_secs_f64(),
            });
            println!("{}", serde_json::to_string(&v).expect("json"));
            Ok(())
        }
    }
}

fn enumerate(out: Option<PathBuf>, format: Option<Format>) -> Result<(), ToolError> {
    let t0 = Instant::now();
    let space = Space::enumerate();
    let took = t0.elapsed().as_secs_f64();
    let is_jsonl =
        |p: &PathBuf| p.as_os_str() == "-" || p.extension().is_some_and(|e| e == "jsonl");
    let format = format.unwrap_or(match &out {
        Some(p) if is_jsonl(p) => Format::Jsonl,
        _ => Format::Bin,
    });
    let to_stdout = out.as_ref().is_some_and(|p| p.as_os_str() == "-");
    let report = format!("{} unique cells in {took:.2} s", space.len());
    if to_stdout {
        eprintln!("{report}")
    } else {
        println!("{report}")
    }
    let Some(path) = out else { return Ok(()) };
    let t1 = Instant::now();
    match format {
        Format::Bin if to_stdout => {
            return Err(ToolError::Usage(
                "--format bin cannot go to stdout; give a file name".into(),
            ))
        }
        Format::Bin => space
            .write(&path)
            .map_err(|e| failed(format!("{}: {e}", path.display())))?,
        Format::Jsonl => {
            let sink: Box<dyn Write> = if to_stdout {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(
                    File::create(&path).map_err(|e| failed(format!("{}: {e}", path.display())))?,
                )
            };
            let mut w = BufWriter::with_capacity(1 << 20, sink);
            for (h, c) in space.entries() {
                let line = json!({"hash": h, "matrix": c.matrix(), "ops": c.ops().iter().map(|o| o.name()).collect::<Vec<_>>()});
                serde_json::to_writer(&mut w, &line).map_err(failed)?;
                w.write_all(b"\n").map_err(failed)?;
            }
            w.flush().map_err(failed)?;
        }
    }
    if !to_stdout {
        println!(
            "wrote {} in {:.2} s",
            path.display(),
            t1.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
