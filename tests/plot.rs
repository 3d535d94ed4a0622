//! `ezflt plot` end to end: every figure renders from a small real run (decoded, sized,
//! not blank), sweeps get their summaries, and bad requests list what is available.

use assert_cmd::Command;
use predicates::prelude::*;
use std::collections::HashSet;
use std::path::Path;

mod common;
use common::ezflt;

/// A decoded PNG: width, height, samples per pixel, pixels.
fn decode(p: &Path) -> (usize, usize, usize, Vec<u8>) {
    let d = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(p).expect("png"),
    ));
    let mut r = d.read_info().expect("png header");
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).expect("png frame");
    buf.truncate(info.buffer_size());
    (
        info.width as usize,
        info.height as usize,
        info.color_type.samples(),
        buf,
    )
}

/// Coloured ink: the share of columns holding a chromatic pixel (channels far apart: the
/// plotted series and colour maps, never text or axes, which are black and grey), and the
/// share of such pixels.
fn ink(p: &Path) -> (f64, f64) {
    let (w, h, step, buf) = decode(p);
    let mut columns = vec![false; w];
    let mut pixels = 0usize;
    for (i, px) in buf.chunks_exact(step).enumerate() {
        let rgb = &px[..3.min(step)];
        if rgb.iter().max().unwrap() - rgb.iter().min().unwrap() > 60 {
            pixels += 1;
            columns[i % w] = true;
        }
    }
    let spread = columns.iter().filter(|c| **c).count() as f64 / w as f64;
    (spread, pixels as f64 / (w * h) as f64)
}

/// Width, height and the number of distinct colours of a PNG; asserts that coloured ink
/// spans the figure, so a frame with only text and axes (anti-aliased into many colours)
/// does not pass as a figure.
fn png_facts(p: &Path) -> (u32, u32, usize) {
    let (spread, share) = ink(p);
    assert!(
        spread >= 0.3 && share >= 0.002,
        "{}: the plotted data covers {:.0}% of the width and {:.2}% of the pixels",
        p.display(),
        100.0 * spread,
        100.0 * share
    );
    let (w, h, step, buf) = decode(p);
    let colours: HashSet<&[u8]> = buf.chunks_exact(step).collect();
    (w as u32, h as u32, colours.len())
}

fn stdout_lines(c: &mut Command) -> Vec<String> {
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_run_ends_with_its_plots_and_plot_rerenders_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args(["train", "hydra.run.dir=run", "epochs=4", "threads=1"])
        .assert()
        .success();
    let plots = tmp.path().join("run/plots");
    for f in [
        "curves.png",
        "evolution_layers.0.weight.png",
        "comparison_layers.0.weight.png",
        "alignment_layers.0.weight_means.png",
        "best_alignment_layers.0.weight_means.png",
    ] {
        assert!(plots.join(f).is_file(), "missing {f}");
    }
    let files = stdout_lines(ezflt(tmp.path()).args(["plot", "run", "--out", "again"]));
    assert!(files.len() >= 6, "{files:?}");
    for f in &files {
        let (w, h, colours) = png_facts(&tmp.path().join(f));
        assert!(w >= 800 && h >= 500, "{f}: {w}x{h}");
        assert!(colours > 20, "{f} looks blank ({colours} colours)");
    }
    // A chosen step and format; the snapshot at step 0 is the initialisation.
    let files = stdout_lines(ezflt(tmp.path()).args([
        "plot", "run", "--what", "heatmap", "--step", "0", "--format", "svg", "--out", "svg",
    ]));
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("heatmap_layers.0.weight_step0.svg"));
    let svg = std::fs::read_to_string(tmp.path().join(&files[0])).unwrap();
    assert!(svg.contains("<svg") && svg.contains("layers.0.weight at step 0"));
    // --epoch picks the snapshot that closes that epoch (8 steps per epoch).
    let files = stdout_lines(ezflt(tmp.path()).args([
        "plot", "run", "--what", "heatmap", "--epoch", "1", "--out", "e",
    ]));
    assert!(
        files[0].ends_with("heatmap_layers.0.weight_step16.png"),
        "{files:?}"
    );
}

#[test]
fn every_figure_kind_renders() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Image data for the input-space view, all figures requested explicitly.
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=digits",
            "data=digits",
            "epochs=2",
            "model.widths=[16]",
            "plot=none",
            "threads=1",
        ])
        .assert()
        .success();
    assert!(!tmp.path().join("digits/plots").exists());
    let files = stdout_lines(ezflt(tmp.path()).args([
        "plot",
        "digits",
        "--what",
        "input_space,evolution,curves",
        "--metric",
        "max_abs",
        "--log-x",
    ]));
    assert_eq!(files.len(), 3, "{files:?}");
    for f in &files {
        assert!(png_facts(&tmp.path().join(f)).2 > 20, "{f}");
    }
    // A patch model with two ground-truth features (signal and noise).
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=cnn",
            "model=two_layer_cnn",
            "data=signal_noise",
            "data.dim=40",
            "batch_size=full",
            "epochs=30",
            "lr=0.1",
            "threads=1",
        ])
        .assert()
        .success();
    let plots = tmp.path().join("cnn/plots");
    for f in [
        "alignment_filters_signal.png",
        "best_alignment_filters_noise.png",
        "evolution_filters.png",
        "growth_filters.png",
        "sparsity_filters_noise.png",
    ] {
        assert!(png_facts(&plots.join(f)).2 > 20, "{f}");
    }
}

#[test]
fn bad_plot_requests_say_what_is_available() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "epochs=2",
            "plot=none",
            "threads=1",
        ])
        .assert()
        .success();
    ezflt(tmp.path())
        .args(["plot", "nowhere"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is neither a run"));
    ezflt(tmp.path())
        .args(["plot", "run", "--tensor", "layers.1.weight"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "was not tracked in this run; tracked: layers.0.weight",
        ));
    ezflt(tmp.path())
        .args(["plot", "run", "--step", "7777"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "step 7777 was not recorded; recorded steps include: 0, 1, 2",
        ));
    ezflt(tmp.path())
        .args(["plot", "run", "--what", "input_space"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("input_space needs image data"));
    ezflt(tmp.path())
        .args(["plot", "run", "--what", "evolution", "--metric", "median"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "choose norm, mean, std or max_abs",
        ));
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=bare",
            "epochs=1",
            "tracker=none",
            "plot=none",
        ])
        .assert()
        .success();
    ezflt(tmp.path())
        .args(["plot", "bare", "--what", "heatmap"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tracker=none"));
}

#[test]
fn sweeps_get_a_metric_curve_and_a_phase_diagram() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "-m",
            "hydra.sweep.dir=sw",
            "data.noise=0.5,3.0",
            "lr=0.01,0.1",
            "seed=0,1",
            "epochs=1",
            "plot=none",
            "tracker=none",
            "threads=1",
        ])
        .assert()
        .success();
    let files = stdout_lines(ezflt(tmp.path()).args(["plot", "sw"]));
    // The summary table (as `ezflt compare` prints it) as CSV and as a figure.
    assert!(files[0].ends_with("summary_table.csv"), "{files:?}");
    assert!(files[1].ends_with("summary_table.png"), "{files:?}");
    let csv = std::fs::read_to_string(tmp.path().join(&files[0])).unwrap();
    assert!(csv.starts_with("data.noise,lr,runs,"), "{csv}");
    assert_eq!(csv.lines().count(), 5, "four configurations: {csv}");
    let table = decode(&tmp.path().join(&files[1]));
    assert!(table.0 > 600 && table.1 > 150, "{:?}", (table.0, table.1));
    // The metric against each swept key, then the phase diagram over the first two.
    assert!(
        files[2].ends_with("sweep_test_acc_vs_data.noise.png"),
        "{files:?}"
    );
    assert!(files[3].ends_with("sweep_test_acc_vs_lr.png"), "{files:?}");
    assert!(files[4].ends_with("phase_test_acc.png"), "{files:?}");
    // Then the four configurations overlaid, one figure (and its numbers) per metric.
    assert!(
        files[5..]
            .iter()
            .any(|f| f.ends_with("overlay_test_acc.png")),
        "{files:?}"
    );
    // (One epoch is one evaluation: the overlays are points with error bars, too narrow for
    // the spread check below.)
    for f in &files[2..5] {
        assert!(png_facts(&tmp.path().join(f)).2 > 20, "{f}");
    }
    ezflt(tmp.path())
        .args(["plot", "sw", "--metric", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the jobs report"));
}

#[test]
fn a_run_shorter_than_log_every_still_gets_its_curves() {
    let tmp = tempfile::tempdir().unwrap();
    // 8 steps, log_every=10: only the per-epoch rows exist.
    ezflt(tmp.path())
        .args(["train", "hydra.run.dir=run", "threads=1", "epochs=1"])
        .assert()
        .success()
        .stderr(predicate::str::contains("plots failed").not());
    // One evaluation per series: drawn as points, centred on the step axis of the loss
    // panel (20-40% of the width; the legends sit further right). It was once blank.
    let (w, _, step, buf) = decode(&tmp.path().join("run/plots/curves.png"));
    let centre = buf.chunks_exact(step).enumerate().filter(|(i, px)| {
        let x = (i % w) as f64 / w as f64;
        (0.2..0.4).contains(&x)
            && px[..3].iter().max().unwrap() - px[..3].iter().min().unwrap() > 60
    });
    assert!(
        centre.count() >= 40,
        "no data point drawn in the loss panel"
    );
}

/// Overlays: several runs or a sweep, one curve per configuration, seeds as the mean with a
/// band; the numbers behind each figure are checked against the runs' own metrics.
#[test]
fn overlays_average_seeds_with_a_band_that_holds_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    ezflt(t)
        .args([
            "-q",
            "-m",
            "hydra.sweep.dir=seeds",
            "seed=0,1,2",
            "epochs=4",
            "plot=none",
            "tracker=none",
            "threads=1",
        ])
        .assert()
        .success();
    // A seed-only sweep: nothing to plot against, but its spread over seeds.
    let files = stdout_lines(ezflt(t).args(["plot", "seeds", "--band", "minmax"]));
    assert!(
        files
            .iter()
            .all(|f| f.contains("overlay_") || f.contains("summary_table")),
        "{files:?}"
    );
    let csv = std::fs::read_to_string(t.join("seeds/plots/overlay_test_acc.csv")).unwrap();
    // Each seed's own test_acc at each evaluated step.
    let per_seed: Vec<Vec<(f64, f64)>> = (0..3)
        .map(|i| {
            let text = std::fs::read_to_string(t.join(format!("seeds/{i}/metrics.jsonl"))).unwrap();
            text.lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter_map(|r| Some((r["step"].as_f64()?, r.get("test_acc")?.as_f64()?)))
                .collect()
        })
        .collect();
    let rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplitn(6, ',').map(String::from).collect::<Vec<_>>())
        .collect();
    assert_eq!(rows.len(), per_seed[0].len(), "{csv}");
    for r in &rows {
        // rsplitn: high, low, mean, n, step, config.
        let (high, low, mean, n, step): (f64, f64, f64, usize, f64) = (
            r[0].parse().unwrap(),
            r[1].parse().unwrap(),
            r[2].parse().unwrap(),
            r[3].parse().unwrap(),
            r[4].parse().unwrap(),
        );
        assert_eq!(r[5], "\"all runs (n=3)\"");
        assert_eq!(n, 3);
        let at: Vec<f64> = per_seed
            .iter()
            .map(|s| s.iter().find(|p| p.0 == step).unwrap().1)
            .collect();
        assert!(
            (mean - at.iter().sum::<f64>() / 3.0).abs() < 1e-12,
            "{r:?} {at:?}"
        );
        for v in at {
            assert!(
                low <= v && v <= high,
                "seed value {v} outside [{low}, {high}]"
            );
        }
    }
    // The figure draws the band: the first palette colour at 20% on white.
    let (w, h, spp, px) = decode(&t.join("seeds/plots/overlay_test_acc.png"));
    let band = px
        .chunks_exact(spp)
        .filter(|p| {
            (p[0] as i32 - 204).abs() <= 3
                && (p[1] as i32 - 227).abs() <= 3
                && (p[2] as i32 - 240).abs() <= 3
        })
        .count();
    assert!(band > 2000, "band pixels: {band} of {}", w * h);

    // Several runs: the default output folder, grouped by a key of choice.
    let files = stdout_lines(ezflt(t).args([
        "plot",
        "seeds/0",
        "seeds/1",
        "seeds/2",
        "--by",
        "seed",
        "--metric",
        "test_loss",
    ]));
    // The summary table of the runs, grouped as the overlay is, then the overlay.
    assert_eq!(
        files,
        [
            "comparison/summary_table.csv",
            "comparison/summary_table.png",
            "comparison/overlay_test_loss.png",
            "comparison/overlay_test_loss.csv"
        ]
    );
    let table = std::fs::read_to_string(t.join("comparison/summary_table.csv")).unwrap();
    assert!(table.starts_with("seed,runs,"), "{table}");
    assert_eq!(table.lines().count(), 4, "one row a seed: {table}");
    let csv = std::fs::read_to_string(t.join("comparison/overlay_test_loss.csv")).unwrap();
    for seed in 0..3 {
        assert!(csv.contains(&format!("\"seed={seed} (n=1)\"")), "{csv}");
    }
    ezflt(t)
        .args(["plot", "seeds/0", "--by", "seed"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "pass a sweep or more than one run",
        ));
    ezflt(t)
        .args(["plot", "seeds", "--metric", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--metric nope: the runs log"));
}

/// `curves.png` draws every loss- and accuracy-like metric a run logs: grokking's
/// `true_test_acc`, the one its claim is about, is the third line of the accuracy panel.
#[test]
fn curves_show_every_logged_accuracy() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "-q",
            "train",
            "experiment=grokking",
            "max_steps=200",
            "hydra.run.dir=run",
            "plot.what=[curves]",
        ])
        .assert()
        .success();
    let (w, h, spp, px) = decode(&tmp.path().join("run/plots/curves.png"));
    // The third palette colour (Okabe-Ito green) in the right (accuracy) panel.
    let green = (0..h)
        .flat_map(|y| (w / 2..w).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let i = (y * w + x) * spp;
            (px[i], px[i + 1], px[i + 2]) == (0, 158, 115)
        })
        .count();
    assert!(green > 200, "true_test_acc line pixels: {green}");
}

/// A two-layer CNN's filters `[classes, m, d]` are drawn as one matrix of neurons with a line
/// between the classes, so which filter belongs to which output is not guessed.
#[test]
fn cnn_filters_are_split_by_class() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "-q",
            "train",
            "model=two_layer_cnn",
            "data=signal_noise",
            "data.n_train=20",
            "data.n_test=20",
            "data.dim=40",
            "epochs=2",
            "hydra.run.dir=run",
            "plot.what=[heatmap,evolution]",
        ])
        .assert()
        .success();
    // Its 20 per-neuron norm lines are coloured by neuron index, with a colorbar as the key:
    // viridis' yellow end (bluer than 60, unlike the palette's yellow line) fills the top of a
    // strip at the right edge.
    let (w, h, spp, px) = decode(&tmp.path().join("run/plots/evolution_filters.png"));
    let key = (0..h)
        .filter(|&y| {
            (w - 120..w).any(|x| {
                let i = (y * w + x) * spp;
                px[i] > 200 && px[i + 1] > 210 && px[i + 2] < 60
            })
        })
        .count();
    assert!(key > 10, "no neuron colour key: {key} rows");
    let heatmap = std::fs::read_dir(tmp.path().join("run/plots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("heatmap_filters"))
        .expect("heatmap");
    let (w, h, spp, px) = decode(&heatmap);
    // Rows that are black across most of the cells: the x axis, and the class separator.
    let black_rows = (0..h)
        .filter(|&y| {
            (0..w)
                .filter(|&x| {
                    let i = (y * w + x) * spp;
                    px[i] < 20 && px[i + 1] < 20 && px[i + 2] < 20
                })
                .count()
                > w / 2
        })
        .count();
    assert!(
        black_rows >= 3,
        "axis and a 2-px separator: {black_rows} rows"
    );
}

/// Every pair of swept keys gets its phase diagram, the first pair under the plain name.
#[test]
fn every_pair_of_swept_keys_gets_a_phase_diagram() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "-q",
            "-m",
            "hydra.sweep.dir=sw",
            "data.noise=0.5,3.0",
            "lr=0.01,0.1",
            "batch_size=32,64",
            "epochs=1",
            "plot=none",
            "tracker=none",
            "threads=1",
        ])
        .assert()
        .success();
    let files = stdout_lines(ezflt(tmp.path()).args(["plot", "sw", "--metric", "test_loss"]));
    let phases: Vec<&String> = files.iter().filter(|f| f.contains("/phase_")).collect();
    assert_eq!(
        phases,
        [
            "sw/plots/phase_test_loss.png",
            "sw/plots/phase_test_loss_batch_size_x_lr.png",
            "sw/plots/phase_test_loss_data.noise_x_lr.png",
        ],
        "{files:?}"
    );
    for f in phases {
        assert!(png_facts(&tmp.path().join(f)).2 > 20, "{f}");
    }
}

/// Overlays also compare what was tracked: the weight norm, and with ground-truth features
/// their recovery, growth and purity, each a mean over seeds with a band; the numbers are
/// checked against each seed's own archive.
#[test]
fn overlays_compare_tracked_summaries_across_seeds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    ezflt(t)
        .args([
            "-q",
            "-m",
            "hydra.sweep.dir=cnn",
            "model=two_layer_cnn",
            "data=signal_noise",
            "data.dim=40",
            "batch_size=full",
            "epochs=20",
            "lr=0.1",
            "seed=0,1",
            "plot=none",
            "threads=1",
        ])
        .assert()
        .success();
    let files = stdout_lines(ezflt(t).args(["plot", "cnn", "--band", "minmax"]));
    for f in [
        "cnn/plots/overlay_norm_filters.png",
        "cnn/plots/overlay_recovery_filters_signal.png",
        "cnn/plots/overlay_growth_filters_signal.png",
        "cnn/plots/overlay_growth_filters_noise.png",
        "cnn/plots/overlay_purity_filters_noise.png",
    ] {
        assert!(files.iter().any(|g| g == f), "{f} not in {files:?}");
        assert!(png_facts(&t.join(f)).2 > 20, "{f}");
    }
    // The norm's mean and band against ‖W‖ of each seed's snapshots.
    let per_seed: Vec<Vec<(f64, f64)>> = (0..2)
        .map(|i| {
            let mut ar = ezflt::Archive::open(t.join(format!("cnn/{i}"))).unwrap();
            let w = ar.feature("filters").unwrap();
            w.iter()
                .map(|s| {
                    let n = s.values.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
                    (s.step as f64, n.sqrt())
                })
                .collect()
        })
        .collect();
    let csv = std::fs::read_to_string(t.join("cnn/plots/overlay_norm_filters.csv")).unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| {
            l.rsplitn(6, ',')
                .take(5)
                .map(|x| x.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), per_seed[0].len(), "{csv}");
    for r in rows {
        // rsplitn: high, low, mean, n, step.
        let (high, low, mean, step) = (r[0], r[1], r[2], r[4]);
        let at: Vec<f64> = per_seed
            .iter()
            .map(|s| s.iter().find(|p| p.0 == step).unwrap().1)
            .collect();
        assert!((mean - (at[0] + at[1]) / 2.0).abs() < 1e-5, "{r:?} {at:?}");
        assert!((low - at[0].min(at[1])).abs() < 1e-5, "{r:?} {at:?}");
        assert!((high - at[0].max(at[1])).abs() < 1e-5, "{r:?} {at:?}");
    }
    // One summary by name; a wrong name lists the summaries too.
    let files = stdout_lines(ezflt(t).args([
        "plot",
        "cnn/0",
        "cnn/1",
        "--metric",
        "recovery_filters_signal",
    ]));
    assert!(
        files.contains(&"comparison/overlay_recovery_filters_signal.csv".to_string()),
        "{files:?}"
    );
    // The same from code: the table and a summary's overlay, in process.
    let style = ezflt::plots::Style {
        out: Some(t.join("lib")),
        ..Default::default()
    };
    let dirs = [t.join("cnn")];
    let how = ezflt::plots::Overlay {
        band: ezflt::plots::Band::MinMax,
        ..Default::default()
    };
    let table = ezflt::plots::summary_table(&dirs, &how, &style).unwrap();
    assert!(table[0].ends_with("lib/summary_table.csv"), "{table:?}");
    let text = std::fs::read_to_string(&table[0]).unwrap();
    assert!(text.contains(",2,"), "two seeds in one row: {text}");
    let norm = ezflt::plots::overlay(&dirs, Some("norm_filters"), &how, &style).unwrap();
    assert_eq!(
        std::fs::read_to_string(&norm[1]).unwrap(),
        std::fs::read_to_string(t.join("cnn/plots/overlay_norm_filters.csv")).unwrap()
    );
    ezflt(t)
        .args(["plot", "cnn/0", "cnn/1", "--metric", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("norm_filters"));
}
