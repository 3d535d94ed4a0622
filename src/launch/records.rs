//! `sweep.jsonl` and `sweep.csv` at a sweep's root, rewritten atomically whenever a job
//! starts or ends: job number, status, exit code, duration, overrides, final metrics, path.

use super::{job_status, Job};
use crate::artifacts::run::{RunStatus, Summary};
use anyhow::Result;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const CSV: &str = "sweep.csv";
pub const JSONL: &str = "sweep.jsonl";

struct Row {
    num: usize,
    lines: Vec<String>,
    dir: PathBuf,
    status: RunStatus,
    code: Option<i32>,
    secs: Option<f64>,
}

pub struct Records {
    root: PathBuf,
    rows: Vec<Row>,
}

impl Records {
    pub fn new(root: &Path, jobs: &[Job]) -> Records {
        let rows = jobs
            .iter()
            .map(|j| {
                let summary = Summary::read(&j.dir);
                Row {
                    num: j.num,
                    lines: j.lines.clone(),
                    dir: j.dir.clone(),
                    status: job_status(&j.dir),
                    code: None,
                    secs: summary.as_ref().map(|s| s.duration_s),
                }
            })
            .collect();
        Records {
            root: root.to_path_buf(),
            rows,
        }
    }

    fn row(&mut self, num: usize) -> Option<&mut Row> {
        self.rows.iter_mut().find(|r| r.num == num)
    }

    pub fn set_running(&mut self, num: usize) {
        if let Some(r) = self.row(num) {
            r.status = RunStatus::Running;
        }
    }

    pub fn finish(&mut self, num: usize, code: i32, secs: f64) {
        if let Some(r) = self.row(num) {
            let st = job_status(&r.dir);
            use RunStatus::*;
            r.status = match st {
                Completed | Running | Pending if code != 0 => Crashed,
                Running | Pending => Failed,
                st => st,
            };
            r.code = Some(code);
            // The job's own duration when the launcher could not time it (a scheduler).
            r.secs = if secs > 0.0 {
                Some(secs)
            } else {
                Summary::read(&r.dir).map(|s| s.duration_s)
            };
        }
    }

    /// Overrides the status (the scheduler knows better, e.g. `timeout`).
    pub fn set_status(&mut self, num: usize, status: RunStatus) {
        if let Some(r) = self.row(num) {
            r.status = status;
        }
    }

    pub fn status(&self, num: usize) -> RunStatus {
        self.rows
            .iter()
            .find(|r| r.num == num)
            .map_or(RunStatus::Pending, |r| r.status)
    }

    /// Rewrites both files (temp name, then rename): a reader never sees half a table.
    pub fn write(&self) -> Result<()> {
        let mut objs = vec![];
        let mut metric_keys = std::collections::BTreeSet::new();
        for r in &self.rows {
            let mut o = Map::new();
            o.insert("job".into(), json!(r.num));
            o.insert("status".into(), json!(r.status));
            o.insert("exit_code".into(), r.code.map_or(Value::Null, |c| json!(c)));
            o.insert(
                "duration_s".into(),
                r.secs.map_or(Value::Null, |s| json!(s)),
            );
            o.insert("overrides".into(), json!(r.lines.join(" ")));
            let params: BTreeMap<String, String> = r
                .lines
                .iter()
                .filter_map(|l| {
                    l.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            o.insert("params".into(), json!(params));
            if let Some(s) = Summary::read(&r.dir) {
                for (k, v) in s.last {
                    metric_keys.insert(k.clone());
                    o.insert(k, v);
                }
            }
            o.insert("path".into(), json!(r.dir.display().to_string()));
            objs.push(o);
        }
        let jsonl: String = objs
            .iter()
            .map(|o| format!("{}\n", Value::Object(o.clone())))
            .collect();
        crate::plan::rundir::write_atomic(&self.root.join(JSONL), &jsonl)?;
        let param_keys: Vec<String> = {
            let mut seen = vec![];
            for r in &self.rows {
                for l in &r.lines {
                    if let Some((k, _)) = l.split_once('=') {
                        if !seen.iter().any(|s: &String| s == k) {
                            seen.push(k.to_string());
                        }
                    }
                }
            }
            seen
        };
        let mut header: Vec<String> = ["job", "status", "exit_code", "duration_s"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        header.extend(param_keys.iter().cloned());
        header.extend(metric_keys.iter().cloned());
        header.push("path".into());
        let mut csv = header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",")
            + "\n";
        for o in &objs {
            let cells: Vec<String> = header
                .iter()
                .map(|h| {
                    let v = if param_keys.contains(h)
                        && !["job", "status", "exit_code", "duration_s", "path"]
                            .contains(&h.as_str())
                    {
                        o["params"].get(h).cloned().unwrap_or(Value::Null)
                    } else {
                        o.get(h).cloned().unwrap_or(Value::Null)
                    };
                    match v {
                        Value::Null => String::new(),
                        Value::String(s) => csv_field(&s),
                        other => other.to_string(),
                    }
                })
                .collect();
            csv.push_str(&cells.join(","));
            csv.push('\n');
        }
        crate::plan::rundir::write_atomic(&self.root.join(CSV), &csv)
    }
}

/// RFC 4180 quoting for fields with commas, quotes or newlines.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
