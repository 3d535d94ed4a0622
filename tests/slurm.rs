//! The SLURM launcher against a real one-node cluster (scripts/slurm-up.sh; .ci/run starts
//! it). Skipped when `sbatch` is missing, unless EZFLT_REQUIRE_SLURM is set (CI), or when
//! EZFLT_SKIP_SLURM is set (CI's second, LibTorch pass: the launcher does not change).

mod common;

use predicates::prelude::*;
use serde_json::Value;
use std::path::Path;

use common::ezflt;

fn have_slurm() -> bool {
    if std::env::var("EZFLT_SKIP_SLURM").is_ok() {
        return false;
    }
    let ok = std::process::Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var("EZFLT_REQUIRE_SLURM").is_ok() {
        panic!("EZFLT_REQUIRE_SLURM is set but no SLURM cluster answers; run scripts/slurm-up.sh");
    }
    if !ok {
        common::skip(
            "slurm",
            "no SLURM cluster answers (bash scripts/slurm-up.sh starts one); the launcher was not run",
        );
    }
    ok
}

fn statuses(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("sweep.jsonl"))
        .expect("sweep.jsonl")
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn slurm_array_runs_the_sweep_and_isolates_failures() {
    if !have_slurm() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.poll_seconds=0.5",
            "hydra.launcher.array_parallelism=2",
            // A task per job (batching would put the three in two tasks).
            "hydra.launcher.batch=off",
            "hydra.sweep.dir=sw",
            "lr=0.1,1e30,0.05",
            "model.init_scale=10",
            "epochs=2",
            "data=xor",
            "plot=none",
            "tracker=none",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Submitted SLURM array job"))
        .stdout(predicate::str::contains("2 completed, 1 failed"))
        .stderr(predicate::str::contains("the loss became"));
    let root = tmp.path().join("sw");
    assert_eq!(statuses(&root), vec!["completed", "diverged", "completed"]);
    let script = std::fs::read_to_string(root.join(".slurm/array.sh")).unwrap();
    assert!(
        script.contains("#SBATCH --array=0-2%2") && script.contains("run-job"),
        "{script}"
    );
    // --no-wait returns after submitting; status follows the jobs through their markers.
    ezflt(tmp.path())
        .args([
            "-m",
            "--no-wait",
            "hydra/launcher=slurm",
            "hydra.sweep.dir=nw",
            "seed=0,1",
            "epochs=2",
            "data=xor",
            "plot=none",
            "tracker=none",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("Not waiting"));
    let nw = tmp.path().join("nw");
    let mut out = String::new();
    for _ in 0..600 {
        out = String::from_utf8_lossy(
            &ezflt(tmp.path())
                .args(["status", "nw"])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned();
        if out.contains("2 job(s): 2 completed") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(out.contains("2 job(s): 2 completed"), "{out}");
    assert!(nw.join("0/summary.json").is_file());
}

#[test]
fn slurm_batches_a_sweep_into_array_tasks_each_member_its_own_job() {
    if !have_slurm() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // 8 jobs of one shape over array_parallelism=2: two tasks of 4 members.
    ezflt(tmp.path())
        .args([
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.poll_seconds=0.5",
            "hydra.launcher.array_parallelism=2",
            "hydra.sweep.dir=sw",
            "seed=0,1,2,3",
            "lr=0.05,0.1",
            "epochs=2",
            "data=xor",
            "plot=none",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("(2 task(s) for 8 job(s))"))
        .stdout(predicate::str::contains("8 completed"));
    let root = tmp.path().join("sw");
    assert_eq!(statuses(&root), vec!["completed"; 8]);
    let tasks = std::fs::read_to_string(root.join(".slurm/jobs.txt")).unwrap();
    assert_eq!(tasks.lines().count(), 2, "{tasks}");
    assert_eq!(
        tasks.lines().next().unwrap().split('\t').count(),
        4,
        "{tasks}"
    );
    for j in 0..8 {
        let s: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(format!("{j}/summary.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(s["status"], "completed", "job {j}");
        let members = s["batched"]["members"].as_array().expect("batched").len();
        assert_eq!(members, 4, "job {j}");
        assert!(root.join(format!("{j}/features.npz")).is_file(), "job {j}");
    }
}

#[test]
fn a_task_over_its_time_limit_is_reported_as_timeout() {
    if !have_slurm() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // One minute is SLURM's smallest limit: this test takes a little over a minute.
    ezflt(tmp.path())
        .args([
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.time=1",
            "hydra.launcher.poll_seconds=1",
            "hydra.sweep.dir=sw",
            "epochs=100000000,1",
            "data=xor",
            "plot=none",
            "tracker=none",
            "log_every=1000",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("#0 timeout"));
    let root = tmp.path().join("sw");
    assert_eq!(statuses(&root), vec!["timeout", "completed"]);
    // The stopped job flushed what it had: metrics and a summary marked interrupted.
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("0/summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["status"], "interrupted");
}
