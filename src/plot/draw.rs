//! Drawing primitives shared by every figure: the bundled font, colormaps, line charts,
//! heatmaps with colorbars. One look for all plots (sizes, palette, fonts).

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::Once;

pub const FONT: &str = "sans-serif";
static DEJAVU: &[u8] = include_bytes!("font/DejaVuSans.ttf");

/// Registers DejaVu Sans (bundled, see font/LICENSE-DejaVu), so text renders on a machine
/// without system fonts.
pub fn init_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, DEJAVU);
    });
}

/// Line colors: a colour-blind-safe qualitative palette (Okabe-Ito).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

fn lerp(stops: &[(u8, u8, u8)], t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let x = t * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let c = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    RGBColor(c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// Colour scale of a heatmap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Blue (negative) - white (0) - red (positive), symmetric around 0.
    Diverging { max_abs: f64 },
    /// Viridis from `lo` to `hi` (norms, alignments in [0, 1]).
    Sequential { lo: f64, hi: f64 },
}

impl Scale {
    pub fn diverging(values: &[f32]) -> Scale {
        let m = values.iter().fold(0.0f64, |m, v| m.max((*v as f64).abs()));
        Scale::Diverging {
            max_abs: if m > 0.0 { m } else { 1.0 },
        }
    }

    pub fn color(&self, v: f64) -> RGBColor {
        match *self {
            Scale::Diverging { max_abs } => lerp(
                &[
                    (33, 102, 172),
                    (103, 169, 207),
                    (247, 247, 247),
                    (239, 138, 98),
                    (178, 24, 43),
                ],
                0.5 + v / (2.0 * max_abs),
            ),
            Scale::Sequential { lo, hi } => lerp(
                &[
                    (68, 1, 84),
                    (59, 82, 139),
                    (33, 145, 140),
                    (94, 201, 98),
                    (253, 231, 37),
                ],
                (v - lo) / if hi > lo { hi - lo } else { 1.0 },
            ),
        }
    }

    fn range(&self) -> (f64, f64) {
        match *self {
            Scale::Diverging { max_abs } => (-max_abs, max_abs),
            Scale::Sequential { lo, hi } => (lo, hi),
        }
    }
}

/// Axis numbers: integers without ".0", others with up to 4 significant decimals.
pub fn tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        format!("{}", v.round() as i64)
    } else if v.abs() >= 1e-3 && v.abs() < 1e5 {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        // 1e-4, 2.5e-5: no trailing zeros in the mantissa (a log axis' powers of ten).
        let s = format!("{v:.2e}");
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
            None => s,
        }
    }
}

/// `text` cut with "…" to what fits in `width` pixels at `size` px (a centred caption longer
/// than its figure loses both ends).
pub fn fit(text: &str, width: u32, size: u32) -> String {
    // DejaVu Sans averages about 0.55 em a character.
    let max = ((width as f64 - 24.0) / (size as f64 * 0.55)).max(8.0) as usize;
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

pub fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A drawing surface in the chosen format; `f` draws into it.
pub fn render(
    path: &Path,
    size: (u32, u32),
    f: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<()> {
    init_font();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        f(&root)?;
        root.present().map_err(err)?;
    }
    write_png(path, size, &rgb)
}

/// RGB pixels as a PNG: fast deflate, as plotters' encoder, but one filter (Paeth) for every
/// row where that one tries all five on each row. `ezflt plot` of the default run: 32 -> 25 ms
/// for its 8 figures, files 4% larger.
fn write_png(path: &Path, size: (u32, u32), rgb: &[u8]) -> Result<()> {
    let file =
        std::fs::File::create(path).map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), size.0, size.1);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fast);
    enc.set_filter(png::FilterType::Paeth);
    enc.set_adaptive_filter(png::AdaptiveFilterType::NonAdaptive);
    let mut w = enc.write_header().map_err(err)?;
    w.write_image_data(rgb).map_err(err)?;
    w.finish().map_err(err)
}

/// The same drawing as SVG.
pub fn render_svg(
    path: &Path,
    size: (u32, u32),
    f: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>,
) -> Result<()> {
    init_font();
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    f(&root)?;
    root.present().map_err(err)
}

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    /// Optional band (x, low, high) drawn under the line.
    pub band: Vec<(f64, f64, f64)>,
    pub width: u32,
}

impl Series {
    pub fn new(name: &str, points: Vec<(f64, f64)>, color: RGBColor) -> Series {
        Series {
            name: name.to_string(),
            points,
            color,
            band: vec![],
            width: 2,
        }
    }
}

/// Line chart with labelled axes and a legend; `log_x` uses a log axis (x > 0 only).
pub fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_x: bool,
) -> Result<()> {
    chart(area, title, x_label, y_label, series, (log_x, false), None)
}

/// [`line_chart`] with a choice of log y as well (quantities that scale as a power of x).
pub fn line_chart_log<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    (log_x, log_y): (bool, bool),
) -> Result<()> {
    chart(area, title, x_label, y_label, series, (log_x, log_y), None)
}

/// Values of a categorical key (`adv.train`: false, true) along x: series points sit at
/// 0, 1, ... and are drawn as points with error bars (their bands), not joined, each series
/// nudged sideways so they do not hide each other; the ticks are the category names.
pub fn category_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    categories: &[String],
    series: &[Series],
) -> Result<()> {
    let n = series.len().max(1) as f64;
    let nudged: Vec<Series> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let dx = if n > 1.0 {
                (i as f64 - (n - 1.0) / 2.0) * 0.12
            } else {
                0.0
            };
            Series {
                name: s.name.clone(),
                points: s.points.iter().map(|&(x, y)| (x + dx, y)).collect(),
                color: s.color,
                band: s.band.iter().map(|&(x, l, h)| (x + dx, l, h)).collect(),
                width: s.width,
            }
        })
        .collect();
    chart(
        area,
        title,
        x_label,
        y_label,
        &nudged,
        (false, false),
        Some(categories),
    )
}

#[allow(clippy::too_many_arguments)]
fn chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    (log_x, log_y): (bool, bool),
    categories: Option<&[String]>,
) -> Result<()> {
    let pts = series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .copied()
                .chain(s.band.iter().flat_map(|b| [(b.0, b.1), (b.0, b.2)]))
        })
        .filter(|p| {
            p.0.is_finite() && p.1.is_finite() && (!log_x || p.0 > 0.0) && (!log_y || p.1 > 0.0)
        });
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        // One x value (a run of one evaluation): centre it.
        (x0, x1) = (x0 - 0.5, x0 + 0.5);
    }
    if let Some(c) = categories {
        // Each category gets a slot of width 1 around its index.
        (x0, x1) = (-0.5, c.len().max(1) as f64 - 0.5);
    }
    let name_at = |v: f64| -> String {
        match categories {
            Some(c) if (v - v.round()).abs() < 1e-6 && v >= 0.0 => {
                c.get(v.round() as usize).cloned().unwrap_or_default()
            }
            Some(_) => String::new(),
            None => tick(v),
        }
    };
    let x_ticks = categories.map_or(10, |c| c.len());
    // One y value: a readable range around it, not a sliver of 1e-9.
    let pad = if y1 - y0 > 1e-12 * y1.abs().max(1.0) {
        (y1 - y0) * 0.05
    } else {
        (y0.abs() * 0.05).max(0.05)
    };
    let (y0, y1) = if log_y {
        // 5% of the range in log space on each side.
        let f = (y1 / y0).max(1.0 + 1e-9).powf(0.05).max(1.05);
        (y0 / f, y1 * f)
    } else {
        (y0 - pad, y1 + pad)
    };
    let mut b = ChartBuilder::on(area);
    b.caption(fit(title, area.dim_in_pixel().0, 22), (FONT, 22))
        .margin(12)
        // Room for half of the last x label ("10000" centred on the right edge).
        .margin_right(30)
        .x_label_area_size(45)
        .y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_labels(x_ticks)
                .x_label_formatter(&|v: &f64| name_at(*v))
                .y_label_formatter(&|v: &f64| tick(*v))
                .label_style((FONT, 15))
                .axis_desc_style((FONT, 17))
                .light_line_style(RGBColor(238, 238, 238))
                // One light line between labels (a log axis: at 2..9 of each decade, as
                // matplotlib's minor ticks), not a dense grey band of ten.
                .x_max_light_lines(if log_x { 10 } else { 2 })
                .y_max_light_lines(if log_y { 10 } else { 2 })
                .draw()
                .map_err(err)?;
            for s in series {
                // Categories, or one x (where a polygon would be a line): error bars.
                if categories.is_some() || s.band.len() == 1 {
                    let cap = (x1 - x0) * 0.01;
                    let style = s.color.stroke_width(2);
                    for &(x, lo, hi) in &s.band {
                        chart
                            .draw_series([
                                PathElement::new(vec![(x, lo), (x, hi)], style),
                                PathElement::new(vec![(x - cap, lo), (x + cap, lo)], style),
                                PathElement::new(vec![(x - cap, hi), (x + cap, hi)], style),
                            ])
                            .map_err(err)?;
                    }
                } else if !s.band.is_empty() {
                    let mut poly: Vec<(f64, f64)> = s.band.iter().map(|b| (b.0, b.2)).collect();
                    poly.extend(s.band.iter().rev().map(|b| (b.0, b.1)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(
                            poly,
                            s.color.mix(0.2).filled(),
                        )))
                        .map_err(err)?;
                }
                let c = s.color;
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.1.is_finite() && (!log_x || p.0 > 0.0) && (!log_y || p.1 > 0.0))
                    .collect();
                // Few points: mark each, so one evaluation is still visible.
                if pts.len() <= 20 {
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                        .map_err(err)?;
                }
                // Categories are not a continuum: points only (the line is kept for the
                // legend, drawn with no points).
                let line: Vec<(f64, f64)> = if categories.is_some() { vec![] } else { pts };
                let drawn = chart
                    .draw_series(LineSeries::new(line, c.stroke_width(s.width)))
                    .map_err(err)?;
                if !s.name.is_empty() {
                    drawn.label(s.name.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3))
                    });
                }
            }
            if series.iter().any(|s| !s.name.is_empty()) {
                let (w, h) = chart.plotting_area().dim_in_pixel();
                let corner = legend_corner(series, (x0, x1), (y0, y1), (log_x, log_y), (w, h));
                chart
                    .configure_series_labels()
                    .label_font((FONT, 15))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 200, 200))
                    .position(corner)
                    .draw()
                    .map_err(err)?;
            }
        }};
    }
    let (xb, xl) = log_ticks(x0.max(1e-9), x1);
    let (yb, yl) = log_ticks(y0.max(1e-300), y1);
    let lx = || {
        (x0.max(1e-9)..x1)
            .log_scale()
            .with_key_points(xb.clone())
            .with_light_points(xl.clone())
    };
    let ly = || {
        (y0.max(1e-300)..y1)
            .log_scale()
            .with_key_points(yb.clone())
            .with_light_points(yl.clone())
    };
    match (log_x, log_y) {
        (true, true) => draw!(b.build_cartesian_2d(lx(), ly()).map_err(err)?),
        (true, false) => draw!(b.build_cartesian_2d(lx(), y0..y1).map_err(err)?),
        (false, true) => draw!(b.build_cartesian_2d(x0..x1, ly()).map_err(err)?),
        (false, false) => draw!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
    }
    Ok(())
}

/// Labelled and light ticks of a log axis over `[lo, hi]`: the powers of ten, with 2x and 5x
/// between them when the range spans three decades or less (every integer multiple below
/// half a decade), thinned to at most 12 labels; light lines at the other multiples
/// 1..9 of each power. (plotters' own log ticks crowd a range under two decades with
/// 10, 20, ..., 90, 100 and a band of 99 light lines a decade.)
pub fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    if !(lo > 0.0 && hi > lo) {
        return (vec![], vec![]);
    }
    let decades = (hi / lo).log10();
    let mantissas: &[f64] = if decades < 0.5 {
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    } else if decades <= 3.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let inside = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    let (mut bold, mut light) = (vec![], vec![]);
    for e in first..=last {
        let p = 10f64.powi(e);
        for m in 1..=9 {
            let v = m as f64 * p;
            if !inside(v) {
                continue;
            }
            if mantissas.contains(&(m as f64)) {
                bold.push(v);
            } else if decades <= 6.0 {
                light.push(v);
            }
        }
    }
    // Very wide ranges: every k-th power of ten.
    let every = bold.len().div_ceil(12).max(1);
    if every > 1 {
        bold = bold.into_iter().step_by(every).collect();
    }
    (bold, light)
}

/// The corner of the plotting area where the legend covers the fewest drawn points
/// (lines sampled along their segments, bands at their edges); upper right on a tie.
fn legend_corner(
    series: &[Series],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    (log_x, log_y): (bool, bool),
    (w, h): (u32, u32),
) -> SeriesLabelPosition {
    let fx = |x: f64| {
        if log_x {
            let (a, b) = (x0.max(1e-9).ln(), x1.max(1e-9).ln());
            (x.max(1e-9).ln() - a) / (b - a)
        } else {
            (x - x0) / (x1 - x0)
        }
    };
    let fy = |y: f64| {
        if log_y {
            let (a, b) = (y0.max(1e-300).ln(), y1.max(1e-300).ln());
            (y.max(1e-300).ln() - a) / (b - a)
        } else {
            (y - y0) / (y1 - y0)
        }
    };
    // Points in [0, 1]^2, v = 0 at the bottom.
    let mut pts: Vec<(f64, f64)> = vec![];
    for s in series {
        let line: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!log_x || p.0 > 0.0))
            .map(|&(x, y)| (fx(x), fy(y)))
            .collect();
        for win in line.windows(2) {
            for k in 0..16 {
                let t = k as f64 / 16.0;
                pts.push((
                    win[0].0 + (win[1].0 - win[0].0) * t,
                    win[0].1 + (win[1].1 - win[0].1) * t,
                ));
            }
        }
        pts.extend(line.last().copied());
        for b in &s.band {
            if !log_x || b.0 > 0.0 {
                pts.push((fx(b.0), fy(b.1)));
                pts.push((fx(b.0), fy(b.2)));
            }
        }
    }
    let named: Vec<&Series> = series.iter().filter(|s| !s.name.is_empty()).collect();
    let chars = named
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    // The legend box as plotters draws it at font size 15: ~8.5 px a character plus the
    // sample line, ~20 px a row, 10 px from the edges.
    let bw = ((chars as f64 * 8.5 + 50.0) / w.max(1) as f64).min(1.0);
    let bh = ((named.len() as f64 * 20.0 + 20.0) / h.max(1) as f64).min(1.0);
    // (position, right side, vertical band [lo, hi] of the box); the middle of an edge
    // only when it covers strictly fewer points than every corner.
    let (top, mid, bottom) = ((1.0 - bh, 1.0), (0.5 - bh / 2.0, 0.5 + bh / 2.0), (0.0, bh));
    let candidates = [
        (SeriesLabelPosition::UpperRight, true, top),
        (SeriesLabelPosition::UpperLeft, false, top),
        (SeriesLabelPosition::LowerRight, true, bottom),
        (SeriesLabelPosition::LowerLeft, false, bottom),
        (SeriesLabelPosition::MiddleRight, true, mid),
        (SeriesLabelPosition::MiddleLeft, false, mid),
    ];
    let covered = |right: bool, (lo, hi): (f64, f64)| {
        pts.iter()
            .filter(|(u, v)| {
                let in_u = if right { *u >= 1.0 - bw } else { *u <= bw };
                in_u && *v >= lo && *v <= hi
            })
            .count()
    };
    let mut best = (usize::MAX, SeriesLabelPosition::UpperRight);
    for (pos, right, band) in candidates {
        let c = covered(right, band);
        if c < best.0 {
            best = (c, pos);
        }
    }
    best.1
}

/// A matrix to draw: `rows x cols`, row-major, row 0 at the top.
pub struct Matrix<'a> {
    pub values: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

/// Pixel rectangle of a heatmap's cells (left, top, right, bottom), for tests and overlays.
pub type CellArea = (i32, i32, i32, i32);

/// Heatmap with labelled axes and a colorbar. Large matrices are averaged into at most
/// `max_cells` bins per axis (the caller says so in the title).
#[allow(clippy::too_many_arguments)]
pub fn heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    m: &Matrix,
    scale: Scale,
    colorbar_label: &str,
    x_ticks: Option<&dyn Fn(usize) -> String>,
    y_ticks: Option<&dyn Fn(usize) -> String>,
) -> Result<CellArea> {
    let (main, bar) = area.split_horizontally(area.dim_in_pixel().0 as i32 - BAR_WIDTH);
    let cells = heatmap_cells(&main, title, x_label, y_label, m, scale, x_ticks, y_ticks)?;
    // The bar spans the cells exactly (same top, same bottom).
    let top = bar.get_base_pixel().1;
    colorbar(
        &bar,
        scale,
        colorbar_label,
        Some((cells.1 - top, cells.3 - top)),
    )?;
    Ok(cells)
}

/// Writes `texts` (row-major, one per cell) centred in the cells of a heatmap drawn at
/// `cells` (its pixel box), white on dark colours and black on light ones.
pub fn cell_values<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cells: CellArea,
    rows: usize,
    cols: usize,
    values: &[f32],
    scale: Scale,
    texts: &[(String, bool)],
) -> Result<()> {
    let (x0, y0, x1, y1) = cells;
    let (bx, by) = area.get_base_pixel();
    let w = (x1 - x0) as f64 / cols.max(1) as f64;
    let h = (y1 - y0) as f64 / rows.max(1) as f64;
    // Too small to hold a number: leave the colours alone.
    if w < 40.0 || h < 18.0 {
        return Ok(());
    }
    let size = if w < 80.0 { 12 } else { 15 };
    for r in 0..rows {
        for c in 0..cols {
            let Some((text, _)) = texts.get(r * cols + c) else {
                continue;
            };
            let v = values.get(r * cols + c).copied().unwrap_or(f32::NAN);
            if text.is_empty() || !v.is_finite() {
                continue;
            }
            let RGBColor(cr, cg, cb) = scale.color(v as f64);
            let light = 0.299 * cr as f64 + 0.587 * cg as f64 + 0.114 * cb as f64 > 140.0;
            let color = if light { BLACK } else { WHITE };
            let style = TextStyle::from((FONT, size).into_font()).color(&color).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            let px = x0 - bx + (w * (c as f64 + 0.5)) as i32;
            let py = y0 - by + (h * (r as f64 + 0.5)) as i32;
            area.draw(&Text::new(text.clone(), (px, py), style))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Lines between groups of `every` rows of a heatmap drawn at `cells` (a `[classes, m, d]`
/// tensor's classes: 20 filters are 2 classes of 10), labelled with the group's index.
pub fn row_groups<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    cells: CellArea,
    rows: usize,
    every: usize,
    name: &str,
) -> Result<()> {
    if every == 0 || every >= rows {
        return Ok(());
    }
    let (x0, y0, x1, y1) = cells;
    let (bx, by) = area.get_base_pixel();
    let h = (y1 - y0) as f64 / rows as f64;
    let style = TextStyle::from((FONT, 13).into_font()).color(&BLACK);
    for g in 0..rows.div_ceil(every) {
        let y = y0 - by + (h * (g * every) as f64).round() as i32;
        if g > 0 {
            area.draw(&PathElement::new(
                vec![(x0 - bx, y), (x1 - bx, y)],
                BLACK.stroke_width(2),
            ))
            .map_err(err)?;
        }
        // The group's name just inside the right edge, at its first row.
        let label = format!("{name} {g}");
        let tx = x1 - bx - (label.chars().count() as f64 * 7.5) as i32 - 4;
        area.draw(&Rectangle::new(
            [(tx - 3, y + 2), (x1 - bx - 1, y + 18)],
            WHITE.mix(0.8).filled(),
        ))
        .map_err(err)?;
        area.draw(&Text::new(label, (tx, y + 3), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// A line of small print at the bottom left of `area` (a strip of its own under a figure).
pub fn footnote<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str) -> Result<()> {
    let style = TextStyle::from((FONT, 14).into_font()).color(&RGBColor(60, 60, 60));
    area.draw(&Text::new(
        text.to_string(),
        (12, area.dim_in_pixel().1 as i32 - 19),
        style,
    ))
    .map_err(err)
}

/// Width of the area a colorbar takes beside a heatmap.
pub const BAR_WIDTH: i32 = 120;

/// A heatmap without its colorbar (panels that share one); returns the cells' pixel box.
#[allow(clippy::too_many_arguments)]
pub fn heatmap_cells<DB: DrawingBackend>(
    main: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    m: &Matrix,
    scale: Scale,
    x_ticks: Option<&dyn Fn(usize) -> String>,
    y_ticks: Option<&dyn Fn(usize) -> String>,
) -> Result<CellArea> {
    let (rows, cols) = (m.rows.max(1), m.cols.max(1));
    let mut chart = ChartBuilder::on(main)
        .caption(fit(title, main.dim_in_pixel().0, 22), (FONT, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..cols as f64, rows as f64..0f64)
        .map_err(err)?;
    // Few categories (sweep values): one label per cell, drawn at the cell centres below.
    let x_cat = x_ticks.filter(|_| cols <= 40);
    let y_cat = y_ticks.filter(|_| rows <= 40);
    // Labels at whole cell indices only: plotters also proposes 0.5, 1.5, ... on a narrow
    // matrix, which read as "0 0 1 1 2 2".
    let whole = |v: f64| (v - v.round()).abs() < 1e-6;
    let fmt_x = |v: &f64| match x_ticks {
        _ if !whole(*v) => String::new(),
        Some(f) => f(v.round().max(0.0) as usize),
        None => format!("{}", v.round() as i64),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(if x_cat.is_some() { 0 } else { 8 })
        .y_labels(if y_cat.is_some() { 0 } else { 8 })
        .x_label_formatter(&fmt_x)
        .y_label_formatter(&|v: &f64| {
            if whole(*v) {
                format!("{}", v.round() as i64)
            } else {
                String::new()
            }
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(err)?;
    let (px, py) = chart.plotting_area().dim_in_pixel();
    // Bin to the pixel grid: at most one rectangle per pixel, whatever the matrix size.
    let bx = cols.min(px as usize).max(1);
    let by = rows.min(py as usize).max(1);
    let mut cells = Vec::with_capacity(bx * by);
    for i in 0..by {
        let (r0, r1) = (i * rows / by, ((i + 1) * rows / by).max(i * rows / by + 1));
        for j in 0..bx {
            let (c0, c1) = (j * cols / bx, ((j + 1) * cols / bx).max(j * cols / bx + 1));
            let mut s = 0.0f64;
            let mut n = 0usize;
            for r in r0..r1.min(rows) {
                for c in c0..c1.min(cols) {
                    if let Some(v) = m.values.get(r * m.cols + c) {
                        s += *v as f64;
                        n += 1;
                    }
                }
            }
            let v = if n > 0 { s / n as f64 } else { 0.0 };
            cells.push(Rectangle::new(
                [(c0 as f64, r0 as f64), (c1 as f64, r1 as f64)],
                scale.color(v).filled(),
            ));
        }
    }
    chart.draw_series(cells).map_err(err)?;
    let (x_range, y_range) = chart.plotting_area().get_pixel_range();
    let (bx0, by0) = main.get_base_pixel();
    let style = TextStyle::from((FONT, 14).into_font()).color(&BLACK);
    if let Some(f) = x_cat {
        let w = (x_range.end - x_range.start) as f64 / cols as f64;
        // Every label that fits: a stride so that neighbours keep a gap (40 noise vectors
        // would otherwise run together as "9101112...").
        let widest = (0..cols).map(|c| f(c).chars().count()).max().unwrap_or(1) as f64 * 8.5;
        let stride = ((widest + 10.0) / w).ceil().max(1.0) as usize;
        for c in (0..cols).step_by(stride) {
            let px = x_range.start - bx0 + (w * (c as f64 + 0.5)) as i32;
            let t = f(c);
            let half = (t.len() as i32 * 4).min(60);
            main.draw(&Text::new(
                t,
                (px - half, y_range.end - by0 + 6),
                style.clone(),
            ))
            .map_err(err)?;
        }
    }
    if let Some(f) = y_cat {
        let h = (y_range.end - y_range.start) as f64 / rows as f64;
        let stride = (18.0 / h).ceil().max(1.0) as usize;
        for r in (0..rows).step_by(stride) {
            let py = y_range.start - by0 + (h * (r as f64 + 0.5)) as i32 - 7;
            let t = f(r);
            let px = x_range.start - bx0 - 8 - (t.len() as i32 * 8).min(50);
            main.draw(&Text::new(t, (px.max(0), py), style.clone()))
                .map_err(err)?;
        }
    }
    Ok((x_range.start, y_range.start, x_range.end, y_range.end))
}

/// A vertical colorbar: the bar between `span` (top and bottom pixel rows in `area`; default
/// a heatmap's usual plotting rows), five values from the lowest to the highest labelled on
/// its right at the axis labels' size, and `label` above it.
pub fn colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: Scale,
    label: &str,
    span: Option<(i32, i32)>,
) -> Result<()> {
    let (lo, hi) = scale.range();
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = span.unwrap_or((58, h as i32 - 57));
    let (top, bottom) = (top.max(24), bottom.max(top.max(24) + 10));
    let (x0, x1) = (12, 34);
    let rows = (bottom - top).max(1);
    for i in 0..rows {
        // Row i: the value at its centre, highest at the top.
        let v = hi - (i as f64 + 0.5) / rows as f64 * (hi - lo);
        area.draw(&Rectangle::new(
            [(x0, top + i), (x1, top + i + 1)],
            scale.color(v).filled(),
        ))
        .map_err(err)?;
    }
    let edge = RGBColor(120, 120, 120);
    area.draw(&Rectangle::new(
        [(x0, top), (x1, bottom)],
        edge.stroke_width(1),
    ))
    .map_err(err)?;
    let text = TextStyle::from((FONT, 15).into_font()).color(&BLACK);
    // Both ends, and round values between them that keep clear of the ends.
    let mut values = vec![lo, hi];
    values.extend(
        nice_ticks(lo, hi, 4)
            .into_iter()
            .filter(|v| (v - lo).abs() > 0.15 * (hi - lo) && (hi - v).abs() > 0.15 * (hi - lo)),
    );
    for v in values {
        let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
        let y = bottom - (f * rows as f64).round() as i32;
        area.draw(&PathElement::new(vec![(x1, y), (x1 + 5, y)], edge))
            .map_err(err)?;
        // A gap after the tick mark, the text centred on it.
        area.draw(&Text::new(tick(v), (x1 + 9, y - 8), text.clone()))
            .map_err(err)?;
    }
    let caption = TextStyle::from((FONT, 15).into_font()).color(&BLACK);
    area.draw(&Text::new(label.to_string(), (x0 - 4, top - 30), caption))
        .map_err(err)?;
    Ok(())
}

/// Round values (multiples of 1, 2, 2.5 or 5 times a power of ten) inside `lo..=hi`, about
/// `n` of them.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The legend goes to the corner the lines leave empty.
    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick(1e-4), "1e-4");
        assert_eq!(tick(2.5e-5), "2.5e-5");
        assert_eq!(tick(0.001), "0.001");
        assert_eq!(tick(100.0), "100");
    }

    #[test]
    fn the_legend_takes_the_emptiest_corner() {
        let corner = |points: Vec<(f64, f64)>| {
            let s = [Series::new("train accuracy", points, PALETTE[0])];
            legend_corner(&s, (0.0, 100.0), (0.0, 1.0), (false, false), (800, 500))
        };
        let rising: Vec<(f64, f64)> = (0..=100).map(|i| (i as f64, i as f64 / 100.0)).collect();
        let falling: Vec<(f64, f64)> = rising.iter().map(|&(x, y)| (x, 1.0 - y)).collect();
        let saturating: Vec<(f64, f64)> = (0..=100)
            .map(|i| (i as f64, 1.0 - (-(i as f64) / 5.0).exp()))
            .collect();
        assert!(matches!(corner(rising), SeriesLabelPosition::UpperLeft));
        let shown = |lo, hi| {
            nice_ticks(lo, hi, 4)
                .into_iter()
                .map(tick)
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(0.5449, 1.0), ["0.6", "0.8", "1"]);
        assert_eq!(shown(-0.38, 0.38), ["-0.2", "0", "0.2"]);
        assert!(nice_ticks(1.0, 1.0, 4).is_empty());
        assert!(matches!(corner(falling), SeriesLabelPosition::UpperRight));
        // An accuracy at 1 along the top: the legend goes below, away from the curve.
        assert!(matches!(
            corner(saturating),
            SeriesLabelPosition::LowerRight
        ));
        // Two curves that cross early and then hold 1 and 0: every corner is covered, the
        // middle of the right edge is free.
        let up: Vec<(f64, f64)> = (0..=100)
            .map(|i| (i as f64, if i < 10 { i as f64 / 10.0 } else { 1.0 }))
            .collect();
        let down: Vec<(f64, f64)> = up.iter().map(|&(x, y)| (x, 1.0 - y)).collect();
        let s = [
            Series::new("to the final", up, PALETTE[0]),
            Series::new("to the initial", down, PALETTE[1]),
        ];
        assert!(matches!(
            legend_corner(&s, (0.0, 100.0), (0.0, 1.0), (false, false), (800, 500)),
            SeriesLabelPosition::MiddleRight
        ));
    }

    /// A log axis labels 1-2-5 under three decades, powers of ten above, never a crowd.
    #[test]
    fn log_ticks_are_readable() {
        let (bold, light) = log_ticks(10.0, 700.0);
        assert_eq!(bold, [10.0, 20.0, 50.0, 100.0, 200.0, 500.0]);
        assert_eq!(
            light,
            [30.0, 40.0, 60.0, 70.0, 80.0, 90.0, 300.0, 400.0, 600.0, 700.0]
        );
        let (bold, _) = log_ticks(1.0, 1e5);
        assert_eq!(bold, [1.0, 10.0, 100.0, 1e3, 1e4, 1e5]);
        let (bold, light) = log_ticks(1.0, 1e40);
        assert!(bold.len() <= 12 && light.is_empty(), "{bold:?}");
        let (bold, _) = log_ticks(100.0, 250.0);
        assert_eq!(bold, [100.0, 200.0]);
        assert_eq!(log_ticks(0.0, 1.0), (vec![], vec![]));
    }
}
