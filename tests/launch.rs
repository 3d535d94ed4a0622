//! Sweeps end to end: the local worker pool, failure isolation, --fail-fast, resume,
//! zipped sweeps, `ezflt status`, and the sweep.csv / sweep.jsonl records.

use predicates::prelude::*;
use serde_json::Value;
use std::path::Path;

mod common;
use common::ezflt;

fn records(root: &Path) -> Vec<Value> {
    std::fs::read_to_string(root.join("sweep.jsonl"))
        .expect("sweep.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

const TINY: [&str; 4] = ["epochs=2", "data=xor", "plot=none", "tracker=none"];

#[test]
fn local_pool_runs_every_job_and_records_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut args = vec![
        "-m",
        "hydra.sweep.dir=sw",
        "hydra.launcher.n_jobs=2",
        "seed=0,1",
        "lr=0.05,0.1",
    ];
    args.extend(TINY);
    ezflt(tmp.path())
        .args(&args)
        .assert()
        .success()
        .stdout(predicate::str::contains("4 completed, 0 failed"));
    let root = tmp.path().join("sw");
    let recs = records(&root);
    assert_eq!(recs.len(), 4);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["job"], i);
        assert_eq!(r["status"], "completed");
        assert_eq!(r["exit_code"], 0);
        assert!(r["test_acc"].as_f64().unwrap() > 0.5, "{r}");
        assert!(!r["overrides"].as_str().unwrap().contains("hydra."), "{r}");
        assert!(root.join(i.to_string()).join("summary.json").is_file());
    }
    assert_eq!(recs[3]["params"]["lr"], "0.1");
    let csv = std::fs::read_to_string(root.join("sweep.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.starts_with("job,status,exit_code,duration_s,seed,lr,"),
        "{header}"
    );
    assert!(
        header.contains("test_acc") && header.ends_with(",path"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 5);
    // Workers got at most cores / n_jobs threads each, and these small steps run on one
    // (a second thread would slow them), as the backend reports; the resolved config keeps
    // the user's value.
    for i in 0..4 {
        let s: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(format!("{i}/summary.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(s["threads"].as_u64(), Some(1), "job {i}");
    }
    let cfg = std::fs::read_to_string(root.join("0/.hydra/resolved.yaml")).unwrap();
    assert!(
        cfg.contains("threads: null"),
        "the resolved config keeps the user's value"
    );
    ezflt(tmp.path())
        .args(["status", "sw"])
        .assert()
        .success()
        .stdout(predicate::str::contains("4 job(s): 4 completed"))
        .stdout(predicate::str::contains("seed=1 lr=0.1"));
}

#[test]
fn a_failing_job_does_not_stop_the_others() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut args = vec![
        "-m",
        "hydra.sweep.dir=sw",
        "lr=0.1,1e30,0.05",
        "model.init_scale=10",
    ];
    args.extend(TINY);
    ezflt(tmp.path())
        .args(&args)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("2 completed, 1 failed"))
        .stderr(predicate::str::contains("#1 diverged [lr=1e+30"))
        .stderr(predicate::str::contains("the loss became"))
        .stderr(predicate::str::contains("ezflt resume sw"));
    let recs = records(&tmp.path().join("sw"));
    let st: Vec<&str> = recs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(st, vec!["completed", "diverged", "completed"]);
}

#[test]
fn fail_fast_stops_launching_and_resume_finishes_the_sweep() {
    let tmp = tempfile::tempdir().expect("tmp");
    // Job 0 diverges (a bad input file would now stop the sweep before launch: every job is
    // checked first); the basic launcher runs in order, so with --fail-fast jobs 1-3 never start.
    let sweep = |extra: &[&str]| {
        let mut c = ezflt(tmp.path());
        c.args([
            "-m",
            "hydra/launcher=basic",
            "hydra.sweep.dir=sw",
            "data=xor",
        ])
        .args([
            "lr=1e30,0.1",
            "seed=0,1",
            "epochs=2",
            "plot=none",
            "tracker=none",
        ])
        .args(extra);
        c
    };
    sweep(&["--fail-fast"]).assert().code(1);
    let root = tmp.path().join("sw");
    let st: Vec<String> = records(&root)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(st[0], "diverged");
    assert!(st[1..].iter().all(|s| s == "pending"), "{st:?}");
    ezflt(tmp.path())
        .args(["status", "sw"])
        .assert()
        .success()
        .stdout(predicate::str::contains("1 diverged, 3 pending"));
    // Resume: only the jobs that did not complete run (the diverging one diverges again).
    ezflt(tmp.path())
        .args(["resume", "sw"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Resume: 4 of 4 job(s)"));
    let st: Vec<String> = records(&root)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(st, vec!["diverged", "diverged", "completed", "completed"]);
    ezflt(tmp.path())
        .args(["resume", "sw"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Resume: 2 of 4 job(s)"));
}

#[test]
fn zipped_sweeps_pair_values() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "-m",
            "--dry-run",
            "--zip",
            "lr,batch_size",
            "lr=0.1,0.2,0.3",
            "batch_size=8,16,32",
            "seed=0,1",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("Dry run: 6 job(s)"))
        .stdout(predicate::str::contains("#0 : lr=0.1 batch_size=8 seed=0"))
        .stdout(predicate::str::contains("#5 : lr=0.3 batch_size=32 seed=1"));
    ezflt(tmp.path())
        .args([
            "-m",
            "--dry-run",
            "--zip",
            "lr,batch_size",
            "lr=0.1,0.2",
            "batch_size=8,16,32",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("pair values one to one"));
}

#[test]
fn launcher_settings_are_typed_and_wrong_ones_are_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dry = |extra: &[&str]| {
        let mut args = vec!["-m", "--dry-run", "seed=0,1", "epochs=1"];
        args.extend_from_slice(extra);
        ezflt(tmp.path()).args(args).assert()
    };
    // SLURM's own time forms are kept as given (they used to become 60 minutes silently).
    for ok in [
        "hydra.launcher.time=2:00:00",
        "hydra.launcher.time=1-12",
        "hydra.launcher.time=90",
    ] {
        dry(&["hydra/launcher=slurm", ok]).success();
    }
    dry(&["hydra/launcher=slurm", "hydra.launcher.time=2h"])
        .code(1)
        .stderr(predicate::str::contains(
            "config key 'hydra.launcher.time' (set at command-line override 'hydra.launcher.time=2h')",
        ))
        .stderr(predicate::str::contains("2:00:00"));
    dry(&["hydra.launcher.n_jobs=two"])
        .code(1)
        .stderr(predicate::str::contains(
            "config key 'hydra.launcher.n_jobs'",
        ))
        .stderr(predicate::str::contains("expected usize"));
    dry(&["hydra.launcher.n_jobs=0"])
        .code(1)
        .stderr(predicate::str::contains("expected a whole number >= 1"));
    dry(&["+hydra.launcher.n_job=2"])
        .code(1)
        .stderr(predicate::str::contains(
            "config key 'hydra.launcher.n_job'",
        ))
        .stderr(predicate::str::contains(
            "unknown field `n_job`, expected one of",
        ));
    dry(&[
        "hydra/launcher=slurm",
        "hydra.launcher.mem=4G",
        "hydra.launcher.gpus=1",
    ])
    .success();
}
