//! The `nasflow` command line: arguments ([`args`]), the commands behind them, and the exit
//! codes (0 ok, 1 a stage failed, 2 bad usage or config, 130 interrupted). Library errors are
//! typed; here, at the edge, they become `anyhow` errors and [`is_usage_error`] picks the code.
mod args;
mod headline;
mod inspect;
mod metrics;
mod noop;
mod plots;
mod project;
mod report;
mod results;
mod run;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use nasflow_contract::ToolError;

use crate::cache::remote::OpenError;
use crate::config::ConfigError;
use crate::dag::UnknownTarget;
use crate::engine::EngineError;
use crate::registry::Registry;
use args::{Cli, Command};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// Bad usage or config: exit code 2.
fn is_usage_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.is::<ConfigError>()
            || e.is::<UnknownTarget>()
            || e.is::<UsageError>()
            || e.downcast_ref::<EngineError>()
                .is_some_and(EngineError::is_usage)
            || e.downcast_ref::<OpenError>()
                .is_some_and(|o| matches!(o, OpenError::NoDir(_)))
    })
}

/// Runs the command line with the kinds and tools of `registry`.
pub fn main(registry: Registry) -> ExitCode {
    // `nasflow show STAGE | head` must end quietly, as other Unix tools do, not panic on EPIPE.
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let mut command = Cli::command();
    for t in registry.tools() {
        command = command.subcommand((t.command)());
    }
    let matches = command.get_matches();
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(tool) = registry.tools().iter().find(|t| t.name() == name) {
            return match (tool.run)(sub) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(if matches!(e, ToolError::Usage(_)) {
                        2
                    } else {
                        1
                    })
                }
            };
        }
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match dispatch(cli, &registry) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", render(&err));
            ExitCode::from(if is_usage_error(&err) { 2 } else { 1 })
        }
    }
}

/// An error and its causes, each cause once: library errors often show their source in their own
/// message already (`path: No such file`), and `{:#}` would repeat it.
fn render(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let c = cause.to_string();
        if text.is_empty() {
            text = c;
        } else if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// The pipeline file: `-p FILE`, `-p DIR` (its pipeline.toml), or pipeline.toml in the current
/// directory or its nearest parent that has one (as git finds its repository).
fn pipeline_file(arg: Option<PathBuf>) -> PathBuf {
    const NAME: &str = "pipeline.toml";
    match arg {
        Some(p) if p.is_dir() => p.join(NAME),
        Some(p) => p,
        None => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let found = cwd.ancestors().map(|d| d.join(NAME)).find(|f| f.is_file());
            match found {
                Some(f) if f.parent() == Some(cwd.as_path()) => PathBuf::from(NAME),
                Some(f) => f,
                None => PathBuf::from(NAME),
            }
        }
    }
}

/// Runs `f` on the pipeline, or on each selected variant or sweep point in turn (a header line
/// before each where the output is text); the worst exit code wins.
fn each_point(
    reg: &Registry,
    file: &Path,
    sets: &args::Sets,
    machine_output: bool,
    f: impl Fn(&project::Project) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let points = project::selected(file, sets)?;
    if points.len() > 1 && machine_output {
        return Err(UsageError(format!(
            "--json and --path take one variant; {} were selected",
            points.len()
        ))
        .into());
    }
    let mut code = ExitCode::SUCCESS;
    for (name, overrides) in &points {
        if !name.is_empty() && points.len() > 1 {
            println!("== variant {name}");
        }
        let c = f(&project::Project::load(reg, file, overrides)?)?;
        if c != ExitCode::SUCCESS {
            code = c;
        }
    }
    Ok(code)
}

fn dispatch(cli: Cli, reg: &Registry) -> anyhow::Result<ExitCode> {
    let file = &pipeline_file(cli.pipeline);
    match cli.command {
        Command::Run {
            targets,
            sets,
            jobs,
            force,
            dry_run,
            remote,
            executor,
        } => run::run_variants(
            reg,
            file,
            &run::RunArgs {
                targets,
                sets,
                jobs,
                force,
                dry_run,
                remote,
                executor,
            },
        ),
        Command::Plan {
            targets,
            sets,
            json,
        } => each_point(reg, file, &sets, json, |p| {
            inspect::plan(p, &targets, &[], json)
        }),
        Command::Why { stage, sets } => inspect::why(&project::load_one(reg, file, &sets)?, &stage),
        Command::Status { sets, json } => {
            each_point(reg, file, &sets, json, |p| inspect::status(p, json))
        }
        Command::Dag { format } => inspect::dag(&project::Project::load(reg, file, &[])?, &format),
        Command::Show {
            stage,
            sets,
            json,
            path,
        } => each_point(reg, file, &sets, json || path, |p| {
            inspect::show(p, &stage, (json, path))
        }),
        Command::Log {
            stage,
            item,
            file: name,
            sets,
        } => inspect::log(
            &project::load_one(reg, file, &sets)?,
            &stage,
            item,
            name.as_deref(),
        ),
        Command::Params {
            kind,
            markdown,
            json,
        } => inspect::params(reg, kind.as_deref(), markdown, json),
        Command::Metrics {
            stages,
            sets,
            compare,
            compare_set,
            aggregate,
            changed,
            all,
            sort,
            filter,
            format,
            json,
        } => metrics::metrics(
            reg,
            file,
            &stages,
            &sets,
            (&compare, &compare_set),
            metrics::Show {
                aggregate,
                changed,
                all,
                by_value: sort == args::MetricsSort::Value,
                filter: metrics::filter(&filter)?,
                format: if json {
                    args::MetricsFormat::Json
                } else {
                    format
                },
            },
        ),
        Command::Plots {
            stages,
            sets,
            compare,
            out,
            aggregate,
            format,
            size,
        } => {
            let dir = file.parent().unwrap_or(Path::new("")).join("plots");
            let how = (&sets, compare.as_slice(), aggregate);
            let draw = plots::Draw {
                png: format != args::PlotFormat::Svg,
                svg: format != args::PlotFormat::Png,
                size,
            };
            plots::plots(reg, file, &stages, how, draw, &out.unwrap_or(dir))
        }
        Command::Report { sets, out } => {
            let dir = file.parent().unwrap_or(Path::new("")).join("report");
            report::report(reg, file, &sets, &out.unwrap_or(dir))
        }
        Command::Gc { dry_run, keep } => {
            store::gc(&project::Project::load(reg, file, &[])?, keep, dry_run)
        }
        Command::Cache(c) => store::cache_command(reg, file, c),
        Command::Supervise {
            watchdog_fd,
            command,
        } => Ok(crate::runner::supervise::main(
            watchdog_fd,
            &command[0],
            &command[1..],
        )),
        Command::SlurmTask { manifest, task } => match crate::slurm::task::run(&manifest, task) {
            Ok(done) => {
                eprintln!("nasflow slurm-task: {done}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(1))
            }
        },
    }
}
