//! `ezflt compare`: runs and sweeps grouped into configurations, metrics as mean ± std over
//! seeds, checked against the runs' own summaries.

use predicates::prelude::*;
use std::path::Path;

mod common;
use common::{ezflt, summary};

fn stdout(dir: &Path, args: &[&str]) -> String {
    let out = ezflt(dir)
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

/// Mean and sample std of `final.test_acc` over these run directories.
fn mean_std(dirs: &[std::path::PathBuf]) -> (f64, f64) {
    let v: Vec<f64> = dirs
        .iter()
        .map(|d| summary(d)["final"]["test_acc"].as_f64().unwrap())
        .collect();
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
    (m, s)
}

#[test]
fn compare_groups_runs_and_averages_seeds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    ezflt(t)
        .args([
            "-q",
            "-m",
            "epochs=1",
            "threads=1",
            "plot=none",
            "lr=0.05,0.1",
            "seed=0,1",
            "hydra.sweep.dir=sw",
        ])
        .assert()
        .success();
    // Jobs 0..3 cross lr (outer) with seed (inner).
    let job = |i: usize| t.join("sw").join(i.to_string());
    let csv = stdout(
        t,
        &["compare", "sw", "--format", "csv", "--metrics", "test_acc"],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0], "lr,runs,test_acc_mean,test_acc_std,test_acc_n",
        "{csv}"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    for (line, (lr, dirs)) in lines[1..]
        .iter()
        .zip([("0.05", [job(0), job(1)]), ("0.1", [job(2), job(3)])])
    {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(&cells[..2], &[lr, "2"], "{csv}");
        let (m, s) = mean_std(&dirs);
        let got_m: f64 = cells[2].parse().unwrap();
        let got_s: f64 = cells[3].parse().unwrap();
        assert!(
            (got_m - m).abs() < 1e-12 && (got_s - s).abs() < 1e-12,
            "{line}: {m} {s}"
        );
        assert_eq!(cells[4], "2");
    }

    // The terminal table: aligned, with the metric's best mean marked.
    let text = stdout(t, &["compare", "sw", "--metrics", "test_acc,test_loss"]);
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].starts_with("lr") && rows[0].contains("test_acc"),
        "{text}"
    );
    assert!(rows[1].starts_with("----"), "{text}");
    assert_eq!(rows.len(), 4, "{text}");
    assert!(text.contains(" ± "), "{text}");
    assert_eq!(text.matches(" *").count(), 2, "one best per metric: {text}");

    // A seed-only selection is one configuration; --by and --filter choose the grouping.
    let one = stdout(
        t,
        &["compare", "sw", "--filter", "lr=0.1", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&one).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{one}");
    assert_eq!(rows[0]["runs"].as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["status"]["completed"], 2);
    let (m, _) = mean_std(&[job(2), job(3)]);
    assert!((rows[0]["metrics"]["test_acc"]["mean"].as_f64().unwrap() - m).abs() < 1e-12);
    let by_seed = stdout(t, &["compare", "sw", "--by", "seed", "--format", "csv"]);
    assert!(by_seed.starts_with("seed,runs,"), "{by_seed}");
    assert_eq!(by_seed.lines().count(), 3, "{by_seed}");
    // A nested config key that no override set still groups (from .hydra/config.yaml).
    let md = stdout(
        t,
        &[
            "compare",
            "sw",
            "--by",
            "model.widths",
            "--format",
            "markdown",
        ],
    );
    assert!(md.starts_with("| model.widths | runs |"), "{md}");
    assert!(md.contains("| [64] | 4 |"), "{md}");

    // A separate run and a sweep together: the run has no lr override, so its composed
    // lr (0.1, the default) puts it with the sweep's lr=0.1 jobs.
    ezflt(t)
        .args([
            "-q",
            "epochs=1",
            "threads=1",
            "plot=none",
            "hydra.run.dir=single",
        ])
        .assert()
        .success();
    let both = stdout(t, &["compare", "single", "sw", "--format", "csv"]);
    let lines: Vec<&str> = both.lines().collect();
    assert_eq!(lines.len(), 3, "{both}");
    assert!(lines[2].starts_with("0.1,3,"), "{both}");
    // A failed run is counted in its row, and its metrics are not averaged.
    let mut s = summary(&job(3));
    s["status"] = "failed".into();
    s["final"] = serde_json::json!({});
    std::fs::write(job(3).join("summary.json"), s.to_string()).unwrap();
    let text = stdout(t, &["compare", "sw", "--metrics", "test_acc"]);
    assert!(text.contains("2 (1 failed)"), "{text}");
    let csv = stdout(
        t,
        &["compare", "sw", "--format", "csv", "--metrics", "test_acc"],
    );
    assert!(csv.lines().nth(2).unwrap().ends_with(",,1"), "{csv}");

    // Mistakes are named.
    let err = |args: &[&str], want: &str| {
        ezflt(t)
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(want.to_string()));
    };
    err(
        &["compare", "sw", "--metrics", "tset_acc"],
        "Did you mean 'test_acc'?",
    );
    err(
        &["compare", "sw", "--by", "nope"],
        "--by nope: no run has this key",
    );
    err(&["compare", "sw", "--filter", "lr"], "expected KEY=VALUE");
    err(
        &["compare", "sw", "--filter", "lr=7"],
        "no run matches --filter lr=7",
    );
    err(&["compare", "nowhere"], "nowhere is not a directory");
    std::fs::create_dir(t.join("empty")).unwrap();
    err(&["compare", "empty"], "no finished runs");
}
