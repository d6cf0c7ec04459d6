//! What a run shows: progress bars on a terminal (indicatif), plain timestamped lines otherwise.
use std::io::IsTerminal;
use std::time::SystemTime;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Ui {
    multi: Option<MultiProgress>,
    quiet: bool,
}

impl Ui {
    /// Bars when stderr is a terminal (and `NASFLOW_PLAIN` is unset), lines otherwise.
    pub fn new() -> Ui {
        let tty = std::io::stderr().is_terminal() && std::env::var_os("NASFLOW_PLAIN").is_none();
        Ui {
            multi: tty.then(MultiProgress::new),
            quiet: false,
        }
    }

    /// Shows nothing (tests).
    pub fn quiet() -> Ui {
        Ui {
            multi: None,
            quiet: true,
        }
    }

    /// A log line: `[HH:MM:SS] message`.
    pub fn line(&self, message: &str) {
        if self.quiet {
            return;
        }
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let time = stamp.get(11..19).unwrap_or(&stamp);
        let line = format!("[{time}] {message}\n");
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
        let template = format!(
            "{{prefix:>12}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{elapsed}} (eta {{eta}}) {{msg}}"
        );
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

impl Default for Ui {
    fn default() -> Self {
        Self::new()
    }
}
