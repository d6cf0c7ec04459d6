//! What a run shows: progress bars on a terminal (indicatif), plain timestamped lines otherwise.
use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Ui {
    multi: Option<MultiProgress>,
    quiet: bool,
    /// Put before every line (`[variant] `, when variants run at the same time).
    prefix: String,
}

impl Ui {
    /// Bars when stderr is a terminal (and `NASFLOW_PLAIN` is unset), lines otherwise.
    pub fn new() -> Ui {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("NASFLOW_PLAIN").is_none();
        Ui {
            multi: tty.then(MultiProgress::new),
            quiet: false,
            prefix: String::new(),
        }
    }

    /// Lines only, each starting with `[name] `: for variants that run at the same time (one
    /// terminal cannot hold several sets of bars).
    pub fn tagged(name: &str) -> Ui {
        Ui {
            multi: None,
            quiet: false,
            prefix: format!("[{name}] "),
        }
    }

    /// Shows nothing (tests).
    pub fn quiet() -> Ui {
        Ui {
            multi: None,
            quiet: true,
            prefix: String::new(),
        }
    }

    /// A log line: `[HH:MM:SS] message`.
    /// A line as [`Ui::line`] writes it: `[HH:MM:SS] ` and the message, with its newline.
    pub fn format_line(&self, message: &str) -> String {
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let time = stamp.get(11..19).unwrap_or(&stamp);
        format!("[{time}] {}{message}\n", self.prefix)
    }

    pub fn line(&self, message: &str) {
        if self.quiet {
            return;
        }
        let line = self.format_line(message);
        match &self.multi {
            Some(m) => {
                let _ = m.println(line.trim_end());
            }
            // One write a line (stderr is unbuffered: `eprintln!` writes each piece apart).
            None => {
                use std::io::Write;
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
        }
    }

    /// A bar counting `unit` (items, steps) for a stage (terminal only).
    pub fn bar(&self, stage: &str, unit: &str, total: u64, done: u64) -> Option<ProgressBar> {
        let m = self.multi.as_ref()?;
        let bar = m.add(ProgressBar::new(total));
        let template = if unit == "bytes" {
            "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})  {elapsed} (eta {eta})"
                .to_string()
        } else {
            format!(
                "{{prefix:>12}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{elapsed}} (eta {{eta}}) {{msg}}"
            )
        };
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        bar.set_position(done);
        Some(bar)
    }
}

/// `95s`, `12m 05s`, `2h 03m`.
pub fn human_seconds(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A whole stage's progress reports: a bar on a terminal, made at the first report in the
/// stage's own unit; otherwise a line at most every few seconds (`NASFLOW_PROGRESS_SECONDS`,
/// default 10) with the count, the note (a loss) and an ETA from the stage's own rate.
pub struct StageProgress<'u> {
    ui: &'u Ui,
    stage: String,
    started: Instant,
    every: Duration,
    bar: OnceLock<Option<ProgressBar>>,
    last_line: Mutex<Option<Instant>>,
}

impl<'u> StageProgress<'u> {
    pub fn new(ui: &'u Ui, stage: &str) -> StageProgress<'u> {
        let every = std::env::var("NASFLOW_PROGRESS_SECONDS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(10.0);
        StageProgress {
            ui,
            stage: stage.to_string(),
            started: Instant::now(),
            every: Duration::from_secs_f64(every.max(0.0)),
            bar: OnceLock::new(),
            last_line: Mutex::new(None),
        }
    }

    pub fn report(&self, p: &nasflow_contract::Progress) {
        let unit = if p.unit.is_empty() {
            "steps"
        } else {
            p.unit.as_str()
        };
        let bar = self
            .bar
            .get_or_init(|| self.ui.bar(&self.stage, unit, p.total, p.done));
        if let Some(bar) = bar {
            bar.set_length(p.total);
            bar.set_position(p.done);
            if !p.note.is_empty() {
                bar.set_message(p.note.clone());
            }
            return;
        }
        let now = Instant::now();
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|t| now.duration_since(t) >= self.every);
        if !due || p.total == 0 {
            return;
        }
        *last = Some(now);
        self.ui.line(&self.line(p, unit));
    }

    fn line(&self, p: &nasflow_contract::Progress, unit: &str) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let pct = 100.0 * p.done as f64 / p.total as f64;
        // An ETA once the rate means something (5% done, or 5 s in).
        let settled = p.done * 20 >= p.total || elapsed >= 5.0;
        let eta = (settled && p.done > 0 && p.done < p.total)
            .then(|| elapsed / p.done as f64 * (p.total - p.done) as f64)
            .map(|s| format!(", eta {}", human_seconds(s)))
            .unwrap_or_default();
        let note = if p.note.is_empty() {
            String::new()
        } else {
            format!(", {}", p.note)
        };
        let (done, total, unit) = if unit == "bytes" {
            let b = |n| indicatif::HumanBytes(n).to_string();
            (b(p.done), b(p.total), "")
        } else {
            (p.done.to_string(), p.total.to_string(), unit)
        };
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        format!(
            "       {}: {done}/{total}{unit} ({pct:.0}%){note}{eta}",
            self.stage
        )
    }

    pub fn finish(&self) {
        if let Some(Some(bar)) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

impl Default for Ui {
    fn default() -> Self {
        Self::new()
    }
}
