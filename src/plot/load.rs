//! A run's files as the figures read them: metrics rows, summary, title, and its feature
//! archive (assembled from a killed run's spill first).

use crate::artifacts::npz::Archive;
use crate::artifacts::run::Summary;
use crate::track::spill;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub(super) struct Run {
    pub(super) dir: PathBuf,
    pub(super) title: String,
    pub(super) summary: Summary,
    pub(super) rows: Vec<Value>,
}

/// Rows of a JSON-lines file; none when it does not exist. A last line without its newline
/// (a run still writing, or killed mid-row) is skipped; any other bad line is an error
/// naming it, not an empty file.
fn read_json_lines(p: &Path) -> Result<Vec<Value>> {
    let text = match std::fs::read_to_string(p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    let mut rows = vec![];
    for (i, line) in complete.lines().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => rows.push(v),
            Ok(_) => bail!(
                "{}:{}: expected a JSON object per line (a metrics row)",
                p.display(),
                i + 1
            ),
            Err(e) => bail!(
                "{}:{}: not valid JSON ({e}); the file is damaged: fix or delete that line",
                p.display(),
                i + 1
            ),
        }
    }
    Ok(rows)
}

pub(super) fn overrides(dir: &Path) -> Vec<String> {
    crate::plan::rundir::read_task_overrides(dir)
}

impl Run {
    pub(super) fn load(dir: &Path) -> Result<Run> {
        let summary = Summary::read(dir);
        let ov = overrides(dir);
        // A folder a library tracker wrote has no summary: its name is the title.
        let mut title = match &summary {
            Some(s) => format!("{} on {}", s.model, s.data),
            None => dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
                .unwrap_or_else(|| "run".into()),
        };
        if !ov.is_empty() {
            let mut o = ov.join(" ");
            if o.len() > 70 {
                o.truncate(67);
                o.push_str("...");
            }
            title = format!("{title} [{o}]");
        }
        Ok(Run {
            dir: dir.to_path_buf(),
            title,
            summary: summary.unwrap_or_default(),
            rows: read_json_lines(&dir.join("metrics.jsonl"))?,
        })
    }

    /// `(step, value)` of a metric, from the training rows or from the evaluation rows
    /// (those with `test_loss`; their `train_*` are epoch means).
    pub(super) fn metric(&self, key: &str, eval_rows: bool) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter(|r| r.get("test_loss").is_some() == eval_rows)
            .filter_map(|r| Some((r.get("step")?.as_f64()?, r.get(key)?.as_f64()?)))
            .collect()
    }

    /// `(step, value)` of a training metric (`train_loss`, `train_acc`): from the training
    /// rows (a window mean every `log_every` steps) or from the evaluation rows (epoch means),
    /// whichever is denser. A full-batch run evaluated every step has its train curve from
    /// step 1 as its test curve does, not only from step `log_every` on.
    pub(super) fn train_metric(&self, key: &str) -> Vec<(f64, f64)> {
        let (steps, epochs) = (self.metric(key, false), self.metric(key, true));
        if epochs.len() > steps.len() {
            epochs
        } else {
            steps
        }
    }

    /// The archive, assembling a crashed run's spill first.
    pub(super) fn archive(&self) -> Result<Archive> {
        let p = self.dir.join(spill::ARCHIVE);
        if !p.exists() && self.dir.join(spill::SPILL).join("meta.json").exists() {
            if crate::plan::rundir::try_lock(&self.dir)?.is_none() {
                bail!(
                    "{} is still training: its feature archive is written when it ends \
                     (only --what curves applies now)",
                    self.dir.display()
                );
            }
            spill::finish(&self.dir, false)?;
            noteln!(
                "assembled {} from the spill an interrupted run left",
                p.display()
            );
        }
        if !p.exists() {
            bail!(
                "{} has no {} (the run had tracker=none); only --what curves applies",
                self.dir.display(),
                spill::ARCHIVE
            );
        }
        Archive::open(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rows: &[&str]) -> Run {
        Run {
            dir: PathBuf::new(),
            title: String::new(),
            summary: Summary::default(),
            rows: rows
                .iter()
                .map(|r| serde_json::from_str(r).unwrap())
                .collect(),
        }
    }

    #[test]
    fn the_train_curve_comes_from_the_denser_rows() {
        // Full batch, evaluated every epoch = step, logged every 2 steps: the epoch rows
        // are denser, and start at step 1 as the test curve does.
        let r = run(&[
            r#"{"step":1,"train_loss":0.9,"test_loss":1.0}"#,
            r#"{"step":2,"train_loss":0.7}"#,
            r#"{"step":2,"train_loss":0.8,"test_loss":0.8}"#,
            r#"{"step":3,"train_loss":0.6,"test_loss":0.6}"#,
        ]);
        assert_eq!(
            r.train_metric("train_loss"),
            vec![(1.0, 0.9), (2.0, 0.8), (3.0, 0.6)]
        );
        // Mini-batches: a row every few steps, an evaluation once an epoch.
        let r = run(&[
            r#"{"step":10,"train_loss":0.9}"#,
            r#"{"step":20,"train_loss":0.7}"#,
            r#"{"step":25,"train_loss":0.8,"test_loss":0.8}"#,
        ]);
        assert_eq!(r.train_metric("train_loss"), vec![(10.0, 0.9), (20.0, 0.7)]);
    }
}
