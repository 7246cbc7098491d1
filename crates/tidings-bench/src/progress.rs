//! What the operator sees while a run goes on: an indicatif bar on stderr
//! when stderr is a terminal (or when `--progress` asks for it), otherwise
//! one plain line per phase.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The run's progress display.
#[derive(Debug)]
pub struct Display {
    /// The bar, when one is drawn.
    bar: Option<ProgressBar>,
}

impl Display {
    /// A bar on stderr if it is a terminal or `force` is set, else plain
    /// phase lines.
    pub fn new(force: bool) -> Self {
        let stderr = console::Term::stderr();
        let bar = if stderr.is_term() {
            Some(ProgressBar::with_draw_target(
                None,
                ProgressDrawTarget::stderr_with_hz(4),
            ))
        } else if force {
            Some(ProgressBar::with_draw_target(
                None,
                ProgressDrawTarget::term_like_with_hz(Box::new(stderr), 4),
            ))
        } else {
            None
        };
        if let Some(bar) = &bar {
            bar.enable_steady_tick(Duration::from_millis(250));
        }
        Self { bar }
    }

    /// Starts a phase of `len` steps (0: no known length).
    pub fn phase(&self, name: &str, len: u64) {
        match &self.bar {
            Some(bar) => {
                let template = if len > 0 {
                    "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}"
                } else {
                    "{prefix:>10} [{elapsed_precise}] {spinner} {msg}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style);
                }
                bar.set_prefix(name.to_owned());
                bar.set_length(len);
                bar.set_position(0);
                bar.set_message("");
            }
            None => note(&format!("{name}…")),
        }
    }

    /// Updates the current phase.
    pub fn update(&self, position: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(message.to_owned());
        }
    }

    /// Prints a line (above the bar when there is one).
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => note(line),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// One line on stderr.
#[allow(
    clippy::print_stderr,
    reason = "the tool's own status lines go to stderr"
)]
pub fn note(line: &str) {
    eprintln!("{line}");
}
