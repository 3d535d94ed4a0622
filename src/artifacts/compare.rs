//! Runs side by side: finds the finished runs under directories, groups them into
//! configurations (seeds are replicates) and gives each metric's mean ± std per group.

use super::run::Summary;
use crate::config::Node;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One finished run: its overrides, its composed config and its summary.
pub struct Run {
    pub dir: PathBuf,
    /// `key=value` overrides of the run (`+` dropped), as `.hydra/overrides.yaml` has them.
    pub params: BTreeMap<String, String>,
    config: Option<Node>,
    pub summary: Summary,
}

impl Run {
    /// Reads the run in `dir`; `None` when it has no readable `summary.json`.
    pub fn read(dir: &Path) -> Option<Run> {
        let summary = Summary::read(dir)?;
        let params = crate::plan::rundir::read_task_overrides(dir)
            .into_iter()
            .filter_map(|o| {
                o.split_once('=')
                    .map(|(k, v)| (k.trim_start_matches('+').to_string(), v.to_string()))
            })
            .collect();
        let cfg = dir.join(".hydra").join("config.yaml");
        let config = std::fs::read_to_string(&cfg)
            .ok()
            .and_then(|t| crate::config::yaml::load(&t, &cfg.display().to_string()).ok());
        Some(Run {
            dir: dir.to_path_buf(),
            params,
            config,
            summary,
        })
    }

    /// The value of a config key for this run: its override when it has one, else the
    /// composed config's (`model.widths`, `data.snr`), else `None`.
    pub fn value(&self, key: &str) -> Option<String> {
        if let Some(v) = self.params.get(key) {
            return Some(v.clone());
        }
        let n = self.config.as_ref()?.get_path(key)?;
        Some(crate::config::node::py_str(n))
    }
}

/// Folders a run directory holds that are never runs themselves.
const NOT_RUNS: &[&str] = &["plots", "checkpoint", "wandb", "features.spill", "figs"];

/// The finished runs in or under `paths` (a run, a sweep, an `outputs/` tree; four levels
/// deep at most), each once, in path order.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<Run>> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if dir.join(super::run::SUMMARY).is_file() {
            out.push(dir.to_path_buf());
            return;
        }
        if depth == 0 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut subs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .filter(|p| {
                let name = p.file_name().map(|n| n.to_string_lossy().to_string());
                name.is_some_and(|n| !n.starts_with('.') && !NOT_RUNS.contains(&n.as_str()))
            })
            .collect();
        subs.sort_by(|a, b| natural(&a.to_string_lossy(), &b.to_string_lossy()));
        for s in subs {
            walk(&s, depth - 1, out);
        }
    }
    let mut dirs = vec![];
    for p in paths {
        if !p.is_dir() {
            bail!(
                "{} is not a directory (expected a run, a sweep or a folder of runs)",
                p.display()
            );
        }
        walk(p, 4, &mut dirs);
    }
    let mut seen = BTreeSet::new();
    let mut runs = vec![];
    for d in dirs {
        let key = d.canonicalize().unwrap_or_else(|_| d.clone());
        if seen.insert(key) {
            if let Some(r) = Run::read(&d) {
                runs.push(r);
            }
        }
    }
    if runs.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "no finished runs (a summary.json) in or under {}; a run writes its summary when it ends",
            shown.join(", ")
        );
    }
    Ok(runs)
}

/// Compares numbers as numbers and the rest as text: `2 < 10`, `job_2 < job_10`.
pub fn natural(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => {
            // Split into digit and non-digit chunks.
            fn chunks(s: &str) -> Vec<(bool, String)> {
                let mut out: Vec<(bool, String)> = vec![];
                for c in s.chars() {
                    let d = c.is_ascii_digit();
                    match out.last_mut() {
                        Some((kind, text)) if *kind == d => text.push(c),
                        _ => out.push((d, c.to_string())),
                    }
                }
                out
            }
            let (ca, cb) = (chunks(a), chunks(b));
            for (x, y) in ca.iter().zip(&cb) {
                let o = match (x.0 && y.0, x.1.parse::<u128>(), y.1.parse::<u128>()) {
                    (true, Ok(p), Ok(q)) => p.cmp(&q),
                    _ => x.1.cmp(&y.1),
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            ca.len().cmp(&cb.len())
        }
    }
}

/// What to compare and how to group.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Group by these config keys; empty = every override that varies, except `seed`.
    pub by: Vec<String>,
    /// Keep runs whose `key` has this value (`data.snr=0.4`; numbers compare as numbers).
    pub filters: Vec<(String, String)>,
    /// Metrics to show; empty = every metric the runs report.
    pub metrics: Vec<String>,
    /// The best value over training (`summary.json`'s `best`) instead of the final one.
    pub best: bool,
}

/// A metric over the runs of one configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (n - 1), `None` for a single run.
    pub std: Option<f64>,
    pub n: usize,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    fn of(values: &[f64]) -> Option<Stat> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        Some(Stat {
            mean,
            std,
            n,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// `KEY=VALUE` of a `--filter`.
pub fn parse_filter(f: &str) -> Result<(String, String)> {
    f.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| anyhow::anyhow!("--filter {f}: expected KEY=VALUE, e.g. --filter lr=0.1"))
}

/// One configuration: its key values, its runs and a statistic per metric.
#[derive(Clone, Debug)]
pub struct Row {
    pub values: Vec<String>,
    pub dirs: Vec<PathBuf>,
    /// Runs per status (`completed`, `failed`, ...).
    pub status: BTreeMap<String, usize>,
    pub stats: Vec<Option<Stat>>,
}

/// Configurations by metrics.
#[derive(Clone, Debug)]
pub struct Table {
    pub keys: Vec<String>,
    pub metrics: Vec<String>,
    pub rows: Vec<Row>,
    /// `final` or `best`.
    pub which: &'static str,
}

fn matches(run: &Run, key: &str, want: &str) -> bool {
    match run.value(key) {
        None => false,
        Some(v) => match (v.parse::<f64>(), want.parse::<f64>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => v == want,
        },
    }
}

/// Groups `runs` into a table of configurations by metrics.
pub fn table(runs: &[Run], opts: &Options) -> Result<Table> {
    for (k, _) in &opts.filters {
        if !runs.iter().any(|r| r.value(k).is_some()) {
            bail!("--filter {k}: no run has this key; {}", known_keys(runs));
        }
    }
    let runs: Vec<&Run> = runs
        .iter()
        .filter(|r| opts.filters.iter().all(|(k, v)| matches(r, k, v)))
        .collect();
    if runs.is_empty() {
        let f: Vec<String> = opts
            .filters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        bail!("no run matches --filter {}", f.join(" --filter "));
    }
    let keys: Vec<String> = if opts.by.is_empty() {
        runs.iter()
            .flat_map(|r| r.params.keys().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|k| k != "seed" && !k.starts_with("hydra."))
            .filter(|k| {
                runs.iter()
                    .map(|r| r.params.get(k))
                    .collect::<BTreeSet<_>>()
                    .len()
                    > 1
            })
            .collect()
    } else {
        for k in &opts.by {
            if !runs.iter().any(|r| r.value(k).is_some()) {
                bail!("--by {k}: no run has this key; {}", known_keys(&runs));
            }
        }
        opts.by.clone()
    };
    let pick = |s: &Summary| -> serde_json::Map<String, serde_json::Value> {
        if opts.best {
            s.best.clone()
        } else {
            s.last.clone()
        }
    };
    let mut reported: Vec<String> = vec![];
    for r in &runs {
        for k in pick(&r.summary).keys() {
            if !reported.contains(k) && !super::metric::bookkeeping(k) {
                reported.push(k.clone());
            }
        }
    }
    let metrics = if opts.metrics.is_empty() {
        reported
    } else {
        for m in &opts.metrics {
            if !reported.contains(m) {
                let hint =
                    crate::config::suggest::did_you_mean(m, reported.iter().map(|s| s.as_str()))
                        .map(|s| format!(" Did you mean '{s}'?"))
                        .unwrap_or_default();
                bail!(
                    "--metrics {m}: the runs report {}.{hint}",
                    if reported.is_empty() {
                        "no metrics".to_string()
                    } else {
                        reported.join(", ")
                    }
                );
            }
        }
        opts.metrics.clone()
    };
    let mut groups: Vec<(Vec<String>, Vec<&Run>)> = vec![];
    for r in &runs {
        let values: Vec<String> = keys
            .iter()
            .map(|k| r.value(k).unwrap_or_else(|| "-".into()))
            .collect();
        match groups.iter_mut().find(|g| g.0 == values) {
            Some(g) => g.1.push(r),
            None => groups.push((values, vec![r])),
        }
    }
    groups.sort_by(|a, b| {
        a.0.iter()
            .zip(&b.0)
            .map(|(x, y)| natural(x, y))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let rows = groups
        .into_iter()
        .map(|(values, rs)| {
            let mut status = BTreeMap::new();
            for r in &rs {
                *status.entry(r.summary.status.to_string()).or_insert(0) += 1;
            }
            let stats = metrics
                .iter()
                .map(|m| {
                    let v: Vec<f64> = rs
                        .iter()
                        .filter_map(|r| pick(&r.summary).get(m).and_then(|v| v.as_f64()))
                        .filter(|v| v.is_finite())
                        .collect();
                    Stat::of(&v)
                })
                .collect();
            Row {
                values,
                dirs: rs.iter().map(|r| r.dir.clone()).collect(),
                status,
                stats,
            }
        })
        .collect();
    Ok(Table {
        keys,
        metrics,
        rows,
        which: if opts.best { "best" } else { "final" },
    })
}

/// "keys they have: ..." for an error about a key no run has.
fn known_keys<R: std::borrow::Borrow<Run>>(runs: &[R]) -> String {
    let mut keys: BTreeSet<String> = runs
        .iter()
        .flat_map(|r| r.borrow().params.keys().cloned())
        .collect();
    if let Some(Some(m)) = runs
        .first()
        .map(|r| r.borrow().config.as_ref().and_then(|c| c.as_map()))
    {
        keys.extend(m.keys().filter(|k| *k != "hydra").cloned());
    }
    format!(
        "overrides and top-level keys they have: {}. Nested keys are dotted (model.widths)",
        keys.into_iter().collect::<Vec<_>>().join(", ")
    )
}

/// A number in 4 decimals, or in scientific notation when that would hide it.
pub fn number(x: f64) -> String {
    if x == 0.0 || (1e-3..1e5).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

impl Row {
    /// `3`, or `3 (1 failed)` when not every run completed.
    fn runs_cell(&self) -> String {
        let n: usize = self.status.values().sum();
        let other: Vec<String> = self
            .status
            .iter()
            .filter(|(s, _)| s.as_str() != "completed")
            .map(|(s, c)| format!("{c} {s}"))
            .collect();
        if other.is_empty() {
            n.to_string()
        } else {
            format!("{n} ({})", other.join(", "))
        }
    }
}

impl Table {
    /// For each metric, the row with the best mean (by the metric's direction), when the
    /// table has more than one row.
    fn best_rows(&self) -> Vec<Option<usize>> {
        (0..self.metrics.len())
            .map(|j| {
                if self.rows.len() < 2 {
                    return None;
                }
                let mut best: Option<(usize, f64)> = None;
                for (i, r) in self.rows.iter().enumerate() {
                    if let Some(s) = &r.stats[j] {
                        if best
                            .is_none_or(|(_, b)| super::metric::better(&self.metrics[j], s.mean, b))
                        {
                            best = Some((i, s.mean));
                        }
                    }
                }
                best.map(|b| b.0)
            })
            .collect()
    }

    fn cell(s: &Option<Stat>) -> String {
        match s {
            None => "-".into(),
            Some(Stat {
                mean, std: None, ..
            }) => number(*mean),
            Some(Stat {
                mean,
                std: Some(sd),
                ..
            }) => format!("{} ± {}", number(*mean), number(*sd)),
        }
    }

    fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = if self.keys.is_empty() {
            vec!["config".into()]
        } else {
            self.keys.clone()
        };
        h.push("runs".into());
        h.extend(self.metrics.iter().map(|m| {
            if self.which == "best" {
                format!("best {m}")
            } else {
                m.clone()
            }
        }));
        h
    }

    /// The header and the rows as text, each cell with whether it holds its metric's best
    /// mean.
    pub fn cells(&self) -> (Vec<String>, Vec<Vec<(String, bool)>>) {
        let best = self.best_rows();
        let body = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut cells: Vec<(String, bool)> = if self.keys.is_empty() {
                    vec![("(all)".to_string(), false)]
                } else {
                    r.values.iter().map(|v| (v.clone(), false)).collect()
                };
                cells.push((r.runs_cell(), false));
                for (j, s) in r.stats.iter().enumerate() {
                    cells.push((Table::cell(s), best[j] == Some(i)));
                }
                cells
            })
            .collect();
        (self.header(), body)
    }

    fn body(&self, mark: &dyn Fn(String) -> String) -> Vec<Vec<String>> {
        self.cells()
            .1
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|(c, best)| if best { mark(c) } else { c })
                    .collect()
            })
            .collect()
    }

    /// Aligned columns for a terminal; the best mean of each metric ends in `*`.
    pub fn text(&self) -> String {
        let mut lines = vec![self.header()];
        lines.extend(self.body(&|c| format!("{c} *")));
        let widths: Vec<usize> = (0..lines[0].len())
            .map(|j| {
                lines
                    .iter()
                    .map(|l| l[j].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let nkeys = self.keys.len().max(1);
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let cells: Vec<String> = l
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    let pad = widths[j] - c.chars().count();
                    // Keys read left to right; numbers line up on the right.
                    if j < nkeys {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&rule.join("  "));
                out.push('\n');
            }
        }
        out
    }

    /// A GitHub-flavoured Markdown table; the best mean of each metric in bold.
    pub fn markdown(&self) -> String {
        let esc = |c: &str| c.replace('|', "\\|");
        let h = self.header();
        let nkeys = self.keys.len().max(1);
        let mut out = format!(
            "| {} |\n",
            h.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        );
        let align: Vec<&str> = (0..h.len())
            .map(|j| if j < nkeys { "---" } else { "---:" })
            .collect();
        out.push_str(&format!("| {} |\n", align.join(" | ")));
        for l in self.body(&|c| format!("**{c}**")) {
            out.push_str(&format!(
                "| {} |\n",
                l.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        out
    }

    /// One line per configuration: the keys, `runs`, then `<metric>_mean`, `_std`, `_n` (full
    /// precision; std empty for one run).
    pub fn csv(&self) -> String {
        let q = |c: &str| {
            if c.contains([',', '"', '\n']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_string()
            }
        };
        let mut h: Vec<String> = self.keys.clone();
        h.push("runs".into());
        for m in &self.metrics {
            h.extend([format!("{m}_mean"), format!("{m}_std"), format!("{m}_n")]);
        }
        let mut out = h.iter().map(|c| q(c)).collect::<Vec<_>>().join(",") + "\n";
        for r in &self.rows {
            let mut cells: Vec<String> = r.values.clone();
            cells.push(r.dirs.len().to_string());
            for s in &r.stats {
                match s {
                    None => cells.extend(["".into(), "".into(), "0".into()]),
                    Some(s) => cells.extend([
                        s.mean.to_string(),
                        s.std.map(|x| x.to_string()).unwrap_or_default(),
                        s.n.to_string(),
                    ]),
                }
            }
            out.push_str(&(cells.iter().map(|c| q(c)).collect::<Vec<_>>().join(",") + "\n"));
        }
        out
    }

    /// An array of configurations with their keys, runs, statuses and metric statistics.
    pub fn json(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let config: serde_json::Map<String, serde_json::Value> = self
                    .keys
                    .iter()
                    .zip(&r.values)
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                let metrics: serde_json::Map<String, serde_json::Value> = self
                    .metrics
                    .iter()
                    .zip(&r.stats)
                    .filter_map(|(m, s)| {
                        let s = s.as_ref()?;
                        Some((
                            m.clone(),
                            serde_json::json!({"mean": s.mean, "std": s.std, "n": s.n, "min": s.min, "max": s.max}),
                        ))
                    })
                    .collect();
                serde_json::json!({
                    "config": config,
                    "runs": r.dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
                    "status": r.status,
                    "metrics": metrics,
                })
            })
            .collect();
        serde_json::json!({"which": self.which, "keys": self.keys, "rows": rows})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_natural_order() {
        let s = Stat::of(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(
            (s.mean, s.std, s.n, s.min, s.max),
            (2.0, Some(1.0), 3, 1.0, 3.0)
        );
        assert_eq!(Stat::of(&[4.0]).unwrap().std, None);
        assert!(Stat::of(&[]).is_none());
        let mut v = vec!["10", "2", "0.5", "1e-3"];
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(v, ["1e-3", "0.5", "2", "10"]);
        let mut d = vec!["sw/10", "sw/2", "sw/1"];
        d.sort_by(|a, b| natural(a, b));
        assert_eq!(d, ["sw/1", "sw/2", "sw/10"]);
        assert_eq!(number(0.93359375), "0.9336");
        assert_eq!(number(2.5e-5), "2.500e-5");
    }
}
