//! Figures from files on disk only: `run.rs` draws one run (curves, evolution, heatmaps,
//! alignment, input space), `sweep.rs` a sweep, `load.rs` reads a run, `api.rs` is the library's.

#[cfg(feature = "plot")]
pub mod api;
#[cfg(feature = "plot")]
pub mod draw;

#[cfg(feature = "plot")]
use anyhow::{bail, Result};
#[cfg(feature = "plot")]
use std::path::Path;
use std::path::PathBuf;

/// The figures `--what` can ask for.
pub const KINDS: &[&str] = &[
    "curves",
    "evolution",
    "heatmap",
    "comparison",
    "alignment",
    "growth",
    "sparsity",
    "input_space",
    "activations",
    "modes",
    "sweep",
];

/// What to draw and how (from `ezflt plot` flags or the `plot` config group).
#[derive(Clone, Debug, Default)]
pub struct PlotSpec {
    /// Figure kinds; empty = every one that applies.
    pub what: Vec<String>,
    pub tensor: Option<String>,
    pub step: Option<i64>,
    pub epoch: Option<i64>,
    /// The epochs `comparison` shows side by side (default: start, thirds, end).
    pub epochs: Vec<i64>,
    pub metric: Option<String>,
    pub out: Option<PathBuf>,
    pub svg: bool,
    pub log_x: bool,
}

impl PlotSpec {
    #[cfg(feature = "plot")]
    fn wants(&self, kind: &str) -> bool {
        self.what.is_empty() || self.what.iter().any(|w| w == kind)
    }

    /// `--metric a,b,c` as its names (empty when not given).
    #[cfg(feature = "plot")]
    fn metrics(&self) -> Vec<String> {
        self.metric
            .iter()
            .flat_map(|m| m.split(','))
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect()
    }
}

/// Most snapshots a time axis shows; longer runs are subsampled evenly (and the plot says so).
#[cfg(feature = "plot")]
const MAX_TIMES: usize = 300;
/// Most neurons drawn as individual lines; above that, quantile bands.
#[cfg(feature = "plot")]
const MAX_LINES: usize = 24;

/// Draws into `<out>/<name>.png|svg` with one closure for both formats.
#[cfg(feature = "plot")]
macro_rules! figure {
    ($spec:expr, $out:expr, $name:expr, $size:expr, |$area:ident| $body:block) => {{
        let path = $out.join(format!(
            "{}.{}",
            $name,
            if $spec.svg { "svg" } else { "png" }
        ));
        if $spec.svg {
            draw::render_svg(&path, $size, |$area| $body)?;
        } else {
            draw::render(&path, $size, |$area| $body)?;
        }
        path
    }};
}

#[cfg(feature = "plot")]
mod load;
#[cfg(feature = "plot")]
mod overlay;
#[cfg(feature = "plot")]
mod run;
#[cfg(feature = "plot")]
mod summaries;
#[cfg(feature = "plot")]
mod sweep;
#[cfg(feature = "plot")]
mod table;

#[cfg(feature = "plot")]
pub use overlay::{overlay, Band, Overlay, TooMany};

#[cfg(feature = "plot")]
pub use run::plot_run;
#[cfg(feature = "plot")]
use sweep::plot_sweep;
#[cfg(feature = "plot")]
pub use table::summary_table;

/// Renders `dir` (a run, or a sweep root with `multirun.yaml`); returns the files written.
#[cfg(feature = "plot")]
pub fn plot(dir: &Path, spec: &PlotSpec) -> Result<Vec<PathBuf>> {
    for w in &spec.what {
        if !KINDS.contains(&w.as_str()) {
            bail!(
                "--what {w}: unknown figure; choose from {}",
                KINDS.join(", ")
            );
        }
    }
    if dir.join("multirun.yaml").exists() {
        return plot_sweep(dir, spec);
    }
    if !dir.join("summary.json").exists() && !dir.join("metrics.jsonl").exists() {
        bail!(
            "{} is neither a run (summary.json, metrics.jsonl) nor a sweep (multirun.yaml); pass outputs/<date>/<time> or multirun/<date>/<time>",
            dir.display()
        );
    }
    plot_run(dir, spec)
}

/// Evenly spaced indices into `0..t`, at most `max`, always including both ends.
#[cfg(feature = "plot")]
fn subsample(t: usize, max: usize) -> Vec<usize> {
    if t <= max {
        return (0..t).collect();
    }
    let mut v: Vec<usize> = (0..max).map(|i| i * (t - 1) / (max - 1)).collect();
    v.dedup();
    v
}

#[cfg(feature = "plot")]
fn note_subsampled(title: &str, shown: usize, total: usize) -> String {
    if shown < total {
        format!("{title} ({shown} of {total} snapshots shown)")
    } else {
        title.to_string()
    }
}

/// Rows x columns view of a parameter: leading dims are neurons, the last is the input; a
/// 2-D convolution's `[out, in, k, k]` is one row per output channel (its `in x k x k`
/// kernel as columns).
#[cfg(feature = "plot")]
fn as_matrix(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [out, a, b, c] => (*out, a * b * c),
        [lead @ .., last] => (lead.iter().product(), *last),
    }
}

/// The PNG figures in a plots directory, sorted (what W&B uploads as images).
#[cfg(feature = "plot")]
pub fn list_pngs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "png"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(all(test, feature = "plot"))]
mod tests {
    use super::draw::{self, Matrix, Scale, Series, PALETTE};
    use super::*;

    /// Decodes a PNG into (width, height, RGB bytes).
    fn decode(p: &Path) -> (u32, u32, Vec<u8>) {
        let d = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
        let mut r = d.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size()];
        let info = r.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn heatmap_colours_follow_the_matrix() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("h.png");
        let mut cells = (0, 0, 0, 0);
        // [[-1, 1], [0, 0.5]]: top-left blue, top-right red, bottom-left white.
        draw::render(&p, (600, 500), |root| {
            cells = draw::heatmap(
                root,
                "known",
                "x",
                "y",
                &Matrix {
                    values: &[-1.0, 1.0, 0.0, 0.5],
                    rows: 2,
                    cols: 2,
                },
                Scale::Diverging { max_abs: 1.0 },
                "v",
                None,
                None,
            )?;
            Ok(())
        })
        .unwrap();
        let (w, h, px) = decode(&p);
        assert_eq!((w, h), (600, 500));
        let at = |fx: f64, fy: f64| {
            let x = cells.0 + ((cells.2 - cells.0) as f64 * fx) as i32;
            let y = cells.1 + ((cells.3 - cells.1) as f64 * fy) as i32;
            let i = (y as usize * w as usize + x as usize) * 3;
            (px[i], px[i + 1], px[i + 2])
        };
        let (r, _, b) = at(0.25, 0.25);
        assert!(
            b > 150 && r < 60,
            "top-left should be blue: {:?}",
            at(0.25, 0.25)
        );
        let (r, _, b) = at(0.75, 0.25);
        assert!(
            r > 150 && b < 60,
            "top-right should be red: {:?}",
            at(0.75, 0.25)
        );
        let (r, g, b) = at(0.25, 0.75);
        assert!(
            r > 240 && g > 240 && b > 240,
            "zero should be white: {r} {g} {b}"
        );
    }

    /// The colorbar spans the cells exactly, highest value at the top, and both ends are
    /// labelled beside it.
    #[test]
    fn the_colorbar_spans_the_cells_and_labels_both_ends() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("h.png");
        let scale = Scale::Sequential { lo: 0.2, hi: 0.9 };
        let mut cells = (0, 0, 0, 0);
        draw::render(&p, (600, 500), |root| {
            cells = draw::heatmap(
                root,
                "t",
                "x",
                "y",
                &Matrix {
                    values: &[0.2, 0.9, 0.5, 0.6],
                    rows: 2,
                    cols: 2,
                },
                scale,
                "v",
                None,
                None,
            )?;
            Ok(())
        })
        .unwrap();
        let (w, _, px) = decode(&p);
        let at = |x: i32, y: i32| {
            let i = (y as usize * w as usize + x as usize) * 3;
            (px[i], px[i + 1], px[i + 2])
        };
        let bar_x = 600 - draw::BAR_WIDTH + 22;
        let near = |a: (u8, u8, u8), c: plotters::style::RGBColor| {
            (a.0 as i32 - c.0 as i32).abs() < 12
                && (a.1 as i32 - c.1 as i32).abs() < 12
                && (a.2 as i32 - c.2 as i32).abs() < 12
        };
        assert!(near(at(bar_x, cells.1 + 2), scale.color(0.9)), "top");
        assert!(near(at(bar_x, cells.3 - 2), scale.color(0.2)), "bottom");
        // Above and below the cells: no bar.
        assert_eq!(at(bar_x, cells.1 - 3), (255, 255, 255));
        assert_eq!(at(bar_x, cells.3 + 3), (255, 255, 255));
        // Dark label ink right of the bar at both ends.
        let ink = |y: i32| {
            (y - 8..y + 8)
                .flat_map(|yy| (600 - draw::BAR_WIDTH + 40..600).map(move |x| (x, yy)))
                .filter(|&(x, yy)| {
                    let (r, g, b) = at(x, yy);
                    r < 110 && g < 110 && b < 110
                })
                .count()
        };
        assert!(ink(cells.1) > 15, "top label: {}", ink(cells.1));
        assert!(ink(cells.3) > 15, "bottom label: {}", ink(cells.3));
    }

    /// A categorical key's values are separate points with error bars: nothing is drawn
    /// between them, as a line would.
    #[test]
    fn categories_are_points_not_a_line() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("c.png");
        let mut s = Series::new("mean", vec![(0.0, 0.2), (1.0, 0.8)], PALETTE[0]);
        s.band = vec![(0.0, 0.1, 0.3), (1.0, 0.7, 0.9)];
        draw::render(&p, (800, 500), |root| {
            draw::category_chart(
                root,
                "t",
                "adv.train",
                "acc",
                &["false".into(), "true".into()],
                &[s],
            )
        })
        .unwrap();
        let (w, _, px) = decode(&p);
        let c = PALETTE[0];
        let cols: Vec<usize> = px
            .chunks_exact(3)
            .enumerate()
            .filter(|(_, p)| p[0] == c.0 && p[1] == c.1 && p[2] == c.2)
            .map(|(i, _)| i % w as usize)
            .collect();
        assert!(cols.len() > 100, "points and bars drawn: {}", cols.len());
        let middle = cols.iter().filter(|&&x| x > 380 && x < 480).count();
        assert_eq!(middle, 0, "something joins the categories");
    }

    #[test]
    fn line_chart_spans_the_data() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("l.png");
        draw::render(&p, (800, 500), |root| {
            draw::line_chart(
                root,
                "t",
                "x",
                "y",
                &[Series::new(
                    "s",
                    (0..100)
                        .map(|i| (i as f64, (i as f64 / 10.0).sin()))
                        .collect(),
                    PALETTE[0],
                )],
                false,
            )
        })
        .unwrap();
        let (w, _, px) = decode(&p);
        let c = PALETTE[0];
        let xs: Vec<usize> = px
            .chunks_exact(3)
            .enumerate()
            .filter(|(_, p)| p[0] == c.0 && p[1] == c.1 && p[2] == c.2)
            .map(|(i, _)| i % w as usize)
            .collect();
        assert!(xs.len() > 300, "the line is drawn: {} pixels", xs.len());
        let (lo, hi) = (xs.iter().min().unwrap(), xs.iter().max().unwrap());
        // The line crosses most of the plot width (legend sample included).
        assert!(hi - lo > 500, "{lo}..{hi}");
    }

    #[test]
    fn subsampling_keeps_both_ends() {
        assert_eq!(subsample(5, 10), vec![0, 1, 2, 3, 4]);
        let s = subsample(1000, 300);
        assert_eq!((s.len(), s[0], *s.last().unwrap()), (300, 0, 999));
    }
}
