//! Runs overlaid: each logged metric and each tracked summary (norm, feature recovery,
//! growth, purity) over steps, one colour per configuration, seeds as the mean with a band
//! (std or min-max), for several runs, a sweep, or a seed-only sweep.

use super::draw::{self, Series, PALETTE};
use super::load::Run;
use super::{summaries, PlotSpec};
use crate::artifacts::compare::{self, Options};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The band drawn around each configuration's mean over seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Band {
    /// Mean ± the sample standard deviation.
    #[default]
    Std,
    /// From the lowest to the highest seed.
    MinMax,
    /// The mean alone.
    None,
}

impl Band {
    /// `std`, `minmax` or `none`.
    pub fn parse(s: &str) -> Option<Band> {
        match s {
            "std" => Some(Band::Std),
            "minmax" => Some(Band::MinMax),
            "none" => Some(Band::None),
            _ => None,
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Band::Std => "mean ± std over seeds",
            Band::MinMax => "mean, band min-max over seeds",
            Band::None => "mean over seeds",
        }
    }
}

/// How runs are grouped and drawn.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    /// Group by these config keys (default: the overrides that differ, except seed).
    pub by: Vec<String>,
    /// Keep runs whose key has this value.
    pub filters: Vec<(String, String)>,
    /// The band around each mean.
    pub band: Band,
}

/// More configurations than an overlay can keep apart (one palette colour each).
#[derive(Debug)]
pub struct TooMany(pub usize);

impl std::fmt::Display for TooMany {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} configurations to overlay; at most {} stay readable. Choose with --filter KEY=VALUE or group with --by KEY",
            self.0,
            PALETTE.len()
        )
    }
}

impl std::error::Error for TooMany {}

/// A run's tracked summaries by name: `(step, value)` each.
type Tracked = BTreeMap<String, Vec<(f64, f64)>>;

/// One configuration's curve of one metric: `(step, n, mean, low, high)`.
type Curve = Vec<(f64, usize, f64, f64, f64)>;

/// The mean and band over `runs` of a metric at each step. Steps every run has come first;
/// when the runs share fewer than two, every step with a value is used.
fn aggregate(per_run: &[Vec<(f64, f64)>], band: Band) -> Curve {
    let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for points in per_run {
        for &(x, y) in points {
            if y.is_finite() {
                at.entry(x.to_bits()).or_default().push(y);
            }
        }
    }
    let n = per_run.iter().filter(|p| !p.is_empty()).count();
    let shared = at.values().filter(|v| v.len() == n).count();
    let mut out: Curve = at
        .into_iter()
        .filter(|(_, v)| shared < 2 || v.len() == n)
        .map(|(x, v)| {
            let k = v.len();
            let mean = v.iter().sum::<f64>() / k as f64;
            let (low, high) = match band {
                Band::Std if k > 1 => {
                    let sd =
                        (v.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt();
                    (mean - sd, mean + sd)
                }
                Band::MinMax => (
                    v.iter().copied().fold(f64::INFINITY, f64::min),
                    v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                ),
                _ => (mean, mean),
            };
            (f64::from_bits(x), k, mean, low, high)
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The finished runs under `dirs` and their table, grouped and filtered as `o` says: what
/// the overlays and `summary_table` of several directories both draw from.
pub(super) fn grouped(
    dirs: &[PathBuf],
    o: &Overlay,
) -> Result<(Vec<compare::Run>, compare::Table)> {
    let runs = compare::collect(dirs)?;
    let table = compare::table(
        &runs,
        &Options {
            by: o.by.clone(),
            filters: o.filters.clone(),
            ..Default::default()
        },
    )?;
    Ok((runs, table))
}

/// Renders one figure per metric (`overlay_<metric>.png`, with its numbers in
/// `overlay_<metric>.csv`) into `out`; returns the files written.
pub fn overlay(dirs: &[PathBuf], spec: &PlotSpec, o: &Overlay, out: &Path) -> Result<Vec<PathBuf>> {
    let (_, table) = grouped(dirs, o)?;
    // Each configuration's runs with their metric rows.
    let mut groups: Vec<(String, Vec<Run>)> = vec![];
    for row in &table.rows {
        let label = if table.keys.is_empty() {
            "all runs".to_string()
        } else {
            table
                .keys
                .iter()
                .zip(&row.values)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let loaded = row
            .dirs
            .iter()
            .map(|d| Run::load(d))
            .collect::<Result<Vec<_>>>()?;
        groups.push((format!("{label} (n={})", loaded.len()), loaded));
    }
    // train_loss from the training rows (or the epoch rows, when denser); every evaluated
    // metric from the evaluation rows; then the tracked weights' summaries (norm, feature
    // recovery, growth, purity) of the chosen tensor.
    // (name, title, y axis)
    let mut metrics: Vec<(String, String, String)> = vec![(
        "train_loss".into(),
        "train_loss".into(),
        "train_loss".into(),
    )];
    for (_, rs) in &groups {
        for r in rs {
            for row in r.rows.iter().filter(|r| r.get("test_loss").is_some()) {
                if let Some(m) = row.as_object() {
                    for k in m.keys() {
                        let known = metrics.iter().any(|(n, ..)| n == k);
                        let tracked = !crate::artifacts::metric::bookkeeping(k);
                        if !known && tracked && !k.starts_with("train_") {
                            metrics.push((k.clone(), k.clone(), k.clone()));
                        }
                    }
                }
            }
        }
    }
    // `--metric a,b`: those only (the sweep figures take the same list).
    let wanted = spec.metrics();
    let wants_summaries =
        wanted.is_empty() || wanted.iter().any(|m| !metrics.iter().any(|(n, ..)| n == m));
    // Each run's summaries, by name, in the groups' order.
    let mut tracked: Vec<Vec<Tracked>> = vec![];
    for (_, rs) in &groups {
        let mut per_group = vec![];
        for r in rs {
            let mut by_name = BTreeMap::new();
            if wants_summaries {
                for s in summaries::of_run(r, spec.tensor.as_deref())? {
                    if !metrics.iter().any(|(n, ..)| *n == s.name) {
                        metrics.push((s.name.clone(), s.label.clone(), s.axis.to_string()));
                    }
                    by_name.insert(s.name, s.points);
                }
            }
            per_group.push(by_name);
        }
        tracked.push(per_group);
    }
    for m in &wanted {
        if !metrics.iter().any(|(n, ..)| n == m) {
            let names: Vec<&str> = metrics.iter().map(|(n, ..)| n.as_str()).collect();
            bail!("--metric {m}: the runs log {}", names.join(", "));
        }
    }
    if !wanted.is_empty() {
        metrics.retain(|(n, ..)| wanted.contains(n));
    }
    if groups.len() > PALETTE.len() {
        return Err(TooMany(groups.len()).into());
    }
    std::fs::create_dir_all(out)?;
    let mut files = vec![];
    for (metric, what, axis) in &metrics {
        let curves: Vec<(&String, Curve)> = groups
            .iter()
            .zip(&tracked)
            .map(|((label, rs), summaries)| {
                let per_run: Vec<Vec<(f64, f64)>> = rs
                    .iter()
                    .zip(summaries)
                    .map(|(r, s)| match s.get(metric) {
                        Some(points) => points.clone(),
                        None if metric.starts_with("train_") => r.train_metric(metric),
                        None => r.metric(metric, true),
                    })
                    .collect();
                (label, aggregate(&per_run, o.band))
            })
            .filter(|(_, c)| !c.is_empty())
            .collect();
        if curves.is_empty() {
            continue;
        }
        let series: Vec<Series> = curves
            .iter()
            .enumerate()
            .map(|(i, (label, c))| {
                let mut s = Series::new(
                    label,
                    c.iter().map(|p| (p.0, p.2)).collect(),
                    PALETTE[i % PALETTE.len()],
                );
                if o.band != Band::None {
                    s.band = c.iter().map(|p| (p.0, p.3, p.4)).collect();
                }
                s
            })
            .collect();
        let title = format!("{what} ({})", o.band.describe());
        let name = format!("overlay_{metric}");
        files.push(figure!(spec, out, name, (1150, 640), |root| {
            draw::line_chart(root, &title, "step", axis, &series, spec.log_x)?;
            Ok(())
        }));
        let mut csv = String::from("config,step,n,mean,low,high\n");
        for (label, c) in &curves {
            for p in c {
                csv.push_str(&format!(
                    "\"{}\",{},{},{},{},{}\n",
                    label.replace('"', "\"\""),
                    p.0,
                    p.1,
                    p.2,
                    p.3,
                    p.4
                ));
            }
        }
        let path = out.join(format!("{name}.csv"));
        crate::plan::rundir::write_atomic(&path, &csv)?;
        files.push(path);
    }
    if files.is_empty() {
        bail!("the runs have no metric rows (metrics.jsonl) to draw");
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_band_holds_the_seeds_and_shared_steps_come_first() {
        let a = vec![(1.0, 1.0), (2.0, 3.0), (3.0, 5.0)];
        let b = vec![(1.0, 3.0), (2.0, 5.0)];
        let c = aggregate(&[a.clone(), b.clone()], Band::MinMax);
        assert_eq!(c, vec![(1.0, 2, 2.0, 1.0, 3.0), (2.0, 2, 4.0, 3.0, 5.0)]);
        let s = aggregate(&[a.clone(), b], Band::Std);
        let sd = 2f64.sqrt();
        assert!((s[0].3 - (2.0 - sd)).abs() < 1e-12 && (s[0].4 - (2.0 + sd)).abs() < 1e-12);
        // Runs with no step in common: every step, each with its own count.
        let d = aggregate(&[vec![(1.0, 1.0)], vec![(2.0, 2.0)]], Band::Std);
        assert_eq!(d, vec![(1.0, 1, 1.0, 1.0, 1.0), (2.0, 1, 2.0, 2.0, 2.0)]);
    }
}
