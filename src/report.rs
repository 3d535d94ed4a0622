//! `report.html`: one self-contained page for a run, a sweep or a folder of runs (figures
//! embedded, no network at view time): configurations, a sortable metrics table, every
//! figure with a caption, and each run's config, overrides and status.

use crate::artifacts::compare::{self, Run, Table};
use crate::plot::{self, PlotSpec};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Beyond this many runs, a run's section embeds only its curves (the page stays small) and
/// names its other figures.
const ALL_FIGURES_UP_TO: usize = 3;

/// Renders any missing figures, then writes `<out>/report.html`; returns its path.
pub fn write(dir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let runs = compare::collect(&[dir.to_path_buf()])?;
    let sweep = dir.join("multirun.yaml").is_file();
    let several = runs.len() > 1;
    // The figures the page shows, drawn as `ezflt plot` draws them when not there yet.
    let mut top_figures = vec![];
    if sweep {
        top_figures = plot::plot(dir, &PlotSpec::default())?;
        match plot::overlay(
            &[dir.to_path_buf()],
            &PlotSpec::default(),
            &Default::default(),
            &dir.join("plots"),
        ) {
            Ok(f) => top_figures.extend(f),
            Err(e) if e.is::<plot::TooMany>() => {}
            Err(e) => return Err(e),
        }
    }
    for r in &runs {
        if plot::list_pngs(&r.dir.join("plots")).is_empty() {
            // A run whose figures fail (no metrics yet) still gets its section.
            let _ = plot::plot_run(&r.dir, &PlotSpec::default());
        }
    }
    let table = compare::table(&runs, &Default::default())?;
    let mut html = String::new();
    let title = format!("ezflt report: {}", dir.display());
    write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n<p class=\"meta\">{} run(s); written {} by ezflt {}</p>\n",
        esc(&title),
        esc(&title),
        runs.len(),
        chrono::Local::now().format("%Y-%m-%d %H:%M"),
        env!("CARGO_PKG_VERSION")
    )?;
    if several {
        html.push_str("<h2>Configurations</h2>\n<p>Final metrics per configuration, mean ± std over seeds; the best mean of each metric in bold. Click a column to sort.</p>\n");
        html.push_str(&configurations(&table));
    }
    html.push_str("<h2 id=\"runs\">Runs</h2>\n");
    html.push_str(&runs_table(&runs, &table, dir));
    let pngs: Vec<PathBuf> = top_figures
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
        // The configurations table above already says what summary_table.png shows.
        .filter(|f| f.file_stem().is_some_and(|n| n != "summary_table"))
        .collect();
    if !pngs.is_empty() {
        html.push_str("<h2>Sweep figures</h2>\n<div class=\"figs\">\n");
        for f in &pngs {
            html.push_str(&figure(f)?);
        }
        html.push_str("</div>\n");
    }
    for (i, r) in runs.iter().enumerate() {
        html.push_str(&run_section(i, r, dir, runs.len() <= ALL_FIGURES_UP_TO)?);
    }
    html.push_str(&format!("<script>{SCRIPT}</script>\n</body></html>\n"));
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.to_path_buf());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("report.html");
    crate::plan::rundir::write_atomic(&path, &html)?;
    Ok(path)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A run's name on the page: its path below the report's directory.
fn name_of(run: &Run, root: &Path) -> String {
    match run.dir.strip_prefix(root) {
        Ok(p) if !p.as_os_str().is_empty() => p.display().to_string(),
        _ => run
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| run.dir.display().to_string()),
    }
}

fn configurations(t: &Table) -> String {
    let (header, body) = t.cells();
    let mut s = String::from("<table class=\"sortable\" id=\"configurations\"><thead><tr>");
    for h in &header {
        s.push_str(&format!("<th>{}</th>", esc(h)));
    }
    s.push_str("</tr></thead><tbody>\n");
    for row in body {
        s.push_str("<tr>");
        for (c, best) in row {
            if best {
                s.push_str(&format!("<td><b>{}</b></td>", esc(&c)));
            } else {
                s.push_str(&format!("<td>{}</td>", esc(&c)));
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    s
}

fn runs_table(runs: &[Run], t: &Table, root: &Path) -> String {
    let mut s = String::from(
        "<table class=\"sortable\" id=\"runs-table\"><thead><tr><th>run</th><th class=\"text\">status</th><th class=\"text\">overrides</th>",
    );
    for m in &t.metrics {
        s.push_str(&format!("<th>{}</th>", esc(m)));
    }
    s.push_str("<th>time (s)</th></tr></thead><tbody>\n");
    for (i, r) in runs.iter().enumerate() {
        let ov: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(
            "<tr data-run=\"{i}\"><td><a href=\"#run-{i}\">{}</a></td><td class=\"status {}\">{}</td><td class=\"text\">{}</td>",
            esc(&name_of(r, root)),
            r.summary.status,
            r.summary.status,
            esc(&ov.join(" "))
        ));
        for m in &t.metrics {
            let v = r.summary.last_metric(m);
            s.push_str(&format!(
                "<td>{}</td>",
                v.map(compare::number).unwrap_or_else(|| "-".into())
            ));
        }
        s.push_str(&format!("<td>{:.2}</td></tr>\n", r.summary.duration_s));
    }
    s.push_str("</tbody></table>\n");
    s
}

/// What a figure shows, from its file name.
fn caption(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let rest = |p: &str| stem.strip_prefix(p).unwrap_or(&stem).to_string();
    match stem.as_str() {
        "curves" => "Every logged loss and accuracy over training steps.".into(),
        "summary_table" => "Final metrics per configuration, mean ± std over seeds.".into(),
        s if s.starts_with("evolution_") => format!(
            "{}: a statistic over training, and each neuron's norm.",
            rest("evolution_")
        ),
        s if s.starts_with("heatmap_") => {
            format!("{}: neurons × inputs at one snapshot.", rest("heatmap_"))
        }
        s if s.starts_with("comparison_") => format!(
            "{} at initialisation, during and at the end of training, on one colour scale.",
            rest("comparison_")
        ),
        s if s.starts_with("best_alignment_") => format!(
            "{}: each neuron's best alignment with a ground-truth feature over training.",
            rest("best_alignment_")
        ),
        s if s.starts_with("alignment_") => format!(
            "{}: |cos| of each neuron with each ground-truth feature, at step 0 and later.",
            rest("alignment_")
        ),
        s if s.starts_with("growth_") => format!(
            "{}: growth along each ground-truth feature set, beside the accuracy.",
            rest("growth_")
        ),
        s if s.starts_with("sparsity_") => format!(
            "{}: purity and participation ratio of the neurons over training.",
            rest("sparsity_")
        ),
        s if s.starts_with("input_space_") => {
            format!("{}: first-layer neurons as images.", rest("input_space_"))
        }
        s if s.starts_with("sweep_") => format!(
            "{}: against the swept key, mean over seeds, band min..max.",
            rest("sweep_")
        ),
        s if s.starts_with("phase_") => format!(
            "{} over two swept keys, mean ± std over seeds in each cell.",
            rest("phase_")
        ),
        s if s.starts_with("overlay_") => format!(
            "{} over steps per configuration, mean with a band over seeds.",
            rest("overlay_")
        ),
        s => s.to_string(),
    }
}

/// A PNG embedded as a data URI, with its caption.
fn figure(file: &Path) -> Result<String> {
    use base64::Engine as _;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
    let cap = caption(file);
    Ok(format!(
        "<figure><img alt=\"{}\" src=\"data:image/png;base64,{data}\"><figcaption>{}</figcaption></figure>\n",
        esc(&cap),
        esc(&cap)
    ))
}

fn run_section(i: usize, r: &Run, root: &Path, all_figures: bool) -> Result<String> {
    let mut s = format!(
        "<section class=\"run\" id=\"run-{i}\"><h2>{} <span class=\"status {}\">{}</span></h2>\n",
        esc(&name_of(r, root)),
        r.summary.status,
        r.summary.status
    );
    let sm = &r.summary;
    s.push_str(&format!(
        "<p>{} on {} · {} · {} epochs, {} steps · {:.1} s · <a href=\"#runs\">all runs</a></p>\n",
        esc(&sm.model),
        esc(&sm.data),
        esc(&sm.backend),
        sm.epochs,
        sm.steps,
        sm.duration_s
    ));
    if let Some(e) = &sm.error {
        s.push_str(&format!("<p class=\"error\">{}</p>\n", esc(e)));
    }
    let ov: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    s.push_str(&format!(
        "<p>Overrides: <code>{}</code></p>\n",
        esc(&if ov.is_empty() {
            "(none)".to_string()
        } else {
            ov.join(" ")
        })
    ));
    let cfg = std::fs::read_to_string(r.dir.join(".hydra").join("config.yaml")).unwrap_or_default();
    if !cfg.is_empty() {
        s.push_str(&format!(
            "<details><summary>Config (.hydra/config.yaml)</summary><pre>{}</pre></details>\n",
            esc(&cfg)
        ));
    }
    let pngs = plot::list_pngs(&r.dir.join("plots"));
    let (shown, named): (Vec<&PathBuf>, Vec<&PathBuf>) = pngs
        .iter()
        .partition(|p| all_figures || p.file_stem().is_some_and(|n| n == "curves"));
    s.push_str("<div class=\"figs\">\n");
    for f in shown {
        s.push_str(&figure(f)?);
    }
    s.push_str("</div>\n");
    if !named.is_empty() {
        let names: Vec<String> = named
            .iter()
            .map(|p| esc(&p.display().to_string()))
            .collect();
        s.push_str(&format!(
            "<p class=\"meta\">More figures beside the run: {}</p>\n",
            names.join(", ")
        ));
    }
    s.push_str("</section>\n");
    Ok(s)
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{padding:.3em .7em;border-bottom:1px solid #e5e5e5;text-align:right}\
th:first-child,td:first-child,.text{text-align:left}th{background:#f0f0f0;cursor:pointer;user-select:none}\
tr:nth-child(even) td{background:#fafafa}.meta{color:#666;font-size:.9em}\
.status{font-size:.8em;padding:.1em .4em;border-radius:3px;background:#e8f5e9}.status.failed,.status.diverged{background:#fdecea}.status.interrupted{background:#fff4e5}\
.figs{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;max-width:100%}figure img{max-width:100%;border:1px solid #eee}\
figcaption{font-size:.85em;color:#444}pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.8em}.error{color:#b00020}";

/// Click a header to sort by that column (numbers as numbers; again to reverse).
const SCRIPT: &str = "document.querySelectorAll('table.sortable').forEach(function(t){\
t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){\
var b=t.tBodies[0],rows=Array.from(b.rows),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';\
rows.sort(function(x,y){var a=x.cells[i].textContent,c=y.cells[i].textContent,p=parseFloat(a),q=parseFloat(c);\
var r=(!isNaN(p)&&!isNaN(q))?p-q:a.localeCompare(c);return asc?r:-r;});rows.forEach(function(r){b.appendChild(r);});});});});";
