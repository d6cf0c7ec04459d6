//! Command-line arguments (clap).
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Override;

/// A make-like build system for neural-architecture-search pipelines: stages declared in
/// pipeline.toml form a DAG; their outputs are content-addressed in a cache, so after an edit only
/// the stages downstream of it rerun.
///
/// Exit codes: 0 ok, 1 a stage failed, 2 bad usage or config, 130 interrupted (Ctrl-C).
#[derive(Debug, Parser)]
#[command(name = "nasflow", version, about, long_about)]
pub struct Cli {
    /// The pipeline file, or a directory holding pipeline.toml (default: pipeline.toml in the
    /// current directory or the nearest parent that has one).
    #[arg(
        long,
        short = 'p',
        global = true,
        env = "NASFLOW_PIPELINE",
        value_name = "FILE|DIR"
    )]
    pub pipeline: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone, Default)]
pub struct Sets {
    /// Override a stage param for this invocation: --set stage.param=value (value typed as TOML).
    #[arg(long = "set", value_name = "STAGE.PARAM=VALUE")]
    pub sets: Vec<Override>,
    /// Apply a variant declared in pipeline.toml ([variants.NAME], or every point of a
    /// [sweeps.NAME] matrix); repeatable for run and metrics.
    #[arg(long = "variant", value_name = "NAME")]
    pub variant: Vec<String>,
    /// Every declared variant (run, metrics, plots); a word after it is a stage, not a variant
    /// (`--variant NAME` names one).
    #[arg(long = "variants")]
    pub variants: bool,
}

impl Sets {
    /// The variant names asked for (`all` for every one).
    pub fn names(&self) -> Vec<String> {
        let mut n = self.variant.clone();
        if self.variants {
            n.push("all".into());
        }
        n
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the targets (default: every stage) and whatever they depend on.
    ///
    /// Native stage kinds run in persistent `nasflow-worker` processes, one per job slot, each
    /// serving item after item (NASFLOW_WORKERS=per-job: a fresh process per job instead;
    /// NASFLOW_WORKERS=shared:K: one process serving K jobs at once, a CUDA stream each).
    Run {
        /// Stages to act on (default: all), with what they depend on.
        targets: Vec<String>,
        #[command(flatten)]
        sets: Sets,
        /// How many stages or items run at once (default: pipeline's `jobs`, else the CPU count).
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
        /// Rerun this stage even if it is cached (repeatable).
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
        /// Print the plan instead of running it.
        #[arg(long)]
        dry_run: bool,
        /// A remote cache (a directory on a shared filesystem, or an http:// URL): fetch what it
        /// has before running, upload what ran after. Remote failures are reported; the run
        /// still succeeds. An HTTP remote is switched off after a request past
        /// NASFLOW_REMOTE_TIMEOUT (30 s) or NASFLOW_REMOTE_BUDGET (120 s) of waiting in all.
        #[arg(
            long,
            value_name = "DIR|URL",
            env = "NASFLOW_REMOTE",
            hide_env_values = true
        )]
        remote: Option<String>,
        /// Where items of item-level stages run: `local`, or `slurm` (job arrays; settings from
        /// [pipeline.executor], defaults otherwise). Default: the pipeline's executor.
        #[arg(long, value_parser = ["local", "slurm"])]
        executor: Option<String>,
    },
    /// Show what would run and why.
    Plan {
        /// Stages to act on (default: all), with what they depend on.
        targets: Vec<String>,
        #[command(flatten)]
        sets: Sets,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Explain which part of a stage's key changed since its last record.
    Why {
        /// The stage (its name in pipeline.toml).
        stage: String,
        #[command(flatten)]
        sets: Sets,
    },
    /// Show every stage's state: cached, or why it would run.
    Status {
        #[command(flatten)]
        sets: Sets,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Print the stage graph.
    Dag {
        /// text, dot (Graphviz) or mermaid.
        #[arg(long, default_value = "text", value_parser = ["text", "dot", "mermaid"])]
        format: String,
    },
    /// Show a stage's output directory, files and provenance.
    Show {
        /// The stage (its name in pipeline.toml).
        stage: String,
        #[command(flatten)]
        sets: Sets,
        /// The record as JSON (with `out_dir` and `current`).
        #[arg(long, conflicts_with = "path")]
        json: bool,
        /// Only the path of the output directory (for scripts).
        #[arg(long)]
        path: bool,
    },
    /// Print what a stage's run wrote to stdout and stderr and the progress it reported (progress.log), or another file of its provenance.
    Log {
        /// The stage (its name in pipeline.toml).
        stage: String,
        /// For an item-level stage: the item (0-based; default: every item).
        #[arg(long)]
        item: Option<usize>,
        /// Print this file of the provenance instead of the logs (e.g. `timing.json`).
        #[arg(long, value_name = "NAME")]
        file: Option<String>,
        #[command(flatten)]
        sets: Sets,
    },
    /// List each stage kind's params: type, default, allowed values and doc.
    Params {
        /// One kind (default: all).
        kind: Option<String>,
        /// As Markdown tables (the README's are generated this way).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// Machine-readable output (JSON).
        #[arg(long)]
        json: bool,
    },
    /// Print the summary numbers of the current results (each stage's `summary.json`) as a table;
    /// with --compare or --compare-set, side by side with the differences.
    Metrics {
        /// Stages to show (default: all).
        stages: Vec<String>,
        #[command(flatten)]
        sets: Sets,
        /// Another pipeline file to compare with (repeatable: one column each).
        #[arg(long, value_name = "PIPELINE")]
        compare: Vec<PathBuf>,
        /// Compare with this pipeline changed by STAGE.PARAM=VALUE (repeatable: together they
        /// make one more column).
        #[arg(long = "compare-set", value_name = "STAGE.PARAM=VALUE")]
        compare_set: Vec<Override>,
        /// Join the columns as replicates (e.g. a sweep over a seed: `--variant NAME
        /// --aggregate`): per number its mean and a bootstrapped 95% interval. With variants
        /// selected, their columns only; otherwise every column.
        #[arg(long)]
        aggregate: bool,
        /// Only the metrics whose values differ between the columns.
        #[arg(long)]
        changed: bool,
        /// Every metric of every stage (the table's default is the short view: each stage's key
        /// metrics, the numbers its headline rests on; --filter, --changed and the other formats
        /// show every metric too).
        #[arg(long)]
        all: bool,
        /// Row order within a stage: by metric name, or by the first column's value (ascending).
        #[arg(long, value_enum, default_value_t = MetricsSort::Name)]
        sort: MetricsSort,
        /// Only the metrics whose name, or STAGE.NAME, matches GLOB (repeatable; `*` any run of
        /// characters, `?` one: `--filter '*final_regret_valid'`).
        #[arg(long, value_name = "GLOB")]
        filter: Vec<String>,
        /// table (aligned; in long form when wider than the terminal), csv, tsv or jsonl (long
        /// form: stage, column, metric, value), json (the columns).
        #[arg(long, value_enum, default_value_t = MetricsFormat::Table)]
        format: MetricsFormat,
        /// Same as --format json.
        #[arg(long)]
        json: bool,
    },
    /// Draw each chart of the stages' current results (PNG and SVG), overlaying the pipeline
    /// with the selected variants and the --compare pipelines (one colour per source and series).
    Plots {
        /// Stages whose charts to draw (default: all).
        stages: Vec<String>,
        #[command(flatten)]
        sets: Sets,
        /// Another pipeline file to overlay (repeatable).
        #[arg(long, value_name = "PIPELINE")]
        compare: Vec<PathBuf>,
        /// Where to write STAGE/NAME.png and .svg (default: plots/ beside pipeline.toml).
        #[arg(short, long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The selected variants as replicates (a sweep over a seed): each line's mean over them
        /// with a bootstrapped 95% band, instead of one line each.
        #[arg(long)]
        aggregate: bool,
        /// What to draw: png, svg, or both (PDF: no well-kept Rust crate draws plotters' charts
        /// to PDF; convert an SVG, e.g. `rsvg-convert -f pdf`).
        #[arg(long, value_enum, default_value_t = PlotFormat::Both)]
        format: PlotFormat,
        /// The drawings' size in pixels, WIDTHxHEIGHT (e.g. 1600x900; 200x150 to 8000x8000).
        #[arg(long, value_name = "WxH", value_parser = parse_size, default_value = "1200x720")]
        size: (u32, u32),
    },
    /// Write a static HTML report (no script, no network; open it from the file): the DAG with
    /// each stage's state, key, duration, peak memory and device, the params (what differs from
    /// the base marked), the metrics of the pipeline and its selected variants, their charts
    /// overlaid, and links to output files and logs.
    Report {
        #[command(flatten)]
        sets: Sets,
        /// Where to write index.html (and figures/) (default: report/ beside pipeline.toml).
        #[arg(short, long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Delete cache entries the current pipeline does not need, keeping the last N per stage,
    /// and partial downloads left untouched for an hour.
    Gc {
        /// Say what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Records to keep per stage besides the current ones.
        #[arg(long, default_value_t = 3)]
        keep: usize,
    },
    /// The cache: a CI key, bundles (export/import), remotes (push/pull), verification.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// One task of a Slurm array submitted by `nasflow run` with the slurm executor: computes
    /// item $SLURM_ARRAY_TASK_ID of the manifest into the shared cache.
    #[command(hide = true)]
    SlurmTask {
        /// The submission manifest written by `nasflow run`.
        manifest: PathBuf,
        /// The task (default: $SLURM_ARRAY_TASK_ID), to rerun one by hand.
        #[arg(long)]
        task: Option<usize>,
    },
    /// What each job's command runs under: kills the command's process group when the command
    /// ends, or when nasflow dies (the watchdog pipe closes).
    #[command(hide = true)]
    Supervise {
        /// The read end of the watchdog pipe.
        #[arg(long)]
        watchdog_fd: i32,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

/// How `nasflow metrics` prints.
/// What `nasflow plots` draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PlotFormat {
    Png,
    Svg,
    Both,
}

/// `WIDTHxHEIGHT` in pixels, each within 200..=8000 (for --size).
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not WIDTHxHEIGHT in pixels (e.g. 1600x900)");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let (w, h): (u32, u32) = (
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    );
    if !(200..=8000).contains(&w) || !(150..=8000).contains(&h) {
        return Err(format!(
            "{s:?}: width 200 to 8000 and height 150 to 8000 pixels"
        ));
    }
    Ok((w, h))
}

/// The row order of `nasflow metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsSort {
    Name,
    Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsFormat {
    Table,
    Csv,
    Tsv,
    Json,
    Jsonl,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Upload the current results of the targets (default: all) and their upstream to a remote
    /// cache (a directory on a shared filesystem, or an http:// URL).
    Push {
        /// A directory on a shared filesystem, or an http(s):// URL.
        remote: String,
        /// Stages to act on (default: all), with what they depend on.
        targets: Vec<String>,
    },
    /// Download from a remote cache (directory or http:// URL) the results the targets (default:
    /// all) would otherwise compute; every blob is verified against its digest.
    Pull {
        /// A directory on a shared filesystem, or an http(s):// URL.
        remote: String,
        /// Stages to act on (default: all), with what they depend on.
        targets: Vec<String>,
    },
    /// Print a key of the targets' definitions (default: all stages) and everything upstream,
    /// for CI cache services (actions/cache): it is known before running and changes whenever
    /// a stage key could.
    Key {
        /// Stages whose definitions the key covers (default: all), with their upstream.
        targets: Vec<String>,
    },
    /// Write the current results of the targets (default: all) and their upstream to a bundle.
    Export {
        /// The bundle to write (a tar file).
        file: PathBuf,
        /// Stages whose results to export (default: all), with their upstream.
        targets: Vec<String>,
    },
    /// Add a bundle's results to the cache (each blob is checked against its digest).
    Import {
        /// The bundle to read (written by `cache export`).
        file: PathBuf,
    },
    /// Re-hash every blob; drop corrupt ones and the records using them, so the next run
    /// recomputes them.
    Verify {
        /// Say what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every option and argument of every command says what it does in `--help`.
    #[test]
    fn every_option_has_a_help_line() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "nasflow", &mut missing);
        assert!(
            missing.is_empty(),
            "options without a help line: {missing:?}"
        );
    }
}
