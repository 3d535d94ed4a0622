//! Bad input and hostile conditions, end to end through the binary: closed pipes, non-UTF-8
//! arguments, absurd sizes, signals at any point, dry runs that check what runs check, data
//! errors that leave nothing behind, and messages that say what is wrong.

use predicates::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;

mod common;
use common::{
    ezflt, ezflt_cmd, f32_bytes, i64_bytes, npy, numpy_check, rows, signal, small_run, summary,
    wait_exit, wait_until, write_npz,
};

/// Every file under `dir` whose name marks it as a temp file.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(temp_files(&p));
        } else {
            let n = e.file_name().to_string_lossy().to_string();
            if n.ends_with(".tmp") || n.contains(".tmp.") || n == "COMMITTING" {
                out.push(p);
            }
        }
    }
    out
}

fn no_panic() -> impl predicates::Predicate<str> {
    predicate::str::contains("panicked").not()
}

/// A pipe whose reader is already gone: every write to it fails with EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer
}

#[test]
fn a_closed_stdout_pipe_does_not_stop_training() {
    // `ezflt train | head -2`: the reader leaves after two lines; the run must finish.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = ezflt_cmd(tmp.path())
        .args(["train", "hydra.run.dir=run", "epochs=30", "threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    for _ in 0..2 {
        lines.next().expect("a line").expect("utf-8");
    }
    drop(lines);
    let status = wait_exit(&mut child, 300);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let run = tmp.path().join("run");
    let s = summary(&run);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["epochs"], 30);
    assert!(run.join("features.npz").is_file());
    assert!(run.join("checkpoint/state.json").is_file());
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("epoch 29 (30/30)"), "{log}");
}

#[test]
fn listing_commands_exit_quietly_when_stdout_is_closed() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args(["train", "hydra.run.dir=run", "epochs=2", "threads=1"])
        .assert()
        .success();
    let cases: &[&[&str]] = &[
        &["plot", "run"],
        &["inspect", "run"],
        &["completions", "bash"],
        &["--help"],
        &["train", "--cfg", "job"],
        &["train", "--dry-run", "hydra.run.dir=dry"],
    ];
    for args in cases {
        let out = ezflt_cmd(tmp.path())
            .args(*args)
            .stdout(closed_pipe())
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn a_non_utf8_argument_is_a_clear_error() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .arg("train")
        .arg(std::ffi::OsStr::from_bytes(b"data.path=caf\xe9.npz"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("argument 2"))
        .stderr(predicate::str::contains("not valid UTF-8"))
        .stderr(no_panic());
    assert!(!tmp.path().join("outputs").exists());
}

#[test]
fn absurd_sizes_are_refused_before_allocating_with_the_numbers() {
    let tmp = tempfile::tempdir().expect("tmp");
    for args in [
        &["model.widths=[100000000]"][..],
        &["data.n_train=1000000000"],
        &["data.dim=1000000000"],
        &["-m", "model.widths=[8],[100000000]"],
    ] {
        ezflt(tmp.path())
            .arg("train")
            .args(args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("of memory"))
            .stderr(predicate::str::contains("is available"))
            .stderr(predicate::str::contains("memory_check=false"))
            .stderr(no_panic());
    }
    assert!(!tmp.path().join("outputs").exists());
    assert!(!tmp.path().join("multirun").exists());
}

#[test]
fn class_ids_that_are_not_0_to_k_minus_1_are_an_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let x: Vec<f32> = (0..40).map(|i| i as f32 * 0.1).collect();
    let y: Vec<i64> = (0..20)
        .map(|i| if i % 2 == 0 { 0 } else { 99_000_000 })
        .collect();
    write_npz(
        &tmp.path().join("d.npz"),
        &[
            ("x", npy("<f4", &[20, 2], &f32_bytes(&x))),
            ("y", npy("<i8", &[20], &i64_bytes(&y))),
        ],
    );
    ezflt(tmp.path())
        .args([
            "train",
            "data=numpy",
            "data.path=d.npz",
            "data.x_key=x",
            "data.y_key=y",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("class ids 0..K-1"))
        .stderr(predicate::str::contains("99000000"))
        .stderr(predicate::str::contains("np.unique"));
    assert!(!tmp.path().join("outputs").exists());
}

/// A run with a checkpoint after every (one-step) epoch, so signals land mid-save often.
fn spawn_long_run(dir: &Path) -> std::process::Child {
    ezflt_cmd(dir)
        .args([
            "train",
            "hydra.run.dir=run",
            "data.n_train=64",
            "batch_size=full",
            "epochs=1000000",
            "checkpoint_every=1",
            "eval_every=50",
            "log_every=1",
            "tracker.track_frequency=3",
            "plot=none",
            "threads=1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[cfg(unix)]
#[test]
fn a_signal_at_any_point_stops_cleanly_and_resume_continues() {
    let delays_ms = [0u64, 5, 20, 60, 120, 200, 350, 500, 800, 1200];
    for (i, delay) in delays_ms.iter().enumerate() {
        let sig = if i % 2 == 0 { "TERM" } else { "INT" };
        let tmp = tempfile::tempdir().expect("tmp");
        let mut child = spawn_long_run(tmp.path());
        let run = tmp.path().join("run");
        // The handler is installed before the run directory exists.
        wait_until("the run directory", 60, &mut child, || {
            run.join(".hydra/config.yaml").exists()
        });
        std::thread::sleep(std::time::Duration::from_millis(*delay));
        signal(child.id(), sig);
        // `timeout` and terminals signal the whole group: the same request twice.
        if i % 3 == 0 {
            signal(child.id(), sig);
        }
        let status = wait_exit(&mut child, 120);
        let what = format!("SIG{sig} after {delay} ms");
        assert_eq!(status.code(), Some(130), "{what}");
        assert_eq!(summary(&run)["status"], "interrupted", "{what}");
        assert_eq!(temp_files(&run), Vec::<PathBuf>::new(), "{what}");
        assert!(!run.join("features.spill").exists(), "{what}");
        numpy_check(
            &run.join("features.npz"),
            "import sys, numpy as np\nz = np.load(sys.argv[1])\ns = z['step']\nassert len(s) >= 1 and (np.diff(s) > 0).all(), s\nassert z['layers.0.weight'].shape[0] == len(s)",
        );
        // Stopped at an epoch boundary (full batch): the checkpoint is exactly there.
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("checkpoint/state.json")).expect("state.json"),
        )
        .unwrap();
        let stopped = state["epoch"].as_u64().unwrap();
        assert_eq!(summary(&run)["steps"].as_u64(), Some(stopped), "{what}");
        let more = (stopped + 3).to_string();
        ezflt(tmp.path())
            .args(["train", "resume=run", &format!("epochs={more}")])
            .assert()
            .success();
        let s = summary(&run);
        assert_eq!(s["status"], "completed", "{what}");
        assert_eq!(s["steps"].as_u64(), Some(stopped + 3), "{what}");
        let steps: Vec<u64> = rows(&run)
            .iter()
            .filter(|r| r.get("test_loss").is_none())
            .map(|r| r["step"].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = (1..=stopped + 3).collect();
        assert_eq!(steps, want, "{what}: every step logged once");
        numpy_check(
            &run.join("features.npz"),
            &format!("import sys, numpy as np\nz = np.load(sys.argv[1])\ns = z['step']\nassert (np.diff(s) > 0).all(), s\nassert s[-1] == {}, s", stopped + 3),
        );
    }
}

#[test]
fn stale_temp_files_are_cleaned_and_a_half_committed_checkpoint_is_finished() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ck = small_run(tmp.path()).join("checkpoint");
    // What a kill between two renames of a commit leaves: the marker, new state pending.
    std::fs::write(ck.join("state.tmp.json"), "{\"epoch\":2,\"step\":16}\n").unwrap();
    std::fs::write(ck.join("COMMITTING"), "").unwrap();
    std::fs::write(ck.join("optim.tmp.bpk.123.tmp"), "junk").unwrap();
    std::fs::write(tmp.path().join("run/features.npz.tmp"), "junk").unwrap();
    ezflt(tmp.path())
        .args(["train", "resume=run", "epochs=3"])
        .assert()
        .success();
    assert_eq!(temp_files(&tmp.path().join("run")), Vec::<PathBuf>::new());
    assert_eq!(summary(&tmp.path().join("run"))["epochs"], 3);
}

#[test]
fn dry_run_checks_every_value_a_real_run_checks() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (arg, says) in [
        ("epochs=2.5", "epochs"),
        ("batch_size=fulll", "batch_size"),
        ("tracker.layers=[nope]", "matches no parameter"),
        ("model.widths=[100000000]", "of memory"),
    ] {
        ezflt(tmp.path())
            .args(["train", "--dry-run", arg])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("would fail"))
            .stderr(predicate::str::contains(says));
    }
    // A sweep's dry run writes its plan and reports every failing job...
    let sweep = ["-m", "epochs=1,2.5", "lr=0.1,-1"];
    ezflt(tmp.path())
        .arg("--dry-run")
        .args(sweep)
        .arg("hydra.sweep.dir=sw")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("3 of 4 job(s) would fail"))
        .stderr(predicate::str::contains("job #0").not())
        .stderr(predicate::str::contains("job #1 (epochs=1 lr=-1 "))
        .stderr(predicate::str::contains("job #2 (epochs=2.5 lr=0.1 "))
        .stderr(predicate::str::contains("job #3"));
    assert!(tmp.path().join("sw/3/.hydra/config.yaml").is_file());
    // ...and the same sweep run for real launches nothing.
    ezflt(tmp.path())
        .args(sweep)
        .arg("hydra.sweep.dir=real")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nothing was launched"));
    assert!(!tmp.path().join("real").exists());
}

#[test]
fn data_errors_leave_no_run_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    let x: Vec<f32> = (0..40).map(|i| i as f32).collect();
    let y: Vec<i64> = (0..20).map(|i| i % 2).collect();
    write_npz(
        &tmp.path().join("good.npz"),
        &[
            ("x", npy("<f4", &[20, 2], &f32_bytes(&x))),
            ("y", npy("<i8", &[20], &i64_bytes(&y))),
        ],
    );
    let bytes = std::fs::read(tmp.path().join("good.npz")).unwrap();
    std::fs::write(tmp.path().join("cut.npz"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(tmp.path().join("junk.npz"), b"not a zip at all").unwrap();
    std::fs::create_dir(tmp.path().join("idx")).unwrap();
    // An IDX image file whose header promises more than it holds.
    let mut idx = vec![0, 0, 8, 3];
    for d in [10u32, 28, 28] {
        idx.extend_from_slice(&d.to_be_bytes());
    }
    idx.extend_from_slice(&[0u8; 100]);
    std::fs::write(tmp.path().join("idx/train-images-idx3-ubyte"), idx).unwrap();
    for args in [
        &["data=numpy", "data.path=missing.npz"][..],
        &[
            "data=numpy",
            "data.path=cut.npz",
            "data.x_key=x",
            "data.y_key=y",
        ],
        &["data=numpy", "data.path=junk.npz"],
        &["data=mnist", "data.path=idx"],
    ] {
        ezflt(tmp.path())
            .arg("train")
            .args(args)
            .assert()
            .code(1)
            .stderr(no_panic());
        assert!(
            !tmp.path().join("outputs").exists(),
            "{args:?} left a run directory"
        );
    }
}

#[test]
fn messages_say_what_is_wrong() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    // NaN in the inputs: named at load, not answered with "lower the learning rate".
    let mut x: Vec<f32> = (0..40).map(|i| i as f32).collect();
    x[13] = f32::NAN;
    let y: Vec<i64> = (0..20).map(|i| i % 2).collect();
    write_npz(
        &t.join("nan.npz"),
        &[
            ("x", npy("<f4", &[20, 2], &f32_bytes(&x))),
            ("y", npy("<i8", &[20], &i64_bytes(&y))),
        ],
    );
    ezflt(t)
        .args([
            "train",
            "data=numpy",
            "data.path=nan.npz",
            "data.x_key=x",
            "data.y_key=y",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("NaN"))
        .stderr(predicate::str::contains("learning rate").not());
    // An object array: its dtype as numpy writes it, not a Rust debug struct.
    write_npz(
        &t.join("obj.npz"),
        &[("x", npy("|O", &[2], b"\x80\x02]q\x00."))],
    );
    ezflt(t)
        .args(["train", "data=numpy", "data.path=obj.npz", "data.x_key=x"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("{").not())
        .stderr(no_panic());
    // A 100 KB override is not echoed back whole.
    let huge = format!("lr={}", "9".repeat(100_000));
    let out = ezflt(t)
        .args(["train", "--dry-run", &huge, "lr=x"])
        .output()
        .unwrap();
    assert!(
        out.stderr.len() < 2_000,
        "{} bytes of stderr",
        out.stderr.len()
    );
    // `status` on a dry-run sweep says it was a dry run.
    ezflt(t)
        .args(["-m", "--dry-run", "seed=0,1", "hydra.sweep.dir=dry"])
        .assert()
        .success();
    ezflt(t)
        .args(["status", "dry"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("dry run"));
    // A damaged archive and a damaged metrics file are named, not passed over.
    let npz = small_run(t).join("features.npz");
    let bytes = std::fs::read(&npz).unwrap();
    std::fs::write(&npz, &bytes[..bytes.len() / 2]).unwrap();
    ezflt(t)
        .args(["plot", "run"])
        .assert()
        .stderr(predicate::str::contains("damaged"))
        .stderr(predicate::str::contains("inspect --repair"));
    // ...and --repair keeps what is whole: the step index, and an archive that opens.
    ezflt(t)
        .args(["inspect", "--repair", "run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("salvaged"))
        .stdout(predicate::str::contains("step"));
    assert!(t.join("run/features.npz.damaged").is_file());
    numpy_check(
        &npz,
        "import sys, json, numpy as np\nz = np.load(sys.argv[1])\nassert len(z['step']) >= 2\nassert json.loads(str(z['metadata']))['salvaged']",
    );
    let m = t.join("run/metrics.jsonl");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, format!("{{\"step\": 1, oops\n{text}")).unwrap();
    ezflt(t)
        .args(["plot", "run", "--what", "curves"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("metrics.jsonl:1"))
        .stderr(predicate::str::contains("no metrics rows").not());
}

#[test]
fn best_auroc_is_the_maximum_and_best_loss_the_minimum() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "experiment=cae_anomaly",
            "data.n_train=200",
            "data.n_test=200",
            "epochs=60",
            "eval_every=3",
            "plot=none",
            "threads=1",
        ])
        .assert()
        .success();
    let run = tmp.path().join("run");
    let best = summary(&run)["best"].clone();
    let all = rows(&run);
    let mut checked = 0;
    for (k, v) in best.as_object().unwrap() {
        let series: Vec<f64> = all.iter().filter_map(|r| r[k].as_f64()).collect();
        let want = if k.ends_with("_auroc") {
            series.iter().cloned().fold(f64::MIN, f64::max)
        } else if k.ends_with("_loss") {
            series.iter().cloned().fold(f64::MAX, f64::min)
        } else {
            continue;
        };
        assert_eq!(v.as_f64(), Some(want), "best.{k}");
        checked += 1;
    }
    assert!(best.get("semantic_auroc").is_some(), "{best}");
    // The AUROC series must move for the test to tell max from min.
    let auroc: Vec<f64> = all
        .iter()
        .filter_map(|r| r["semantic_auroc"].as_f64())
        .collect();
    assert!(auroc.iter().any(|a| *a != auroc[0]), "{auroc:?}");
    assert!(checked >= 4, "{best}");
}

#[test]
fn robust_accuracy_uses_the_documented_pgd_whatever_the_training_attack() {
    // With clean training the model is the same under adv=fgsm and adv=pgd, so the
    // evaluation attack (PGD, eval_steps) must give the same robust accuracy.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut robust = vec![];
    for adv in ["adv=fgsm", "adv=pgd"] {
        let dir = format!("hydra.run.dir={adv}").replace("adv=", "run_");
        ezflt(tmp.path())
            .args([
                "train",
                &dir,
                adv,
                "adv.train=false",
                "adv.eps=1.0",
                "epochs=5",
                "plot=none",
                "threads=1",
            ])
            .assert()
            .success();
        let s = summary(&tmp.path().join(adv.replace("adv=", "run_")));
        let r = s["final"]["robust_acc"].as_f64().unwrap();
        let clean = s["final"]["test_acc"].as_f64().unwrap();
        assert!(r <= clean, "{adv}: robust {r} > clean {clean}");
        // The attack does something: the attacked loss exceeds the clean one.
        let (rl, cl) = (
            s["final"]["robust_loss"].as_f64().unwrap(),
            s["final"]["test_loss"].as_f64().unwrap(),
        );
        assert!(rl > 1.5 * cl, "{adv}: attacked loss {rl}, clean {cl}");
        robust.push(r);
    }
    assert_eq!(robust[0], robust[1], "fgsm vs pgd evaluation");
    assert!(
        robust[0] < 0.9,
        "an eps-1 attack that does nothing: {robust:?}"
    );
}

#[test]
fn home_in_path_settings_expands() {
    let tmp = tempfile::tempdir().expect("tmp");
    let x: Vec<f32> = (0..40).map(|i| (i % 7) as f32).collect();
    let y: Vec<i64> = (0..20).map(|i| i % 2).collect();
    std::fs::create_dir(tmp.path().join("data")).unwrap();
    write_npz(
        &tmp.path().join("data/d.npz"),
        &[
            ("x", npy("<f4", &[20, 2], &f32_bytes(&x))),
            ("y", npy("<i8", &[20], &i64_bytes(&y))),
        ],
    );
    ezflt(tmp.path())
        .env("HOME", tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "data=numpy",
            "data.path=~/data/d.npz",
            "epochs=1",
            "plot=none",
        ])
        .assert()
        .success();
}

/// A small fixed-seed generator: the chaos test's "random" times and victims repeat.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Job directories of a sweep whose marker says a process is running them, with its pid.
fn running_workers(root: &Path) -> Vec<u32> {
    let mut pids = vec![];
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let m = std::fs::read_to_string(e.path().join(".ezflt-job.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&m) {
            if v["status"] == "running" {
                if let Some(p) = v["pid"].as_u64() {
                    pids.push(p as u32);
                }
            }
        }
    }
    pids
}

#[cfg(unix)]
#[test]
fn chaos_killed_workers_and_launcher_then_resume_completes_every_job_once() {
    let jobs = 6;
    let steps = 300;
    let (mut killed, mut resumed) = (0, 0);
    for round in 0..3u64 {
        let mut rng = Lcg(0x5eed + round);
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("sw");
        let mut launcher = ezflt_cmd(tmp.path())
            .args([
                "-m",
                "hydra.sweep.dir=sw",
                "seed=0,1,2,3,4,5",
                "data.n_train=64",
                "batch_size=full",
                &format!("epochs={steps}"),
                "checkpoint_every=1",
                "eval_every=25",
                "log_every=1",
                "tracker.track_frequency=7",
                "plot=none",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        wait_until("a worker to start", 60, &mut launcher, || {
            !running_workers(&root).is_empty()
        });
        // Kill a few workers at random times, then the launcher itself (its other
        // workers live on as orphans and must not be started a second time).
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(50 + rng.below(400)));
            let pids = running_workers(&root);
            if let Some(&pid) = pids.get(rng.below(pids.len() as u64) as usize) {
                let hit = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                killed += usize::from(hit);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(rng.below(300)));
        signal(launcher.id(), "KILL");
        wait_exit(&mut launcher, 30);
        // A worker spawned just before the kill takes its job's lock within milliseconds.
        std::thread::sleep(std::time::Duration::from_millis(200));
        ezflt(tmp.path()).args(["resume", "sw"]).assert().success();
        // Orphaned workers finish on their own; wait for them (bounded).
        let end = std::time::Instant::now() + std::time::Duration::from_secs(300);
        let done = |d: usize| {
            std::fs::read_to_string(root.join(d.to_string()).join("summary.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|s| s["status"] == "completed")
        };
        while !(0..jobs).all(done) {
            assert!(
                std::time::Instant::now() < end,
                "round {round}: jobs still not completed"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ezflt(tmp.path())
            .args(["status", "sw"])
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("{jobs} completed")));
        for d in 0..jobs {
            let run = root.join(d.to_string());
            let what = format!("round {round}, job {d}");
            let s = summary(&run);
            assert_eq!(s["steps"], steps, "{what}");
            let log = std::fs::read_to_string(run.join("train.log")).unwrap();
            assert_eq!(
                log.matches("finished: ").count(),
                1,
                "{what}: completed once\n{log}"
            );
            resumed += usize::from(log.contains("resuming after epoch"));
            let train_steps: Vec<u64> = rows(&run)
                .iter()
                .filter(|r| r.get("test_loss").is_none())
                .map(|r| r["step"].as_u64().unwrap())
                .collect();
            assert_eq!(
                train_steps,
                (1..=steps).collect::<Vec<u64>>(),
                "{what}: rows once each"
            );
            assert_eq!(temp_files(&run), Vec::<PathBuf>::new(), "{what}");
            numpy_check(
                &run.join("features.npz"),
                &format!("import sys, numpy as np\nz = np.load(sys.argv[1])\ns = z['step']\nassert s[0] == 0 and s[-1] == {steps} and (np.diff(s) > 0).all(), s"),
            );
        }
    }
    // The chaos must have happened: workers killed, and jobs continued from checkpoints.
    assert!(killed >= 3, "only {killed} workers were killed");
    assert!(
        resumed >= 3,
        "only {resumed} jobs resumed from a checkpoint"
    );
}

#[test]
fn a_feature_archive_larger_than_the_free_disk_is_refused_at_start() {
    // 800,000 snapshots of a 4096x4096 layer: petabytes, whatever disk this machine has.
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "data.dim=4096",
            "model.widths=[4096]",
            "epochs=100000",
            "tracker.schedule=every",
            "tracker.track_frequency=1",
            "tracker.max_bytes=1000000000000000000",
            "threads=1",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("of disk (spill + archive)"))
        .stderr(predicate::str::contains("are free under"));
    assert_eq!(summary(&tmp.path().join("run"))["status"], "failed");
}

#[cfg(unix)]
#[test]
fn resuming_a_run_that_is_still_training_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut child = spawn_long_run(tmp.path());
    let state = tmp.path().join("run/checkpoint/state.json");
    wait_until("a checkpoint", 60, &mut child, || state.exists());
    ezflt(tmp.path())
        .args(["train", "resume=run", "epochs=5"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "still training in another process",
        ));
    // Nor may plot or inspect --repair assemble (and so delete) a live run's spill.
    ezflt(tmp.path())
        .args(["inspect", "--repair", "run"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("still training"));
    ezflt(tmp.path())
        .args(["plot", "run", "--what", "evolution"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("still training"));
    assert!(tmp.path().join("run/features.spill/meta.json").is_file());
    signal(child.id(), "INT");
    assert_eq!(wait_exit(&mut child, 60).code(), Some(130));
    // Once it has stopped, resume proceeds.
    let stopped = summary(&tmp.path().join("run"))["steps"].as_u64().unwrap();
    ezflt(tmp.path())
        .args(["train", "resume=run", &format!("epochs={}", stopped + 2)])
        .assert()
        .success();
}

#[cfg(unix)]
#[test]
fn a_run_stopped_mid_epoch_resumes_exactly_where_it_stopped() {
    // Minibatches (16 per epoch) with Adam: the checkpoint taken at the stop holds the
    // batch position and the optimizer state, so the resumed run ends bit for bit where an
    // uninterrupted one does.
    let args = [
        "data=xor",
        "data.n_train=256",
        "batch_size=16",
        "optimizer=adam",
        "lr=1e-3",
        "max_steps=12000",
        "epochs=100000",
        "eval_every=100000",
        "log_every=1",
        "plot=none",
        "threads=1",
    ];
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args(["train", "hydra.run.dir=whole"])
        .args(args)
        .assert()
        .success();
    let mut mid_epoch = false;
    for attempt in 0..4 {
        let dir = format!("cut{attempt}");
        let mut child = ezflt_cmd(tmp.path())
            .args(["train", &format!("hydra.run.dir={dir}")])
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let m = tmp.path().join(&dir).join("metrics.jsonl");
        wait_until("some training", 60, &mut child, || {
            std::fs::read_to_string(&m).map_or(0, |t| t.lines().count()) >= 100
        });
        signal(child.id(), "TERM");
        if wait_exit(&mut child, 60).code() != Some(130) {
            continue; // it finished first
        }
        let run = tmp.path().join(&dir);
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            state["step"],
            summary(&run)["steps"],
            "checkpoint at the stop"
        );
        ezflt(tmp.path())
            .args(["train", &format!("resume={dir}")])
            .assert()
            .success();
        let (a, b) = (summary(&tmp.path().join("whole")), summary(&run));
        assert_eq!(b["steps"], 12000);
        assert_eq!(a["final"], b["final"], "stopped at {state}");
        let steps: Vec<u64> = rows(&run)
            .iter()
            .filter(|r| r.get("test_loss").is_none())
            .map(|r| r["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, (1..=12000).collect::<Vec<u64>>(), "rows once each");
        if state["batch"].as_u64() > Some(0) {
            mid_epoch = true;
            break;
        }
    }
    assert!(mid_epoch, "no stop landed mid-epoch in 4 tries");
}

#[cfg(target_os = "linux")]
#[test]
fn a_local_sweep_must_fit_the_jobs_it_runs_at_once() {
    // Jobs of ~60% of the available memory each: one fits, two side by side do not.
    let avail_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    // The estimate holds a gaussian_mixture sample (dim 20) twice in f32, plus its label.
    let n = avail_kb * 1024 * 6 / 10 / (20 * 4 * 2 + 16);
    let tmp = tempfile::tempdir().expect("tmp");
    let sweep = |jobs: &str| {
        let mut c = ezflt(tmp.path());
        c.args(["-m", "seed=0,1", &format!("data.n_train={n}")])
            .arg(format!("hydra.launcher.n_jobs={jobs}"));
        c
    };
    sweep("2")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("runs 2 jobs at once"))
        .stderr(predicate::str::contains("hydra.launcher.n_jobs"));
    assert!(!tmp.path().join("multirun").exists());
    sweep("1").arg("--dry-run").assert().success();
}
