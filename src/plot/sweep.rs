//! Figures of a sweep: a summary metric against each swept key, one line per value of a
//! second key with a band over seeds, and a phase diagram over each pair of keys.

use super::draw::{self, Matrix, Scale, Series, PALETTE};
use super::PlotSpec;
use crate::artifacts::compare::{natural, Run as Job};
use crate::artifacts::run::SUMMARY;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub(super) fn plot_sweep(dir: &Path, spec: &PlotSpec) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(SUMMARY).exists())
        .collect();
    entries.sort();
    // Each finished job: its overrides and summary, read as `ezflt compare` reads them.
    let jobs = entries
        .iter()
        .map(|p| {
            Job::read(p)
                .ok_or_else(|| anyhow!("{} is not a valid summary", p.join(SUMMARY).display()))
        })
        .collect::<Result<Vec<_>>>()?;
    if jobs.is_empty() {
        bail!(
            "{} holds no finished jobs (no */summary.json) yet",
            dir.display()
        );
    }
    // Swept keys: those whose value differs between jobs; seeds are replicates.
    let keys: Vec<String> = jobs
        .iter()
        .flat_map(|j| j.params.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| k != "seed")
        .filter(|k| {
            jobs.iter()
                .map(|j| j.params.get(k))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
        })
        .collect();
    let out = spec.out.clone().unwrap_or_else(|| dir.join("plots"));
    std::fs::create_dir_all(&out)?;
    let mut files = summary_table(dir, &jobs, spec, &out)?;
    if keys.is_empty() {
        // Seeds alone: nothing to plot a metric against; the overlays show their spread.
        return Ok(files);
    }
    let available: Vec<String> = jobs[0].summary.last.keys().cloned().collect();
    // `--metric a,b,c`: each gets its figures, and one figure shows them side by side.
    let mut metrics = spec.metrics();
    if spec.metric.is_none() {
        metrics.push(if available.iter().any(|k| k == "test_acc") {
            "test_acc".into()
        } else {
            "test_loss".into()
        });
    }
    for metric in &metrics {
        if !available.contains(metric) {
            bail!(
                "--metric {metric}: the jobs report {}",
                available.join(", ")
            );
        }
    }
    let name_of = |d: &Path| d.display().to_string();
    for k in keys.iter() {
        let all: Vec<Lines> = metrics.iter().map(|m| lines(&jobs, &keys, k, m)).collect();
        for (metric, l) in metrics.iter().zip(&all) {
            let title = format!("{metric} vs {k} - sweep {}", name_of(dir));
            let name = format!("sweep_{metric}_vs_{k}");
            files.push(figure!(spec, out, name, (1000, 600), |root| {
                l.draw(root, &title, k, metric, spec.log_x)
            }));
        }
        if metrics.len() > 1 {
            let title = format!("{} vs {k} - sweep {}", metrics.join(", "), name_of(dir));
            let name = format!("sweep_vs_{k}");
            let n = metrics.len();
            files.push(figure!(spec, out, name, (560 * n as u32, 520), |root| {
                let (head, body) = root.split_vertically(40);
                head.draw(&plotters::element::Text::new(
                    draw::fit(&title, 560 * n as u32, 20),
                    (12, 10),
                    (draw::FONT, 20),
                ))
                .map_err(draw::err)?;
                for ((panel, metric), l) in body.split_evenly((1, n)).iter().zip(&metrics).zip(&all)
                {
                    l.draw(panel, metric, k, metric, spec.log_x)?;
                }
                Ok(())
            }));
        }
    }
    for metric in &metrics {
        files.extend(phase_diagrams(&jobs, &keys, metric, spec, &out)?);
    }
    Ok(files)
}

/// One metric against one swept key: a line per value of another swept key (the first
/// with few values), mean over seeds (and any other keys), band = min..max.
struct Lines {
    series: Vec<Series>,
    /// The key's values are not all numbers (adv.train: false, true; an optimizer name):
    /// they sit at 0, 1, ... and are drawn as points with error bars.
    categorical: Option<Vec<String>>,
    /// Every value is positive and they span two decades or more: a log y axis.
    log_y: bool,
}

impl Lines {
    fn draw<DB: plotters::prelude::DrawingBackend>(
        &self,
        root: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
        k: &str,
        metric: &str,
        log_x: bool,
    ) -> Result<()> {
        match &self.categorical {
            Some(xs) => draw::category_chart(root, title, k, metric, xs, &self.series),
            None => draw::line_chart_log(root, title, k, metric, &self.series, (log_x, self.log_y)),
        }
    }
}

fn lines(jobs: &[Job], keys: &[String], k: &str, metric: &str) -> Lines {
    let num = |s: &str| s.parse::<f64>().ok();
    let k2 = keys.iter().filter(|k2| *k2 != k).find(|k2| {
        jobs.iter()
            .filter_map(|j| j.params.get(*k2))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            <= 6
    });
    let mut groups: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for j in jobs {
        if let (Some(v), Some(x)) = (j.summary.last_metric(metric), j.params.get(k)) {
            let line = k2
                .and_then(|k2| j.params.get(k2))
                .cloned()
                .unwrap_or_default();
            groups.entry((line, x.clone())).or_default().push(v);
        }
    }
    let mut names: Vec<String> = groups
        .keys()
        .map(|(l, _)| l.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    names.sort_by(|a, b| natural(a, b));
    let xs_all: Vec<String> = groups
        .keys()
        .map(|(_, x)| x.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let categorical = xs_all.iter().any(|x| num(x).is_none());
    let x_of = |s: &str| {
        if categorical {
            xs_all.iter().position(|x| x == s).unwrap_or(0) as f64
        } else {
            num(s).unwrap_or(0.0)
        }
    };
    let series: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let name = match k2 {
                Some(k2) => format!("{k2}={line}"),
                None => format!("mean over {} seed(s)", jobs.len() / xs_all.len().max(1)),
            };
            let mut s = Series::new(&name, vec![], PALETTE[i % PALETTE.len()]);
            let mut pts: Vec<(f64, &Vec<f64>)> = groups
                .iter()
                .filter(|((l, _), _)| l == line)
                .map(|((_, x), v)| (x_of(x), v))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (x, v) in pts {
                s.points.push((x, v.iter().sum::<f64>() / v.len() as f64));
                s.band.push((
                    x,
                    v.iter().cloned().fold(f64::MAX, f64::min),
                    v.iter().cloned().fold(f64::MIN, f64::max),
                ));
            }
            s
        })
        .collect();
    let values: Vec<f64> = groups.values().flatten().copied().collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    Lines {
        series,
        categorical: categorical.then_some(xs_all),
        log_y: !values.is_empty() && lo > 0.0 && hi / lo >= 100.0,
    }
}

/// A phase diagram of `metric` for every pair of swept keys.
fn phase_diagrams(
    jobs: &[Job],
    keys: &[String],
    metric: &str,
    spec: &PlotSpec,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut files = vec![];
    let value = |j: &Job| j.summary.last_metric(metric);
    // A phase diagram for every pair of swept keys, averaged over seeds (and the other
    // keys): `phase_<metric>.png` for the first pair, `phase_<metric>_<k>_x_<k2>.png` for
    // the others.
    let pairs: Vec<(usize, usize)> = (0..keys.len())
        .flat_map(|a| (a + 1..keys.len()).map(move |b| (a, b)))
        .collect();
    for (p, &(a, b)) in pairs.iter().enumerate() {
        let (k, k2) = (keys[a].clone(), keys[b].clone());
        let sorted_values = |key: &str| {
            let mut v: Vec<String> = jobs
                .iter()
                .filter_map(|j| j.params.get(key).cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            v.sort_by(|a, b| natural(a, b));
            v
        };
        // Rows from the largest value at the top to the smallest at the bottom: the y axis
        // increases upward, as in a paper's phase diagram.
        let (mut rv, cv) = (sorted_values(&k), sorted_values(&k2));
        rv.reverse();
        let mut cells: Vec<Vec<f64>> = vec![vec![]; rv.len() * cv.len()];
        for j in jobs {
            if let (Some(v), Some(a), Some(b)) = (value(j), j.params.get(&k), j.params.get(&k2)) {
                let (r, c) = (
                    rv.iter().position(|x| x == a).unwrap_or(0),
                    cv.iter().position(|x| x == b).unwrap_or(0),
                );
                cells[r * cv.len() + c].push(v);
            }
        }
        let m: Vec<f32> = cells
            .iter()
            .map(|v| {
                if v.is_empty() {
                    f32::NAN
                } else {
                    (v.iter().sum::<f64>() / v.len() as f64) as f32
                }
            })
            .collect();
        let finite: Vec<f32> = m.iter().copied().filter(|v| v.is_finite()).collect();
        let lo = finite.iter().copied().fold(f32::MAX, f32::min) as f64;
        let hi = finite.iter().copied().fold(f32::MIN, f32::max) as f64;
        let scale = Scale::Sequential {
            lo,
            hi: if hi > lo { hi } else { lo + 1.0 },
        };
        let others = keys.len() - 2;
        let title = format!(
            "{metric} over {k} x {k2} (mean ± std over seeds{})",
            if others > 0 {
                " and the other keys"
            } else {
                ""
            }
        );
        let name = if p == 0 {
            format!("phase_{metric}")
        } else {
            format!("phase_{metric}_{k}_x_{k2}")
        };
        let cv2 = cv.clone();
        let ticks = move |c: usize| cv2.get(c).cloned().unwrap_or_default();
        let rv2 = rv.clone();
        let row_ticks = move |r: usize| rv2.get(r).cloned().unwrap_or_default();
        // Seeds disagree in a cell when they spread over more than a quarter of the scale.
        let range = (hi - lo).max(1e-12);
        let texts: Vec<(String, bool)> = cells
            .iter()
            .map(|v| {
                if v.is_empty() {
                    return (String::new(), false);
                }
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let spread = v.iter().copied().fold(f64::MIN, f64::max)
                    - v.iter().copied().fold(f64::MAX, f64::min);
                let sd = if v.len() > 1 {
                    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64)
                        .sqrt()
                } else {
                    0.0
                };
                let disagree = spread > 0.25 * range;
                let text = if v.len() > 1 {
                    format!("{:.2}±{:.2}{}", mean, sd, if disagree { "*" } else { "" })
                } else {
                    format!("{mean:.2}")
                };
                (text, disagree)
            })
            .collect();
        let any_disagree = texts.iter().any(|t| t.1);
        let (nr, nc) = (rv.len(), cv.len());
        files.push(figure!(spec, out, name, (1000, 740), |full| {
            // A strip under the diagram for the footnote, clear of the axis label.
            let (root, foot) = full.split_vertically(716);
            let root = &root;
            let cells = draw::heatmap(
                root,
                &title,
                &k2,
                &k,
                &Matrix {
                    values: &m,
                    rows: nr,
                    cols: nc,
                },
                scale,
                metric,
                Some(&ticks),
                Some(&row_ticks),
            )?;
            draw::cell_values(root, cells, nr, nc, &m, scale, &texts)?;
            if any_disagree {
                draw::footnote(
                    &foot,
                    if others > 0 {
                        "* the cell's runs (seeds and the other swept keys) spread over more than a quarter of the colour range"
                    } else {
                        "* seeds spread over more than a quarter of the colour range"
                    },
                )?;
            }
            Ok(())
        }));
    }
    Ok(files)
}

/// `summary_table.csv` and `.png`: final metrics per configuration, mean ± std over seeds,
/// as `ezflt compare <sweep>` prints them.
fn summary_table(dir: &Path, runs: &[Job], spec: &PlotSpec, out: &Path) -> Result<Vec<PathBuf>> {
    let table = crate::artifacts::compare::table(runs, &Default::default())?;
    let title = format!(
        "final metrics per configuration, mean ± std over seeds (best shaded) - {}",
        dir.display()
    );
    super::table::write(&table, &title, spec, out)
}
