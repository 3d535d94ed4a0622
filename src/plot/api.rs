//! Figures callable from code: the renderers `ezflt plot` uses, on a run directory (a CLI
//! run, or any folder a `FeatureTracker` or `Trainer` callbacks wrote into).

use super::{plot_run, PlotSpec};
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// A summary of one tensor per snapshot, for [`evolution`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Frobenius norm.
    Norm,
    /// Mean of the values.
    Mean,
    /// Standard deviation of the values.
    Std,
    /// Largest absolute value.
    MaxAbs,
}

impl Stat {
    fn key(self) -> &'static str {
        match self {
            Stat::Norm => "norm",
            Stat::Mean => "mean",
            Stat::Std => "std",
            Stat::MaxAbs => "max_abs",
        }
    }
}

/// Which snapshot a single-snapshot figure shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The last one recorded.
    Last,
    /// The one taken at this step.
    Step(i64),
    /// The last one taken in this epoch (0-based).
    Epoch(i64),
}

/// Where figures go and in which format: `<run>/plots/*.png` unless changed.
#[derive(Clone, Debug, Default)]
pub struct Style {
    /// Output folder (default: `<run>/plots`).
    pub out: Option<PathBuf>,
    /// SVG instead of PNG.
    pub svg: bool,
    /// Logarithmic step axis.
    pub log_x: bool,
}

fn draw(run: &Path, style: &Style, mut spec: PlotSpec) -> Result<Vec<PathBuf>> {
    if !run.is_dir() {
        bail!("{} is not a run directory", run.display());
    }
    spec.out = style.out.clone();
    spec.svg = style.svg;
    spec.log_x = style.log_x;
    plot_run(run, &spec)
}

fn one(files: Vec<PathBuf>, what: &str) -> Result<PathBuf> {
    files
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no {what} figure was drawn"))
}

/// `stat` of `tensor` over training, beside each neuron's (row's) norm:
/// `evolution_<tensor>.png`.
pub fn evolution(
    run: impl AsRef<Path>,
    tensor: &str,
    stat: Stat,
    style: &Style,
) -> Result<PathBuf> {
    let spec = PlotSpec {
        what: vec!["evolution".into()],
        tensor: Some(tensor.into()),
        metric: Some(stat.key().into()),
        ..Default::default()
    };
    one(draw(run.as_ref(), style, spec)?, "evolution")
}

/// `tensor` as a neurons x inputs heatmap at one snapshot: `heatmap_<tensor>_step<N>.png`.
pub fn heatmap(run: impl AsRef<Path>, tensor: &str, at: At, style: &Style) -> Result<PathBuf> {
    let mut spec = PlotSpec {
        what: vec!["heatmap".into()],
        tensor: Some(tensor.into()),
        ..Default::default()
    };
    match at {
        At::Last => {}
        At::Step(s) => spec.step = Some(s),
        At::Epoch(e) => spec.epoch = Some(e),
    }
    one(draw(run.as_ref(), style, spec)?, "heatmap")
}

/// `tensor` at the end of each of `epochs`, side by side on one colour scale (empty: start,
/// thirds, end): `comparison_<tensor>.png`.
pub fn comparison(
    run: impl AsRef<Path>,
    tensor: &str,
    epochs: &[i64],
    style: &Style,
) -> Result<PathBuf> {
    let spec = PlotSpec {
        what: vec!["comparison".into()],
        tensor: Some(tensor.into()),
        epochs: epochs.to_vec(),
        ..Default::default()
    };
    one(draw(run.as_ref(), style, spec)?, "comparison")
}

/// Alignment of `tensor`'s rows with each ground-truth feature set it was aligned with:
/// one `alignment_<tensor>_<feature>.png` per set.
pub fn alignment(run: impl AsRef<Path>, tensor: &str, style: &Style) -> Result<Vec<PathBuf>> {
    let spec = PlotSpec {
        what: vec!["alignment".into()],
        tensor: Some(tensor.into()),
        ..Default::default()
    };
    draw(run.as_ref(), style, spec)
}

/// Training and test loss (and accuracy) from `metrics.jsonl`: `curves.png`.
pub fn curves(run: impl AsRef<Path>, style: &Style) -> Result<PathBuf> {
    let spec = PlotSpec {
        what: vec!["curves".into()],
        ..Default::default()
    };
    one(draw(run.as_ref(), style, spec)?, "curves")
}

/// Every figure that applies to the run, as `ezflt plot <run>` draws them.
pub fn all(run: impl AsRef<Path>, style: &Style) -> Result<Vec<PathBuf>> {
    draw(run.as_ref(), style, PlotSpec::default())
}

/// Runs and sweeps overlaid, one figure per logged metric and per tracked summary (norm,
/// feature recovery, growth, purity; `overlay_<name>.png` and its numbers in `.csv`): one
/// colour per configuration, seeds as the mean with a band, as `ezflt plot A B ...` draws
/// them. Goes to `style.out`, else `comparison/`.
pub fn overlay(
    dirs: &[PathBuf],
    metric: Option<&str>,
    how: &super::Overlay,
    style: &Style,
) -> Result<Vec<PathBuf>> {
    let spec = PlotSpec {
        metric: metric.map(String::from),
        svg: style.svg,
        log_x: style.log_x,
        ..Default::default()
    };
    let out = style
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("comparison"));
    super::overlay(dirs, &spec, how, &out)
}

/// Final metrics per configuration of runs and sweeps, mean ± std over seeds, grouped and
/// filtered as `how` says: `summary_table.csv` and `.png`, as `ezflt plot A B ...` writes
/// them. Goes to `style.out`, else `comparison/`.
pub fn summary_table(
    dirs: &[PathBuf],
    how: &super::Overlay,
    style: &Style,
) -> Result<Vec<PathBuf>> {
    let spec = PlotSpec {
        svg: style.svg,
        ..Default::default()
    };
    let out = style
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("comparison"));
    super::summary_table(dirs, &spec, how, &out)
}
