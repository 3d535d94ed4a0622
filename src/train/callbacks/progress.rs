//! Progress: an indicatif bar with ETA, loss and accuracy on a terminal; plain log lines
//! per epoch otherwise. Every epoch line also goes to the run's log file.

use crate::train::trainer::{Callback, EpochInfo, Outcome, StartInfo, Status, StepInfo};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::Path;

pub struct Progress {
    bar: Option<ProgressBar>,
    log: Option<File>,
    quiet: bool,
    epochs: usize,
    last_acc: Option<f64>,
}

impl Progress {
    /// `log_path`: the job's log file (appended). `quiet`: nothing on stdout.
    pub fn new(log_path: Option<&Path>, quiet: bool) -> Progress {
        let log = log_path.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
        Progress {
            bar: None,
            log,
            quiet,
            epochs: 0,
            last_acc: None,
        }
    }

    fn line(&mut self, s: &str) {
        let stamp = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        if let Some(f) = self.log.as_mut() {
            let _ = writeln!(f, "[{stamp}] {s}");
            let _ = f.flush();
        }
        if !self.quiet {
            statusln!("{s}");
        }
    }
}

fn fmt_metrics(items: &[(String, f64)]) -> String {
    items
        .iter()
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Callback for Progress {
    fn on_train_start(&mut self, info: &StartInfo) -> Result<()> {
        self.epochs = info.epochs;
        if !self.quiet && !crate::shell::quiet() && std::io::stdout().is_terminal() {
            let bar = ProgressBar::new(info.total_steps as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_position(info.start_step as u64);
            crate::shell::attach_bar(&bar);
            self.bar = Some(bar);
        }
        let what = if info.frozen > 0 {
            format!(
                "{} of {} parameters ({} frozen)",
                info.num_params - info.frozen,
                info.num_params,
                info.frozen
            )
        } else {
            format!("{} parameters", info.num_params)
        };
        let from = info
            .init_from
            .map(|p| format!(" from {}", p.display()))
            .unwrap_or_default();
        self.line(&format!(
            "training {what}{from} for {} epochs ({} steps, {} per epoch){}",
            info.epochs,
            info.total_steps,
            info.steps_per_epoch,
            if info.start_step > 0 {
                format!(
                    ", resuming after epoch {} (step {})",
                    info.start_epoch, info.start_step
                )
            } else {
                String::new()
            }
        ));
        Ok(())
    }

    fn on_batch_end(&mut self, s: &StepInfo) -> Result<()> {
        if s.acc.is_some() {
            self.last_acc = s.acc;
        }
        if let Some(b) = &self.bar {
            b.set_position(s.step as u64);
            if s.step.is_multiple_of(10) || s.step == 1 {
                let acc = self
                    .last_acc
                    .map(|a| format!(" acc {a:.3}"))
                    .unwrap_or_default();
                b.set_message(format!("epoch {} loss {:.4}{acc}", s.epoch, s.loss));
            }
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        let mut items = vec![("train_loss".to_string(), e.train_loss)];
        if let Some(a) = e.train_acc {
            items.push(("train_acc".into(), a));
        }
        items.extend(e.eval.iter().cloned());
        // Epochs are named 0-based everywhere (metrics files, --epoch, figure titles, W&B);
        // the count in brackets is how far the run is.
        let msg = format!(
            "epoch {} ({}/{}) step {}: {}",
            e.epoch.saturating_sub(1),
            e.epoch,
            self.epochs,
            e.step,
            fmt_metrics(&items)
        );
        self.line(&msg);
        Ok(())
    }

    fn on_train_end(
        &mut self,
        o: &Outcome,
        _model: &dyn crate::train::trainer::ModelView,
    ) -> Result<()> {
        if let Some(b) = self.bar.take() {
            crate::shell::detach_bar();
            b.finish_and_clear();
        }
        let msg = match &o.status {
            Status::Completed => match &o.stopped_early {
                Some(why) => why.clone(),
                None => format!("finished: {} steps", o.steps),
            },
            Status::Diverged { step, loss } => {
                format!("stopped: the loss became {loss} at step {step}")
            }
            Status::Interrupted => format!("interrupted at step {}", o.steps),
        };
        self.line(&msg);
        Ok(())
    }
}
