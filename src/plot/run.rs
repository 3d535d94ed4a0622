//! Figures of one run: curves, evolution, heatmap, comparison, alignment, growth, sparsity
//! and input-space views, from its metrics and feature archive.

use super::draw::{self, Matrix, Scale, Series, PALETTE};
use super::load::Run;
use super::summaries;
use super::{as_matrix, note_subsampled, subsample, PlotSpec, MAX_LINES, MAX_TIMES};
use crate::artifacts::npz::Archive;
use crate::track::spill;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

pub fn plot_run(dir: &Path, spec: &PlotSpec) -> Result<Vec<PathBuf>> {
    let run = Run::load(dir)?;
    let out = spec.out.clone().unwrap_or_else(|| dir.join("plots"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut files = vec![];
    if spec.wants("curves") {
        files.push(curves(&run, spec, &out)?);
    }
    let need_archive = [
        "evolution",
        "heatmap",
        "comparison",
        "alignment",
        "input_space",
    ]
    .iter()
    .any(|k| spec.what.iter().any(|w| w == k));
    let archive = match run.archive() {
        Ok(a) => Some(a),
        Err(e) if need_archive => return Err(e),
        Err(e) => {
            if dir.join(spill::ARCHIVE).exists() {
                // Present but unreadable: say so rather than drawing fewer figures silently.
                warnln!(
                    "{} is damaged ({}); only the curves were drawn. \
                     `ezflt inspect --repair {}` recovers what it can",
                    dir.join(spill::ARCHIVE).display(),
                    crate::format_error(&e).replace('\n', " "),
                    dir.display()
                );
            }
            None
        }
    };
    let Some(mut ar) = archive else {
        return Ok(files);
    };
    let names = ar.names();
    let meta = ar.metadata();
    let tracked = ar.tracked();
    let tensor = match &spec.tensor {
        Some(t) if names.contains(t) && tracked.contains(t) => t.clone(),
        Some(t) => bail!(
            "tensor '{t}' was not tracked in this run; tracked: {} (set tracker.layers when training)",
            tracked.join(", ")
        ),
        None => tracked.first().cloned().ok_or_else(|| {
            if meta["salvaged"] == true {
                anyhow!("the archive was salvaged from a damaged file and lost its weight arrays; only --what curves applies")
            } else {
                anyhow!("the archive tracks no weights (tracker.track_weights=false)")
            }
        })?,
    };
    let steps = ar.read_i64("step")?;
    let epochs = ar.read_i64("epoch")?;
    if steps.is_empty() {
        bail!("the archive holds no snapshots");
    }
    let pick = pick_snapshot(&steps, &epochs, spec)?;
    if spec.wants("evolution") {
        files.push(evolution(&run, &mut ar, &tensor, &steps, spec, &out)?);
    }
    if spec.wants("heatmap") {
        files.push(tensor_heatmap(
            &run, &mut ar, &tensor, &steps, pick, spec, &out,
        )?);
    }
    if spec.wants("comparison") {
        files.push(comparison(
            &run, &mut ar, &tensor, &steps, &epochs, spec, &out,
        )?);
    }
    if spec.wants("alignment") {
        let prefix = format!("align_norm.{tensor}.");
        let feats: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix).map(String::from))
            .collect();
        if feats.is_empty() && spec.what.iter().any(|w| w == "alignment") {
            bail!("no alignment for '{tensor}' in this run: the data has no ground-truth features of its input size (or tracker.alignment=false)");
        }
        for f in feats {
            files.extend(alignment(
                &run, &mut ar, &tensor, &f, &steps, pick, spec, &out,
            )?);
        }
    }
    if spec.wants("growth") {
        let prefix = format!("align.{tensor}.");
        let feats: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix).map(String::from))
            .collect();
        if !feats.is_empty() {
            files.push(growth(&run, &mut ar, &tensor, &feats, &steps, spec, &out)?);
        } else if spec.what.iter().any(|w| w == "growth") {
            bail!("no alignment for '{tensor}' in this run: growth needs ground-truth features of its input size");
        }
    }
    if spec.wants("sparsity") {
        let prefix = format!("align.{tensor}.");
        let mut any = false;
        for f in names.iter().filter_map(|n| n.strip_prefix(&prefix)) {
            if ar
                .shape(&format!("align.{tensor}.{f}"))?
                .get(2)
                .copied()
                .unwrap_or(1)
                >= 2
            {
                files.push(sparsity(&run, &mut ar, &tensor, f, &steps, spec, &out)?);
                any = true;
            }
        }
        if !any && spec.what.iter().any(|w| w == "sparsity") {
            bail!("sparsity needs a tracked weight aligned with at least two ground-truth features (e.g. dictionary atoms)");
        }
    }
    if spec.wants("activations") {
        let acts: Vec<String> = meta["activations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if acts.is_empty() && spec.what.iter().any(|w| w == "activations") {
            bail!("this run recorded no activations; train with tracker.activations=[...] (e.g. [layers.0])");
        }
        for a in acts {
            files.push(activations(&run, &mut ar, &a, &steps, pick, spec, &out)?);
        }
    }
    if spec.wants("modes") {
        match modes(&run, &mut ar, &steps, spec, &out)? {
            Some(f) => files.push(f),
            None if spec.what.iter().any(|w| w == "modes") => bail!(
                "modes needs a linear teacher's modes (data=linear_teacher: input_modes, output_modes) \
                 and tracked weight matrices whose product maps its inputs to its outputs \
                 (tracker.layers=[\"*.weight\"] on a bias-free linear network)"
            ),
            None => {}
        }
    }
    if spec.wants("input_space") {
        let shape = run.summary.sample_shape.clone();
        match input_space(&run, &mut ar, &tensor, &steps, pick, &shape, spec, &out)? {
            Some(f) => files.push(f),
            None if spec.what.iter().any(|w| w == "input_space") => bail!(
                "input_space needs image data (samples [channels, height, width]) and a first-layer weight over the pixels; this run has samples {shape:?}"
            ),
            None => {}
        }
    }
    Ok(files)
}

/// The snapshot `--step` / `--epoch` names (default: the last).
fn pick_snapshot(steps: &[i64], epochs: &[i64], spec: &PlotSpec) -> Result<usize> {
    if let Some(s) = spec.step {
        return steps.iter().position(|x| *x == s).ok_or_else(|| {
            let shown: Vec<String> = subsample(steps.len(), 20)
                .iter()
                .map(|&i| steps[i].to_string())
                .collect();
            anyhow!(
                "step {s} was not recorded; recorded steps include: {} (of {})",
                shown.join(", "),
                steps.len()
            )
        });
    }
    if let Some(e) = spec.epoch {
        // The last snapshot taken in that epoch (its end).
        return epochs.iter().rposition(|x| *x == e).ok_or_else(|| {
            anyhow!(
                "epoch {e} has no snapshot; epochs recorded: {}..{}",
                epochs.first().unwrap_or(&0),
                epochs.last().unwrap_or(&0)
            )
        });
    }
    Ok(steps.len() - 1)
}

fn curves(run: &Run, spec: &PlotSpec, out: &Path) -> Result<PathBuf> {
    let train_loss = run.train_metric("train_loss");
    if train_loss.is_empty() {
        bail!(
            "{} has no metrics rows yet (metrics.jsonl)",
            run.dir.display()
        );
    }
    // Every loss-like and accuracy-like metric the run logged (true_test_acc, robust_acc,
    // semantic_auroc, ...), train first, then test, then the rest by name.
    let mut keys: Vec<String> = run
        .rows
        .iter()
        .filter_map(|r| r.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let rank = |k: &str| match k.split('_').next() {
        Some("train") => 0,
        Some("test") => 1,
        _ => 2,
    };
    keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
    let loss_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with("_loss") && k.as_str() != "train_loss")
        .collect();
    let acc_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with("_acc") || k.ends_with("_auroc") || k.ends_with("_r2"))
        .collect();
    // One colour per split across both panels (train, test, true_test, ...).
    let base = |k: &str| {
        ["_loss", "_acc", "_auroc", "_r2"]
            .iter()
            .find_map(|s| k.strip_suffix(s))
            .unwrap_or(k)
            .to_string()
    };
    let mut splits: Vec<String> = vec!["train".into()];
    for k in loss_keys.iter().chain(&acc_keys) {
        if !splits.contains(&base(k)) {
            splits.push(base(k));
        }
    }
    let colour = |k: &str| {
        let i = splits.iter().position(|s| *s == base(k)).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
    let mut loss_series = vec![Series::new("train", train_loss, PALETTE[0])];
    for k in &loss_keys {
        let name = k.trim_end_matches("_loss");
        loss_series.push(Series::new(name, run.metric(k, true), colour(k)));
    }
    let acc_series: Vec<Series> = acc_keys
        .iter()
        .map(|k| {
            let points = if k.as_str() == "train_acc" {
                run.train_metric(k)
            } else {
                run.metric(k, true)
            };
            Series::new(
                k.trim_end_matches("_acc").trim_end_matches("_r2"),
                points,
                colour(k),
            )
        })
        .collect();
    let acc_label = if acc_keys.iter().all(|k| k.ends_with("_r2")) {
        "R²"
    } else if acc_keys.iter().any(|k| k.ends_with("_auroc")) {
        "accuracy / AUROC"
    } else {
        "accuracy"
    };
    let size = if acc_series.is_empty() {
        (900, 560)
    } else {
        (1500, 560)
    };
    let title = run.title.clone();
    Ok(figure!(spec, out, "curves", size, |root| {
        let (t, rest) = root.split_vertically(36);
        t.titled(&draw::fit(&title, t.dim_in_pixel().0, 20), (draw::FONT, 20))
            .map_err(draw::err)?;
        if acc_series.is_empty() {
            draw::line_chart(&rest, "loss", "step", "loss", &loss_series, spec.log_x)?;
        } else {
            let (a, b) = rest.split_horizontally(750);
            draw::line_chart(&a, "loss", "step", "loss", &loss_series, spec.log_x)?;
            draw::line_chart(&b, acc_label, "step", acc_label, &acc_series, spec.log_x)?;
        }
        Ok(())
    }))
}

fn row_norms(v: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| {
            v[r * cols..(r + 1) * cols]
                .iter()
                .map(|x| (*x as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .collect()
}

fn evolution(
    run: &Run,
    ar: &mut Archive,
    tensor: &str,
    steps: &[i64],
    spec: &PlotSpec,
    out: &Path,
) -> Result<PathBuf> {
    let idx = subsample(steps.len(), MAX_TIMES);
    let (shape, snaps) = ar.read_steps(tensor, &idx)?;
    let (rows, cols) = as_matrix(&shape);
    let metric = spec.metric.clone().unwrap_or_else(|| "norm".into());
    let stat = |v: &[f32]| -> Result<f64> {
        let n = v.len().max(1) as f64;
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
        Ok(match metric.as_str() {
            "norm" => v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt(),
            "mean" => mean,
            "std" => (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt(),
            "max_abs" => v.iter().fold(0.0f64, |m, x| m.max((*x as f64).abs())),
            other => bail!("--metric {other}: for evolution choose norm, mean, std or max_abs"),
        })
    };
    let x: Vec<f64> = idx.iter().map(|&i| steps[i] as f64).collect();
    let total: Vec<(f64, f64)> = x
        .iter()
        .zip(&snaps)
        .map(|(s, v)| Ok((*s, stat(v)?)))
        .collect::<Result<_>>()?;
    let norms: Vec<Vec<f64>> = snaps.iter().map(|v| row_norms(v, rows, cols)).collect();
    let mut neuron_series = vec![];
    // One line per neuron, coloured by its index (a colorbar says which is which).
    let neuron_scale = (rows <= MAX_LINES).then_some(Scale::Sequential {
        lo: 0.0,
        hi: (rows.max(2) - 1) as f64,
    });
    if let Some(scale) = neuron_scale {
        for r in 0..rows {
            let mut s = Series::new(
                "",
                x.iter().zip(&norms).map(|(s, n)| (*s, n[r])).collect(),
                scale.color(r as f64),
            );
            s.width = 1;
            neuron_series.push(s);
        }
    } else {
        // Quantile bands over neurons: min-max, 25-75 %, and the median line.
        let q = |n: &Vec<f64>, p: f64| {
            let mut s = n.clone();
            s.sort_by(|a, b| a.total_cmp(b));
            s[((s.len() - 1) as f64 * p).round() as usize]
        };
        let mut outer = Series::new("min-max", vec![], PALETTE[4]);
        outer.band = x
            .iter()
            .zip(&norms)
            .map(|(s, n)| (*s, q(n, 0.0), q(n, 1.0)))
            .collect();
        let mut inner = Series::new("25-75 %", vec![], PALETTE[0]);
        inner.band = x
            .iter()
            .zip(&norms)
            .map(|(s, n)| (*s, q(n, 0.25), q(n, 0.75)))
            .collect();
        let median = Series::new(
            "median",
            x.iter().zip(&norms).map(|(s, n)| (*s, q(n, 0.5))).collect(),
            PALETTE[0],
        );
        neuron_series = vec![outer, inner, median];
    }
    let title = note_subsampled(&format!("{tensor}: evolution"), idx.len(), steps.len());
    let sub = run.title.clone();
    let name = format!("evolution_{tensor}");
    let per_neuron = format!(
        "per-neuron norm ({rows} neurons{})",
        if rows > MAX_LINES { ", quantiles" } else { "" }
    );
    Ok(figure!(spec, out, name, (1500, 560), |root| {
        let (t, rest) = root.split_vertically(36);
        t.titled(&format!("{title} - {sub}"), (draw::FONT, 19))
            .map_err(draw::err)?;
        let (a, b) = rest.split_horizontally(750);
        draw::line_chart(
            &a,
            &format!("{metric} of {tensor}"),
            "step",
            &metric,
            &[Series::new("", total.clone(), PALETTE[0])],
            spec.log_x,
        )?;
        match neuron_scale {
            Some(scale) => {
                let (lines, bar) = b.split_horizontally(750 - draw::BAR_WIDTH);
                draw::line_chart(
                    &lines,
                    &per_neuron,
                    "step",
                    "‖wᵣ‖",
                    &neuron_series,
                    spec.log_x,
                )?;
                draw::colorbar(&bar, scale, "neuron r", None)?;
            }
            None => {
                draw::line_chart(&b, &per_neuron, "step", "‖wᵣ‖", &neuron_series, spec.log_x)?;
            }
        }
        Ok(())
    }))
}

/// Rows per class of a `[classes, m, d]` parameter (two-layer CNN filters); 0 otherwise.
fn class_rows(shape: &[usize]) -> usize {
    match shape {
        [c, m, _] if *c > 1 => *m,
        _ => 0,
    }
}

fn tensor_heatmap(
    run: &Run,
    ar: &mut Archive,
    tensor: &str,
    steps: &[i64],
    pick: usize,
    spec: &PlotSpec,
    out: &Path,
) -> Result<PathBuf> {
    let a = ar.read_step(tensor, pick)?;
    let (rows, cols) = as_matrix(&a.shape);
    let title = format!("{tensor} at step {} - {}", steps[pick], run.title);
    let name = format!("heatmap_{tensor}_step{}", steps[pick]);
    let scale = Scale::diverging(&a.values);
    let group = class_rows(&a.shape);
    Ok(figure!(spec, out, name, (1100, 700), |root| {
        let cells = draw::heatmap(
            root,
            &title,
            "input",
            "neuron",
            &Matrix {
                values: &a.values,
                rows,
                cols,
            },
            scale,
            "weight",
            None,
            None,
        )?;
        draw::row_groups(root, cells, rows, group, "class")?;
        Ok(())
    }))
}

/// The same tensor at up to four snapshots (start, thirds, end) with one colour scale.
fn comparison(
    run: &Run,
    ar: &mut Archive,
    tensor: &str,
    steps: &[i64],
    epochs: &[i64],
    spec: &PlotSpec,
    out: &Path,
) -> Result<PathBuf> {
    let idx = if spec.epochs.is_empty() {
        subsample(steps.len(), 4)
    } else {
        let mut idx = vec![];
        for e in &spec.epochs {
            // The epoch's last snapshot; "epoch 0" before any step is the initialisation.
            let i = epochs.iter().rposition(|x| x == e).ok_or_else(|| {
                anyhow!(
                    "--epochs: epoch {e} has no snapshot; epochs recorded: {}..{}",
                    epochs.first().unwrap_or(&0),
                    epochs.last().unwrap_or(&0)
                )
            })?;
            idx.push(i);
        }
        idx.sort_unstable();
        idx.dedup();
        idx
    };
    let (shape, snaps) = ar.read_steps(tensor, &idx)?;
    let (rows, cols) = as_matrix(&shape);
    let all: Vec<f32> = snaps.iter().flatten().copied().collect();
    let scale = Scale::diverging(&all);
    let title = format!("{tensor} across training - {}", run.title);
    let name = format!("comparison_{tensor}");
    let w = 400 * idx.len() as u32 + draw::BAR_WIDTH as u32;
    Ok(figure!(spec, out, name, (w.max(840), 560), |root| {
        let (t, rest) = root.split_vertically(36);
        t.titled(&draw::fit(&title, t.dim_in_pixel().0, 19), (draw::FONT, 19))
            .map_err(draw::err)?;
        // One colour scale for every panel, so one bar for all of them.
        let (rest, bar) = rest.split_horizontally(rest.dim_in_pixel().0 as i32 - draw::BAR_WIDTH);
        let panels = rest.split_evenly((1, idx.len()));
        let mut cells = None;
        for ((p, i), v) in panels.iter().zip(&idx).zip(&snaps) {
            let label = if steps[*i] == 0 {
                "init (step 0)".to_string()
            } else {
                format!("epoch {} (step {})", epochs[*i], steps[*i])
            };
            let c = draw::heatmap_cells(
                p,
                &label,
                "input",
                "neuron",
                &Matrix {
                    values: v,
                    rows,
                    cols,
                },
                scale,
                None,
                None,
            )?;
            draw::row_groups(p, c, rows, class_rows(&shape), "class")?;
            cells = Some(c);
        }
        let top = bar.get_base_pixel().1;
        let span = cells.map(|c| (c.1 - top, c.3 - top));
        draw::colorbar(&bar, scale, "weight", span)?;
        Ok(())
    }))
}

#[allow(clippy::too_many_arguments)]
fn alignment(
    run: &Run,
    ar: &mut Archive,
    tensor: &str,
    feature: &str,
    steps: &[i64],
    pick: usize,
    spec: &PlotSpec,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let key = format!("align_norm.{tensor}.{feature}");
    let idx = subsample(steps.len(), MAX_TIMES);
    let mut want = idx.clone();
    if !want.contains(&0) {
        want.insert(0, 0);
    }
    if !want.contains(&pick) {
        want.push(pick);
        want.sort();
    }
    let (shape, snaps) = ar.read_steps(&key, &want)?;
    let (neurons, k) = (shape[0], shape.get(1).copied().unwrap_or(1));
    let at = |i: usize| &snaps[want.iter().position(|w| *w == i).unwrap_or(0)];
    let mut files = vec![];
    // Neuron x feature at initialisation and at the chosen step; |cos| in [0, 1].
    let abs = |v: &Vec<f32>| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
    let (first, chosen) = (abs(at(0)), abs(at(pick)));
    let scale = Scale::Sequential { lo: 0.0, hi: 1.0 };
    let title = format!("|cos(wᵣ, {feature}ⱼ)| of {tensor} - {}", run.title);
    let name = format!("alignment_{tensor}_{feature}");
    let s_pick = steps[pick];
    let group = run
        .summary
        .params
        .get(tensor)
        .and_then(|v| serde_json::from_value::<Vec<usize>>(v.clone()).ok())
        .map_or(0, |shape| class_rows(&shape));
    files.push(figure!(spec, out, name, (1500, 640), |root| {
        let (t, rest) = root.split_vertically(36);
        t.titled(&draw::fit(&title, t.dim_in_pixel().0, 19), (draw::FONT, 19))
            .map_err(draw::err)?;
        let (a, b) = rest.split_horizontally(750);
        let feature_tick = |c: usize| c.to_string();
        let ca = draw::heatmap(
            &a,
            "step 0",
            &format!("{feature} (feature j)"),
            "neuron r",
            &Matrix {
                values: &first,
                rows: neurons,
                cols: k,
            },
            scale,
            "|cos|",
            Some(&feature_tick),
            None,
        )?;
        draw::row_groups(&a, ca, neurons, group, "class")?;
        let cb = draw::heatmap(
            &b,
            &format!("step {s_pick}"),
            &format!("{feature} (feature j)"),
            "neuron r",
            &Matrix {
                values: &chosen,
                rows: neurons,
                cols: k,
            },
            scale,
            "|cos|",
            Some(&feature_tick),
            None,
        )?;
        draw::row_groups(&b, cb, neurons, group, "class")?;
        Ok(())
    }));
    // Best alignment per neuron over time (neurons x time), neurons sorted by the final value.
    let best: Vec<Vec<f32>> = idx
        .iter()
        .map(|&i| {
            (0..neurons)
                .map(|r| {
                    at(i)[r * k..(r + 1) * k]
                        .iter()
                        .fold(0.0f32, |m, x| m.max(x.abs()))
                })
                .collect()
        })
        .collect();
    let last = best.last().cloned().unwrap_or_default();
    let mut order: Vec<usize> = (0..neurons).collect();
    order.sort_by(|a, b| last[*b].total_cmp(&last[*a]));
    let t = idx.len();
    let mut m = vec![0.0f32; neurons * t];
    for (row, &r) in order.iter().enumerate() {
        for (col, b) in best.iter().enumerate() {
            m[row * t + col] = b[r];
        }
    }
    let title = note_subsampled(
        &format!("best alignment maxⱼ |cos(wᵣ, {feature}ⱼ)| of {tensor}"),
        t,
        steps.len(),
    );
    let name = format!("best_alignment_{tensor}_{feature}");
    let tick_steps: Vec<i64> = idx.iter().map(|&i| steps[i]).collect();
    let ticks = move |c: usize| tick_steps.get(c).map(|s| s.to_string()).unwrap_or_default();
    files.push(figure!(spec, out, name, (1200, 700), |root| {
        draw::heatmap(
            root,
            &title,
            "step (snapshot)",
            "neuron (sorted by final alignment)",
            &Matrix {
                values: &m,
                rows: neurons,
                cols: t,
            },
            scale,
            "max |cos|",
            Some(&ticks),
            None,
        )?;
        Ok(())
    }));
    Ok(files)
}

/// Feature learning over time, per ground-truth feature set: `mean_j max_r <w_r(t) - w_r(0), m_j>`
/// (for one signal vector: signal learning; for the training noise vectors: noise
/// memorisation, as in the benign-overfitting papers), with test accuracy beside it.
#[allow(clippy::too_many_arguments)]
fn growth(
    run: &Run,
    ar: &mut Archive,
    tensor: &str,
    feats: &[String],
    steps: &[i64],
    spec: &PlotSpec,
    out: &Path,
) -> Result<PathBuf> {
    let idx = subsample(steps.len(), MAX_TIMES);
    let mut series = vec![];
    for (c, f) in feats.iter().enumerate() {
        let k = ar
            .shape(&format!("align.{tensor}.{f}"))?
            .get(2)
            .copied()
            .unwrap_or(1);
        let pts = summaries::growth(ar, tensor, f, steps, &idx)?;
        series.push(Series::new(
            &format!("{f} ({k} vector{})", if k == 1 { "" } else { "s" }),
            pts,
            PALETTE[c % PALETTE.len()],
        ));
    }
    let acc = vec![
        Series::new("train", run.train_metric("train_acc"), PALETTE[0]),
        Series::new("test", run.metric("test_acc", true), PALETTE[1]),
    ];
    let has_acc = acc.iter().any(|s| !s.points.is_empty());
    let title = note_subsampled(
        &format!("feature learning in {tensor} - {}", run.title),
        idx.len(),
        steps.len(),
    );
    let name = format!("growth_{tensor}");
    let log_x = true;
    Ok(figure!(spec, out, name, (1500, 560), |root| {
        let (t, rest) = root.split_vertically(36);
        t.titled(&draw::fit(&title, t.dim_in_pixel().0, 19), (draw::FONT, 19))
            .map_err(draw::err)?;
        let (a, b) = rest.split_horizontally(750);
        draw::line_chart(
            &a,
            "meanⱼ maxᵣ ⟨wᵣ(t) − wᵣ(0), mⱼ⟩",
            "step",
            "growth along the feature",
            &series,
            log_x,
        )?;
        if has_acc {
            draw::line_chart(&b, "accuracy", "step", "accuracy", &acc, log_x)?;
        }
        Ok(())
    }))
}

/// The end-to-end map `M = W_L ⋯ W_1` of the tracked matrices (in layer order) on each
/// teacher mode, `aᵢ(t) = uᵢᵀ M(t) vᵢ` (Saxe et al. 2014's mode strengths: a staircase when
/// modes are learned one after another). `None` when the run has no such modes or chain.
fn modes(
    run: &Run,
    ar: &mut Archive,
    steps: &[i64],
    spec: &PlotSpec,
    out: &Path,
) -> Result<Option<PathBuf>> {
    let names = ar.names().to_vec();
    let has = |n: &str| names.iter().any(|m| m == n);
    if !has("gt.input_modes") || !has("gt.output_modes") {
        return Ok(None);
    }
    let v = ar.read("gt.input_modes")?;
    let u = ar.read("gt.output_modes")?;
    let sv = if has("gt.singular_values") {
        ar.read("gt.singular_values")?.values
    } else {
        vec![]
    };
    let (k, din, dout) = (v.shape[0], v.shape[1], u.shape[1]);
    // Tracked matrices in layer order: `0.weight`, `1.weight`, ... (sequential's names).
    let mut chain: Vec<String> = ar
        .tracked()
        .into_iter()
        .filter(|t| t.ends_with("weight"))
        .collect();
    chain.sort_by_key(|t| {
        t.split('.')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    });
    let idx = subsample(steps.len(), MAX_TIMES);
    let mut mats: Vec<(Vec<usize>, Vec<Vec<f32>>)> = vec![];
    for t in &chain {
        mats.push(ar.read_steps(t, &idx)?);
    }
    // Shapes must chain: [h1, din], [h2, h1], ..., [dout, h_L].
    let mut cols = din;
    for (shape, _) in &mats {
        if shape.len() != 2 || shape[1] != cols {
            return Ok(None);
        }
        cols = shape[0];
    }
    if mats.is_empty() || cols != dout {
        return Ok(None);
    }
    let mut series: Vec<Series> = (0..k)
        .map(|m| {
            let name = match sv.get(m) {
                Some(s) => format!("mode {} (s = {})", m + 1, draw::tick(*s as f64)),
                None => format!("mode {}", m + 1),
            };
            Series::new(&name, vec![], PALETTE[m % PALETTE.len()])
        })
        .collect();
    for (j, &i) in idx.iter().enumerate() {
        // B = M vᵢ for every mode at once: push the k input vectors through the chain.
        let mut b: Vec<Vec<f64>> = (0..k)
            .map(|m| (0..din).map(|c| v.values[m * din + c] as f64).collect())
            .collect();
        for (shape, snaps) in &mats {
            let (rows, c) = (shape[0], shape[1]);
            let w = &snaps[j];
            b = b
                .iter()
                .map(|x| {
                    (0..rows)
                        .map(|r| (0..c).map(|q| w[r * c + q] as f64 * x[q]).sum())
                        .collect()
                })
                .collect();
        }
        for (m, bm) in b.iter().enumerate() {
            let a: f64 = (0..dout)
                .map(|o| u.values[m * dout + o] as f64 * bm[o])
                .sum();
            series[m].points.push((steps[i] as f64, a));
        }
    }
    let title = note_subsampled(
        &format!(
            "mode strengths uᵢᵀ W_{}⋯W_1 vᵢ - {}",
            chain.len(),
            run.title
        ),
        idx.len(),
        steps.len(),
    );
    let name = "modes".to_string();
    Ok(Some(figure!(spec, out, name, (1100, 620), |root| {
        draw::line_chart(root, &title, "step", "mode strength", &series, spec.log_x)
    })))
}

/// How concentrated each neuron is on few features, over time (`summaries::concentration`).
#[allow(clippy::too_many_arguments)]
fn sparsity(
    run: &Run,
    ar: &mut Archive,
    tensor: &str,
    feature: &str,
    steps: &[i64],
    spec: &PlotSpec,
    out: &Path,
) -> Result<PathBuf> {
    let idx = subsample(steps.len(), MAX_TIMES);
    let k = ar
        .shape(&format!("align.{tensor}.{feature}"))?
        .get(2)
        .copied()
        .unwrap_or(1);
    let (purity, pr) = summaries::concentration(ar, tensor, feature, steps, &idx)?;
    let title = note_subsampled(
        &format!(
            "concentration of {tensor} on {feature} ({k} features) - {}",
            run.title
        ),
        idx.len(),
        steps.len(),
    );
    let name = format!("sparsity_{tensor}_{feature}");
    Ok(figure!(spec, out, name, (1500, 560), |root| {
        let (t, rest) = root.split_vertically(36);
        t.titled(&draw::fit(&title, t.dim_in_pixel().0, 19), (draw::FONT, 19))
            .map_err(draw::err)?;
        let (a, b) = rest.split_horizontally(750);
        draw::line_chart(
            &a,
            "purity maxⱼ |cᵣⱼ| / ‖cᵣ‖ (weighted mean)",
            "step",
            "purity",
            &[Series::new("", purity.clone(), PALETTE[0])],
            spec.log_x,
        )?;
        draw::line_chart(
            &b,
            "participation ratio (weighted mean)",
            "step",
            "features per neuron",
            &[Series::new("", pr.clone(), PALETTE[2])],
            spec.log_x,
        )?;
        Ok(())
    }))
}

/// First-layer neurons reshaped to the input image and tiled (image data only).
#[allow(clippy::too_many_arguments)]
fn input_space(
    run: &Run,
    ar: &mut Archive,
    tensor: &str,
    steps: &[i64],
    pick: usize,
    sample: &[usize],
    spec: &PlotSpec,
    out: &Path,
) -> Result<Option<PathBuf>> {
    let [c, h, w] = sample else { return Ok(None) };
    let a = ar.read_step(tensor, pick)?;
    let (rows, cols) = as_matrix(&a.shape);
    if cols != c * h * w {
        return Ok(None);
    }
    let n = rows.min(64);
    let grid = (n as f64).sqrt().ceil() as usize;
    let (h, w) = (*h, *w);
    let title = format!(
        "{tensor} at step {}: first {n} neurons as {h}x{w} images - {}",
        steps[pick], run.title
    );
    let name = format!("input_space_{tensor}");
    let scale = Scale::diverging(&a.values[..n * cols]);
    Ok(Some(figure!(spec, out, name, (1110, 1040), |root| {
        let (t, rest) = root.split_vertically(40);
        let (rest, bar) = rest.split_horizontally(1000);
        draw::colorbar(&bar, scale, "weight", None)?;
        t.titled(&draw::fit(&title, t.dim_in_pixel().0, 16), (draw::FONT, 16))
            .map_err(draw::err)?;
        let tiles = rest.margin(6, 6, 6, 6).split_evenly((grid, grid));
        for (r, tile) in tiles.iter().enumerate().take(n) {
            let (tw, th) = tile.dim_in_pixel();
            let (pw, ph) = ((tw as usize).max(1), (th as usize).max(1));
            // Channel 0 of each neuron's weights, nearest-pixel scaled to the tile.
            for y in 0..ph.saturating_sub(2) {
                for x in 0..pw.saturating_sub(2) {
                    let (iy, ix) = (y * h / ph, x * w / pw);
                    let v = a.values[r * cols + iy * w + ix] as f64;
                    tile.draw_pixel((x as i32, y as i32), &scale.color(v))
                        .map_err(draw::err)?;
                }
            }
        }
        Ok(())
    })))
}

/// Linear CKA between two representations of the same `n` inputs, `a` `[n, p]` and `b`
/// `[n, q]`: `‖AᵀB‖²_F / (‖AᵀA‖_F ‖BᵀB‖_F)` with centred columns (Kornblith et al. 2019),
/// through the `n x n` Gram matrices. 1 = the same up to rotation and scale.
fn linear_cka(a: &[f32], b: &[f32], n: usize) -> f64 {
    let gram = |x: &[f32]| -> Vec<f64> {
        let p = x.len() / n.max(1);
        let mut c = vec![0.0f64; n * p];
        for j in 0..p {
            let m = (0..n).map(|i| x[i * p + j] as f64).sum::<f64>() / n as f64;
            for i in 0..n {
                c[i * p + j] = x[i * p + j] as f64 - m;
            }
        }
        let mut k = vec![0.0f64; n * n];
        for i in 0..n {
            for l in i..n {
                let v: f64 = (0..p).map(|j| c[i * p + j] * c[l * p + j]).sum();
                k[i * n + l] = v;
                k[l * n + i] = v;
            }
        }
        k
    };
    let (ka, kb) = (gram(a), gram(b));
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(u, v)| u * v).sum::<f64>();
    let den = (dot(&ka, &ka) * dot(&kb, &kb)).sqrt();
    if den > 0.0 {
        dot(&ka, &kb) / den
    } else {
        0.0
    }
}

/// A recorded intermediate output on the probe batch: its similarity (linear CKA) to the
/// final and to the initial representation over time, and, with ground-truth features of
/// the input size, each unit's |correlation| with every feature's projection `⟨mⱼ, x⟩`
/// over the probe at the chosen step.
#[allow(clippy::too_many_arguments)]
fn activations(
    run: &Run,
    ar: &mut Archive,
    name: &str,
    steps: &[i64],
    pick: usize,
    spec: &PlotSpec,
    out: &Path,
) -> Result<PathBuf> {
    let key = format!("act.{name}");
    let idx = subsample(steps.len(), 120);
    let mut want = idx.clone();
    if !want.contains(&pick) {
        want.push(pick);
        want.sort();
    }
    let (shape, snaps) = ar.read_steps(&key, &want)?;
    let (n, units) = (shape[0], shape.get(1).copied().unwrap_or(1));
    let at = |i: usize| &snaps[want.iter().position(|w| *w == i).unwrap_or(0)];
    let (first, last) = (at(idx[0]), at(*idx.last().unwrap_or(&0)));
    let to_final: Vec<(f64, f64)> = idx
        .iter()
        .map(|&i| (steps[i] as f64, linear_cka(at(i), last, n)))
        .collect();
    let to_init: Vec<(f64, f64)> = idx
        .iter()
        .map(|&i| (steps[i] as f64, linear_cka(at(i), first, n)))
        .collect();
    // |corr(h_r, <m_j, x>)| over the probe, for features of the input's size.
    let probe = ar.read("probe.x").ok();
    let mut corr: Option<(String, usize, Vec<f32>)> = None;
    if let Some(p) = probe {
        let d = p.shape.get(1).copied().unwrap_or(0);
        let truth = ar
            .names()
            .into_iter()
            .filter_map(|k| k.strip_prefix("gt.").map(String::from))
            .next();
        if let Some(f) = truth {
            let g = ar.read(&format!("gt.{f}"))?;
            let (k, gd) = (g.shape[0], g.shape.get(1).copied().unwrap_or(0));
            if gd == d && d > 0 {
                let h = at(pick);
                let col = |v: Vec<f64>| {
                    let m = v.iter().sum::<f64>() / n as f64;
                    let c: Vec<f64> = v.iter().map(|x| x - m).collect();
                    let s = c.iter().map(|x| x * x).sum::<f64>().sqrt();
                    (c, s)
                };
                let proj: Vec<(Vec<f64>, f64)> = (0..k)
                    .map(|j| {
                        col((0..n)
                            .map(|i| {
                                (0..d)
                                    .map(|a| {
                                        p.values[i * d + a] as f64 * g.values[j * d + a] as f64
                                    })
                                    .sum()
                            })
                            .collect())
                    })
                    .collect();
                let mut m = vec![0.0f32; units * k];
                for r in 0..units {
                    let (hc, hs) = col((0..n).map(|i| h[i * units + r] as f64).collect());
                    for (j, (pc, ps)) in proj.iter().enumerate() {
                        let c = hc.iter().zip(pc).map(|(a, b)| a * b).sum::<f64>();
                        m[r * k + j] = if hs > 0.0 && *ps > 0.0 {
                            (c / (hs * ps)).abs() as f32
                        } else {
                            0.0
                        };
                    }
                }
                corr = Some((f, k, m));
            }
        }
    }
    let title = note_subsampled(
        &format!("activations of {name} on {n} probe inputs - {}", run.title),
        idx.len(),
        steps.len(),
    );
    let fname = format!("activations_{name}");
    let s_pick = steps[pick];
    let size = if corr.is_some() {
        (1500, 600)
    } else {
        (900, 560)
    };
    Ok(figure!(spec, out, fname, size, |root| {
        let (t, rest) = root.split_vertically(36);
        t.titled(&draw::fit(&title, t.dim_in_pixel().0, 19), (draw::FONT, 19))
            .map_err(draw::err)?;
        let series = [
            Series::new("to the final", to_final.clone(), PALETTE[0]),
            Series::new("to the initial", to_init.clone(), PALETTE[1]),
        ];
        match &corr {
            Some((f, k, m)) => {
                let (a, b) = rest.split_horizontally(750);
                draw::line_chart(&a, "linear CKA", "step", "CKA", &series, spec.log_x)?;
                let feature_tick = |c: usize| c.to_string();
                draw::heatmap(
                    &b,
                    &format!("|corr(hᵣ, ⟨{f}ⱼ, x⟩)| at step {s_pick}"),
                    &format!("{f} (feature j)"),
                    "unit r",
                    &Matrix {
                        values: m,
                        rows: units,
                        cols: *k,
                    },
                    Scale::Sequential { lo: 0.0, hi: 1.0 },
                    "|corr|",
                    Some(&feature_tick),
                    None,
                )?;
            }
            None => {
                draw::line_chart(&rest, "linear CKA", "step", "CKA", &series, spec.log_x)?;
            }
        }
        Ok(())
    }))
}
