//! `metrics.jsonl` and `metrics.csv`: one row per logged training step (window means)
//! and one per evaluated epoch, the same columns in both; appended and flushed per row.

use crate::train::trainer::{Callback, EpochInfo, StartInfo, StepInfo};
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Mean training loss over the steps since the last logged row: what metrics.jsonl and W&B
/// both report on `log_every` steps.
#[derive(Default)]
pub struct LossWindow {
    sum: f64,
    n: usize,
}

impl LossWindow {
    pub fn add(&mut self, loss: f64) {
        self.sum += loss;
        self.n += 1;
    }

    /// The mean so far; starts a new window.
    pub fn take(&mut self) -> f64 {
        let mean = self.sum / self.n.max(1) as f64;
        *self = LossWindow::default();
        mean
    }
}

pub struct MetricsWriter {
    dir: PathBuf,
    log_every: usize,
    columns: Vec<String>,
    jsonl: Option<File>,
    csv: Option<File>,
    started: Instant,
    /// Wall time already spent before a resume, so `time_s` keeps increasing.
    offset_s: f64,
    window: LossWindow,
}

impl MetricsWriter {
    pub fn new(dir: &Path, log_every: usize, offset_s: f64) -> MetricsWriter {
        MetricsWriter {
            dir: dir.to_path_buf(),
            log_every: log_every.max(1),
            columns: vec![],
            jsonl: None,
            csv: None,
            started: Instant::now(),
            offset_s,
            window: LossWindow::default(),
        }
    }

    fn write_row(&mut self, values: &[(String, f64)]) -> Result<()> {
        let mut obj = serde_json::Map::new();
        for (k, v) in values {
            let val = if *v == v.trunc() && (k == "step" || k == "epoch") {
                serde_json::json!(*v as i64)
            } else if v.is_finite() {
                serde_json::json!(v)
            } else {
                serde_json::Value::String(v.to_string())
            };
            obj.insert(k.clone(), val);
        }
        let line = serde_json::Value::Object(obj).to_string();
        let csv_line = self
            .columns
            .iter()
            .map(|c| {
                values
                    .iter()
                    .find(|(k, _)| k == c)
                    .map(|(k, v)| {
                        if k == "step" || k == "epoch" {
                            format!("{}", *v as i64)
                        } else {
                            format!("{v}")
                        }
                    })
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(",");
        if let Some(f) = self.jsonl.as_mut() {
            writeln!(f, "{line}").context("writing metrics.jsonl")?;
            f.flush()?;
        }
        if let Some(f) = self.csv.as_mut() {
            writeln!(f, "{csv_line}").context("writing metrics.csv")?;
            f.flush()?;
        }
        Ok(())
    }

    fn elapsed(&self) -> f64 {
        self.offset_s + self.started.elapsed().as_secs_f64()
    }
}

impl Callback for MetricsWriter {
    fn on_train_start(&mut self, info: &StartInfo) -> Result<()> {
        self.columns = ["step", "epoch", "lr", "train_loss", "train_acc"]
            .iter()
            .map(|s| s.to_string())
            .chain(info.eval_names.iter().cloned())
            .chain(std::iter::once("time_s".to_string()))
            .collect();
        let open = |name: &str| {
            let p = self.dir.join(name);
            let existed = p.exists();
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .with_context(|| format!("opening {}", p.display()))
                .map(|f| (f, existed))
        };
        if info.start_step > 0 {
            // Rows past the checkpoint were logged by the run that was stopped; the resumed
            // run logs those steps again.
            for name in ["metrics.jsonl", "metrics.csv"] {
                keep_rows_upto(&self.dir.join(name), info.start_step)?;
            }
        }
        let (jsonl, _) = open("metrics.jsonl")?;
        let (mut csv, existed) = open("metrics.csv")?;
        if !existed {
            writeln!(csv, "{}", self.columns.join(","))?;
        }
        self.jsonl = Some(jsonl);
        self.csv = Some(csv);
        Ok(())
    }

    fn on_batch_end(&mut self, s: &StepInfo) -> Result<()> {
        self.window.add(s.loss);
        if s.step.is_multiple_of(self.log_every) {
            let mut row = vec![
                ("step".to_string(), s.step as f64),
                ("epoch".into(), s.epoch as f64),
                ("lr".into(), s.lr),
                ("train_loss".into(), self.window.take()),
            ];
            // The trainer reports the window's accuracy on exactly these steps.
            if let Some(a) = s.acc {
                row.push(("train_acc".into(), a));
            }
            row.push(("time_s".into(), self.elapsed()));
            self.write_row(&row)?;
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        if e.eval.is_empty() {
            return Ok(());
        }
        let mut row = vec![
            ("step".to_string(), e.step as f64),
            // 0-based, like the training rows: the epoch this evaluation closes.
            ("epoch".into(), (e.epoch - 1) as f64),
            ("lr".into(), e.lr),
            ("train_loss".into(), e.train_loss),
        ];
        if let Some(a) = e.train_acc {
            row.push(("train_acc".into(), a));
        }
        row.extend(e.eval.iter().cloned());
        row.push(("time_s".into(), self.elapsed()));
        self.write_row(&row)
    }
}

/// Rewrites a metrics file (atomically) without the rows logged after `step`, and without a
/// last line cut off by a kill. The CSV header (a line whose first field is not a number) stays.
fn keep_rows_upto(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let row_step = |line: &str| -> Option<f64> {
        if line.starts_with('{') {
            serde_json::from_str::<serde_json::Value>(line).ok()?["step"].as_f64()
        } else {
            line.split(',').next()?.parse().ok()
        }
    };
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    let kept: String = complete
        .split('\n')
        .enumerate()
        .filter(|(i, l)| match row_step(l) {
            Some(s) => s <= step as f64,
            None => *i == 0 && !l.starts_with('{') && !l.is_empty(),
        })
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        crate::plan::rundir::write_atomic(path, &kept)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn resume_drops_rows_after_the_checkpoint_and_a_cut_line() {
        let dir = tempfile_dir();
        let j = dir.join("metrics.jsonl");
        std::fs::write(&j, "{\"step\":5}\n{\"step\":10}\n{\"step\":15}\n{\"ste").unwrap();
        super::keep_rows_upto(&j, 10).unwrap();
        assert_eq!(
            std::fs::read_to_string(&j).unwrap(),
            "{\"step\":5}\n{\"step\":10}\n"
        );
        let c = dir.join("metrics.csv");
        std::fs::write(&c, "step,epoch\n5,0\n10,1\n15,1\n").unwrap();
        super::keep_rows_upto(&c, 5).unwrap();
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "step,epoch\n5,0\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ezflt-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
