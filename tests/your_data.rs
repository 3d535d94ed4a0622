//! A user's own data end to end: regression on real-valued targets (MSE, R² reported and
//! consistent with the loss), labels that are not class ids, and data that does not fit.

use predicates::prelude::*;
use std::path::Path;

mod common;
use common::{ezflt, f32_bytes, npy, summary, write_npz};

/// A linear teacher with two outputs and a little noise: `y = x W + 0.01 e`.
fn teacher(path: &Path, n: usize, seed: u32) -> (Vec<f32>, Vec<f32>) {
    let (d, k) = (5, 2);
    // A small deterministic generator: the test needs no randomness crate.
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    let mut unit = || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s as f32 / u32::MAX as f32) * 2.0 - 1.0
    };
    let w: Vec<f32> = (0..d * k).map(|i| ((i as f32) * 0.7).sin()).collect();
    let x: Vec<f32> = (0..n * d).map(|_| unit()).collect();
    let y: Vec<f32> = (0..n)
        .flat_map(|i| {
            let row = &x[i * d..(i + 1) * d];
            (0..k)
                .map(|j| (0..d).map(|a| row[a] * w[a * k + j]).sum::<f32>())
                .collect::<Vec<_>>()
        })
        .map(|v| v + 0.01 * unit())
        .collect();
    write_npz(
        path,
        &[
            ("x", npy("<f4", &[n, d], &f32_bytes(&x))),
            ("y", npy("<f4", &[n, k], &f32_bytes(&y))),
        ],
    );
    (x, y)
}

#[test]
fn regression_reports_r2_consistent_with_its_mse() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    teacher(&t.join("train.npz"), 400, 1);
    let (_, y_test) = teacher(&t.join("test.npz"), 200, 2);
    ezflt(t)
        .args([
            "-q",
            "train",
            "data=numpy",
            "data.path=train.npz",
            "data.test_path=test.npz",
            "data.task=regression",
            "model.widths=[32]",
            "optimizer=adam",
            "lr=0.01",
            "epochs=40",
            "threads=1",
            "hydra.run.dir=run",
        ])
        .assert()
        .success();
    let s = summary(&t.join("run"));
    assert_eq!(s["loss"], "mse", "{s}");
    let last = &s["final"];
    assert!(
        last.get("test_acc").is_none(),
        "no accuracy in regression: {last}"
    );
    let (r2, mse) = (
        last["test_r2"].as_f64().unwrap(),
        last["test_loss"].as_f64().unwrap(),
    );
    assert!(r2 > 0.95, "a linear teacher is learned: R² {r2}");
    // R² = 1 - SSE / SST, with SSE = MSE x values, SST about each output's test mean.
    let k = 2;
    let n = y_test.len() / k;
    let sst: f64 = (0..k)
        .map(|j| {
            let col: Vec<f64> = (0..n).map(|i| y_test[i * k + j] as f64).collect();
            let m = col.iter().sum::<f64>() / n as f64;
            col.iter().map(|v| (v - m).powi(2)).sum::<f64>()
        })
        .sum();
    let want = 1.0 - mse * (n * k) as f64 / sst;
    assert!((r2 - want).abs() < 1e-4, "R² {r2} vs 1 - SSE/SST {want}");
    // The loss falls, and the curves draw R².
    let losses: Vec<f64> = common::rows(&t.join("run"))
        .iter()
        .filter_map(|r| r.get("test_loss")?.as_f64())
        .collect();
    assert!(losses.last().unwrap() < &(losses[0] / 10.0), "{losses:?}");
    assert!(t.join("run/plots/curves.png").is_file());
    // `best` keeps the highest R².
    assert!(s["best"]["test_r2"].as_f64().unwrap() >= r2 - 1e-12, "{s}");

    // Targets of the wrong rank, and an attack on a regression, are errors.
    write_npz(
        &t.join("bad.npz"),
        &[
            ("x", npy("<f4", &[4, 1], &f32_bytes(&[0.0; 4]))),
            ("y", npy("<f4", &[4, 1, 1], &f32_bytes(&[0.0; 4]))),
        ],
    );
    ezflt(t)
        .args([
            "train",
            "data=numpy",
            "data.path=bad.npz",
            "data.task=regression",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "regression targets 'y' must have shape [n] or [n, outputs], got [4, 1, 1]",
        ));
    ezflt(t)
        .args([
            "train",
            "data=numpy",
            "data.path=train.npz",
            "data.task=regression",
            "adv=pgd",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("this data is a regression"));
}

/// A CSV table with labels 3 and 7: refused as class ids until `data.remap_labels`, then
/// learned; ground-truth features from a `.npy` give the alignment numpy computes from
/// the archive's own weights.
#[test]
fn a_csv_table_with_remapped_labels_and_its_own_ground_truth_features() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut text = String::from("a, b,c,d,label\n");
    let mut s = 7u32;
    for _ in 0..300 {
        let row: Vec<f32> = (0..4)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
            })
            .collect();
        let label = if row[0] + row[1] > 0.0 { 7 } else { 3 };
        text.push_str(&format!(
            "{},{},{},{},{label}\n",
            row[0], row[1], row[2], row[3]
        ));
    }
    std::fs::write(t.join("table.csv"), &text).unwrap();
    let r = 0.5f32.sqrt();
    let feats = [r, r, 0.0, 0.0, r, -r, 0.0, 0.0];
    std::fs::write(t.join("feats.npy"), npy("<f4", &[2, 4], &f32_bytes(&feats))).unwrap();
    let base = [
        "train",
        "data=csv",
        "data.path=table.csv",
        "data.target=label",
    ];
    ezflt(t)
        .args(base)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("(3, 7)").and(predicate::str::contains(
                "renumber them with data.remap_labels=true",
            )),
        );
    ezflt(t)
        .args(["-q"])
        .args(base)
        .args([
            "data.remap_labels=true",
            "data.features_path=feats.npy",
            "data.features_name=diagonals",
            "epochs=20",
            "threads=1",
            "hydra.run.dir=run",
        ])
        .assert()
        .success();
    let s = summary(&t.join("run"));
    assert_eq!(s["data"], "csv", "{s}");
    let acc = s["final"]["test_acc"].as_f64().unwrap();
    assert!(acc > 0.9, "a linear rule is learned: {acc}");
    common::numpy_check(
        &t.join("run/features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
w = z["layers.0.weight"]                      # [T, 64, 4]
m = np.array([[1, 1, 0, 0], [1, -1, 0, 0]], dtype=np.float32) / np.sqrt(2)
proj = w @ m.T                                 # [T, 64, 2]
cos = proj / np.linalg.norm(w, axis=2, keepdims=True)
assert np.allclose(z["align.layers.0.weight.diagonals"], proj, atol=1e-5)
assert np.allclose(z["align_norm.layers.0.weight.diagonals"], cos, atol=1e-5)
"#,
    );
    assert!(t
        .join("run/plots/alignment_layers.0.weight_diagonals.png")
        .is_file());

    // A cell that is not a number, a column that is not there.
    std::fs::write(t.join("bad.csv"), "a,label\n1,0\nx,1\n").unwrap();
    ezflt(t)
        .args([
            "train",
            "data=csv",
            "data.path=bad.csv",
            "data.target=label",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "bad.csv:3: column 'a': 'x' is not a number",
        ));
    ezflt(t)
        .args([
            "train",
            "data=csv",
            "data.path=table.csv",
            "data.target=lable",
        ])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("no column 'lable' (data.target)")
                .and(predicate::str::contains("Did you mean 'label'?")),
        );
}
