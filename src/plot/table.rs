//! A sweep's summary table as a figure (`summary_table.png`, beside `summary_table.csv`):
//! one row per configuration, final metrics as mean ± std over seeds, the best shaded.

use super::draw::{self, FONT};
use super::{Overlay, PlotSpec};
use crate::artifacts::compare::Table;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// `summary_table.csv` and `.png` of runs and sweeps (`ezflt plot A B ...`), grouped and
/// filtered as their overlays are (`--by`, `--filter`); returns the files written.
pub fn summary_table(
    dirs: &[PathBuf],
    spec: &PlotSpec,
    o: &Overlay,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let (runs, table) = super::overlay::grouped(dirs, o)?;
    let title = format!(
        "final metrics per configuration, mean ± std over seeds (best shaded) - {} runs",
        runs.len()
    );
    write(&table, &title, spec, out)
}

/// Writes `table` as `summary_table.csv` and `summary_table.png` (or `.svg`) into `out`.
pub(super) fn write(
    table: &Table,
    title: &str,
    spec: &PlotSpec,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let csv = out.join("summary_table.csv");
    crate::plan::rundir::write_atomic(&csv, &table.csv())?;
    let png = figure!(spec, out, "summary_table", size(table), |root| {
        draw(root, table, title)
    });
    Ok(vec![csv, png])
}

/// Pixels per character of the table font (DejaVu Sans at 15 px), and per row.
const CHAR_W: f64 = 8.6;
const ROW_H: i32 = 30;
const PAD: i32 = 14;

/// Pixel size the table needs.
pub fn size(t: &Table) -> (u32, u32) {
    let widths = column_widths(t);
    let w: i32 = widths.iter().sum::<i32>() + 2 * PAD;
    let h = (t.rows.len() as i32 + 1) * ROW_H + 2 * PAD + 30;
    (w.max(300) as u32, h as u32)
}

fn column_widths(t: &Table) -> Vec<i32> {
    let (header, body) = t.cells();
    (0..header.len())
        .map(|j| {
            let chars = std::iter::once(&header[j])
                .chain(body.iter().map(|r| &r[j].0))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0);
            (chars as f64 * CHAR_W) as i32 + 24
        })
        .collect()
}

/// Draws `t` with `title` above it.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    t: &Table,
    title: &str,
) -> Result<()> {
    let (header, body) = t.cells();
    let widths = column_widths(t);
    let text = |bold: bool| {
        TextStyle::from((FONT, 15).into_font()).color(if bold {
            &BLACK
        } else {
            &RGBColor(30, 30, 30)
        })
    };
    area.draw(&Text::new(
        title.to_string(),
        (PAD, PAD - 2),
        TextStyle::from((FONT, 17).into_font()).color(&BLACK),
    ))
    .map_err(draw::err)?;
    let top = PAD + 30;
    let right = PAD + widths.iter().sum::<i32>();
    // Header on grey, a rule under it, rows striped for the eye.
    area.draw(&Rectangle::new(
        [(PAD, top), (right, top + ROW_H)],
        RGBColor(232, 232, 232).filled(),
    ))
    .map_err(draw::err)?;
    for (i, row) in body.iter().enumerate() {
        let y = top + (i as i32 + 1) * ROW_H;
        if i % 2 == 1 {
            area.draw(&Rectangle::new(
                [(PAD, y), (right, y + ROW_H)],
                RGBColor(247, 247, 247).filled(),
            ))
            .map_err(draw::err)?;
        }
        let mut x = PAD;
        for (j, (cell, best)) in row.iter().enumerate() {
            if *best {
                area.draw(&Rectangle::new(
                    [(x, y), (x + widths[j], y + ROW_H)],
                    RGBColor(204, 236, 214).filled(),
                ))
                .map_err(draw::err)?;
            }
            area.draw(&Text::new(cell.clone(), (x + 12, y + 7), text(false)))
                .map_err(draw::err)?;
            x += widths[j];
        }
    }
    let mut x = PAD;
    for (j, h) in header.iter().enumerate() {
        area.draw(&Text::new(h.clone(), (x + 12, top + 7), text(true)))
            .map_err(draw::err)?;
        x += widths[j];
    }
    let rule = RGBColor(150, 150, 150);
    area.draw(&PathElement::new(
        vec![(PAD, top + ROW_H), (right, top + ROW_H)],
        rule,
    ))
    .map_err(draw::err)?;
    let bottom = top + (body.len() as i32 + 1) * ROW_H;
    area.draw(&PathElement::new(
        vec![(PAD, bottom), (right, bottom)],
        rule,
    ))
    .map_err(draw::err)?;
    Ok(())
}
