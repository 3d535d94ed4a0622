//! End-to-end training through the binary: every model and data source trains (the loss
//! goes down), seeds reproduce runs, bad input fails clearly, resume and NaN handling.

use predicates::prelude::*;
use std::path::{Path, PathBuf};

mod common;
use common::{npy, rows, summary};

use common::ezflt;

/// Runs `ezflt train <args> hydra.run.dir=run` in a fresh temp dir; returns (tmp, run dir).
fn train(args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut all = vec!["train", "hydra.run.dir=run", "threads=1"];
    all.extend_from_slice(args);
    ezflt(tmp.path()).args(&all).assert().success();
    let run = tmp.path().join("run");
    (tmp, run)
}

/// Training loss of the first and the last logged training row.
fn first_last_loss(run: &Path) -> (f64, f64) {
    let r = rows(run);
    let losses: Vec<f64> = r
        .iter()
        .filter_map(|row| row.get("train_loss").and_then(|v| v.as_f64()))
        .collect();
    assert!(losses.len() >= 2, "too few rows: {r:?}");
    (losses[0], losses[losses.len() - 1])
}

#[test]
fn default_experiment_trains_and_writes_its_outputs() {
    let (_tmp, run) = train(&["epochs=3"]);
    let s = summary(&run);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["backend"], "flex");
    assert_eq!(s["epochs"], 3);
    assert!(s["final"]["test_acc"].as_f64().unwrap() > 0.8, "{s}");
    assert!(s["params"]["layers.0.weight"].is_array());
    assert!(run.join("metrics.csv").is_file());
    assert!(run.join("checkpoint/model.bpk").is_file());
    assert!(run.join("checkpoint/optim.bpk").is_file());
    assert!(run.join(".hydra/config.yaml").is_file());
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("epoch 2 (3/3)"), "{log}");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("step,epoch,lr,train_loss,train_acc,test_loss,test_acc,time_s\n"));
    let (a, b) = first_last_loss(&run);
    assert!(b < a, "loss did not decrease: {a} -> {b}");
}

#[test]
fn every_model_and_synthetic_source_trains() {
    let cases: &[&[&str]] = &[
        &["data=xor", "epochs=8", "model.widths=[16]"],
        &[
            "data=gaussian_mixture",
            "model.activation='relu^2'",
            "model.init_scale=0.1",
            "optimizer=adam",
            "lr=1e-2",
            "epochs=3",
        ],
        &[
            "data=gaussian_mixture",
            "model.activation=smooth_relu",
            "model.fixed_last_layer=true",
            "model.widths=[32]",
            "epochs=3",
            "loss=hinge",
        ],
        &[
            "model=two_layer_cnn",
            "data=signal_noise",
            "data.dim=50",
            "data.n_train=20",
            "data.n_test=50",
            "batch_size=full",
            "lr=0.5",
            "epochs=20",
            "log_every=1",
            "data.snr=1.0",
        ],
        &[
            "data=sparse_coding",
            "data.dim=16",
            "data.n_train=400",
            "data.n_test=100",
            "optimizer=adam",
            "lr=3e-3",
            "epochs=4",
            "batch_size=50",
            "log_every=2",
        ],
        &[
            "model=conv_autoencoder",
            "data=orthonormal_patches",
            "data.patches=10",
            "data.n_train=100",
            "data.n_test=50",
            "batch_size=full",
            "lr=5",
            "epochs=30",
            "log_every=5",
        ],
        &[
            "data=modular_addition",
            "data.p=11",
            "optimizer=adamw",
            "lr=1e-2",
            "batch_size=full",
            "epochs=30",
            "log_every=5",
            "model.bias=false",
        ],
        &[
            "model=cnn",
            "data=digits",
            "model.channels=[4]",
            "model.hidden=16",
            "epochs=2",
            "lr=0.1",
            "optimizer.momentum=0.9",
            "optimizer.nesterov=true",
            "schedule=cosine",
        ],
        &[
            "data=digits",
            "epochs=2",
            "schedule=step",
            "schedule.step_size=1",
            "schedule.warmup_steps=5",
            "optimizer.weight_decay=1e-4",
        ],
    ];
    for args in cases {
        let (_tmp, run) = train(args);
        let s = summary(&run);
        assert_eq!(s["status"], "completed", "{args:?}: {s}");
        let (a, b) = first_last_loss(&run);
        assert!(b < a, "{args:?}: loss did not decrease: {a} -> {b}");
    }
}

/// Metrics without the wall-clock column.
fn metric_values(run: &Path) -> Vec<String> {
    rows(run)
        .into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("time_s");
            r.to_string()
        })
        .collect()
}

#[test]
fn same_seed_same_metrics_bit_for_bit() {
    let args = ["epochs=2", "data=digits", "seed=5"];
    let (_a, ra) = train(&args);
    let (_b, rb) = train(&args);
    assert_eq!(metric_values(&ra), metric_values(&rb));
    let (_c, rc) = train(&["epochs=2", "data=digits", "seed=6"]);
    assert_ne!(metric_values(&ra), metric_values(&rc));
}

#[test]
fn full_batch_is_one_step_per_epoch() {
    let (_tmp, run) = train(&["batch_size=full", "epochs=7", "log_every=1"]);
    assert_eq!(summary(&run)["steps"], 7);
}

#[test]
fn max_steps_is_a_step_budget() {
    let (_tmp, run) = train(&["max_steps=5", "epochs=100"]);
    let s = summary(&run);
    assert_eq!(s["steps"], 5);
    assert_eq!(s["epochs"], 1);
}

#[test]
fn adversarial_training_reports_robust_accuracy() {
    let (_tmp, run) = train(&[
        "data=sparse_coding",
        "data.dim=16",
        "data.n_train=200",
        "data.n_test=100",
        "adv=pgd",
        "adv.steps=2",
        "adv.eval_steps=3",
        "epochs=2",
    ]);
    let s = summary(&run);
    let robust = s["final"]["robust_acc"].as_f64().expect("robust_acc");
    assert!((0.0..=1.0).contains(&robust));
    let (_t2, run2) = train(&[
        "data=sparse_coding",
        "data.dim=16",
        "data.n_train=200",
        "data.n_test=100",
        "adv=fgsm",
        "adv.norm=linf",
        "adv.eps=0.05",
        "epochs=1",
    ]);
    assert!(summary(&run2)["final"]["robust_acc"].is_number());
}

#[test]
fn resume_continues_at_the_right_step() {
    let (tmp, run) = train(&["epochs=2", "data=digits"]);
    let steps2 = summary(&run)["steps"].as_u64().unwrap();
    assert_eq!(steps2 % 2, 0);
    let per_epoch = steps2 / 2;
    ezflt(tmp.path())
        .args(["train", &format!("resume={}", run.display()), "epochs=3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("at epoch 2"));
    let s = summary(&run);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["steps"].as_u64().unwrap(), 3 * per_epoch);
    assert_eq!(s["epochs"], 3);
    // The metrics continue in the same files; steps never go backwards.
    let steps: Vec<u64> = rows(&run)
        .iter()
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    assert_eq!(*steps.last().unwrap(), 3 * per_epoch);
    let cfg = std::fs::read_to_string(run.join(".hydra/config.yaml")).unwrap();
    assert!(cfg.contains("epochs: 3"), "{cfg}");
    // Changing anything else would not be the same run.
    ezflt(tmp.path())
        .args(["train", &format!("resume={}", run.display()), "lr=5"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "only epochs=N and max_steps=N may change",
        ));
    ezflt(tmp.path())
        .args(["train", "resume=nowhere"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not an ezflt run directory"));
}

/// `tracker.metrics` measures from the initialisation: a resumed run rebuilds it from the
/// seed, so its weight metrics equal those of a run that never stopped.
#[test]
fn weight_metrics_measure_from_init_across_a_resume() {
    let args = [
        "model=mean_field",
        "model.scale=0.1",
        "data=multi_index",
        "dtype=f64",
        "batch_size=full",
        "lr=100",
        "tracker.metrics=true",
        "eval_every=10",
        "plot=none",
    ];
    let (tmp, run) = train(&[&args[..], &["epochs=20"]].concat());
    ezflt(tmp.path())
        .args(["train", &format!("resume={}", run.display()), "epochs=40"])
        .assert()
        .success();
    let (_tmp2, straight) = train(&[&args[..], &["epochs=40"]].concat());
    let (a, b) = (metric_values(&run), metric_values(&straight));
    assert_eq!(a, b);
    let last = &rows(&run)[rows(&run).len() - 1];
    for k in [
        "change_w",
        "align_w_directions",
        "align_weighted_w_directions",
        "test_rel_mse",
    ] {
        let v = last[k].as_f64().unwrap_or_else(|| panic!("{k} in {last}"));
        assert!(v > 0.0 && v.is_finite(), "{k} = {v}");
    }
    // Weighted by the output weights, the rows have begun to turn to the teacher's axes.
    assert!(last["align_weighted_w_directions"].as_f64() > last["align_w_directions"].as_f64());
}

/// `early_stopping`: at a target value, or after `patience` evaluations without progress;
/// the reason is printed and kept in summary.json; an unknown metric is named.
#[test]
fn early_stopping_ends_at_the_target_or_when_progress_stalls() {
    let (_tmp, run) = train(&[
        "epochs=100",
        "early_stopping.monitor=test_acc",
        "early_stopping.stop_at=0.9",
    ]);
    let s = summary(&run);
    assert_eq!(s["status"], "completed", "{s}");
    assert!(s["final"]["test_acc"].as_f64().unwrap() >= 0.9, "{s}");
    let epochs = s["epochs"].as_u64().unwrap();
    assert!(epochs < 100, "{s}");
    let why = s["stopped_early"].as_str().expect("stopped_early");
    assert!(
        why.contains("reached early_stopping.stop_at = 0.9"),
        "{why}"
    );
    // The stop is a consistent end: a checkpoint at that epoch.
    let state = std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap();
    assert!(
        state.contains(&format!("\"epoch\":{epochs}"))
            || state.contains(&format!("\"epoch\": {epochs}")),
        "{state}"
    );

    let (_tmp, run) = train(&[
        "epochs=200",
        "lr=1",
        "early_stopping.monitor=test_loss",
        "early_stopping.patience=2",
    ]);
    let s = summary(&run);
    let why = s["stopped_early"].as_str().expect("stopped_early");
    assert!(why.contains("for 2 evaluation(s)"), "{why}");
    // The test loss went up (or stayed) at each of the last two evaluations.
    let losses: Vec<f64> = rows(&run)
        .iter()
        .filter_map(|r| r.get("test_loss").and_then(|v| v.as_f64()))
        .collect();
    let n = losses.len();
    let best = losses[..n - 2].iter().cloned().fold(f64::MAX, f64::min);
    assert!(losses[n - 2..].iter().all(|l| *l >= best), "{losses:?}");

    let tmp = tempfile::tempdir().unwrap();
    ezflt(tmp.path())
        .args(["train", "early_stopping.monitor=test_ac", "hydra.run.dir=run"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "early_stopping.monitor: this run does not evaluate 'test_ac'. Did you mean 'test_acc'?",
        ));
}

#[test]
fn divergence_stops_clearly_and_keeps_what_was_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "lr=1e30",
            "log_every=1",
            "data=xor",
            "model.init_scale=10",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the training loss became"));
    let run = tmp.path().join("run");
    let s = summary(&run);
    assert_eq!(s["status"], "diverged");
    assert!(s["error"]
        .as_str()
        .unwrap()
        .contains("lower the learning rate"));
    assert!(run.join("metrics.csv").is_file());
}

#[test]
fn bad_input_gets_a_clear_error_and_creates_nothing() {
    let cases: &[(&[&str], &str)] = &[
        (&["model=unknown"], "model/unknown"),
        (&["model=two_layer_cnn"], "needs samples of shape [patches, dim]"),
        (&["model=cnn"], "use image data"),
        (&["model=conv_autoencoder"], "use data=orthonormal_patches"),
        (&["lr=-1"], "config key 'lr' (set at command-line override 'lr=-1'): expected a positive number, got -1"),
        (&["optimizer.lr=0"], "config key 'optimizer.lr'"),
        (&["batch_size=abc"], "expected a positive integer or 'full'"),
        (&["model.widths=[0]"], "model.widths"),
        (&["model.activation='relu^x'"], "unknown activation 'relu^x'"),
        (&["data=mnist", "data.mirrors=['http://127.0.0.1:9/']"], "set data.path=<that folder>"),
        (&["data=mnist", "data.path=/no/such/dir"], "is not a directory"),
        (&["data=numpy", "data.path=missing.npz"], "missing.npz"),
        (&["device=cuda", "backend=flex"], "Flex runs on the CPU only"),
        (&["loss=logistic"], "does not fit this data"),
        (&["optimizer=adam", "optimizer.betas=[2,3]"], "optimizer.betas"),
    ];
    for (args, want) in cases {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut all = vec!["train"];
        all.extend_from_slice(args);
        ezflt(tmp.path())
            .args(&all)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(*want));
        // Config and data problems are caught before the run directory exists.
        assert!(
            !tmp.path().join("outputs").exists(),
            "{args:?} created outputs/"
        );
    }
}

#[cfg(not(feature = "tch"))]
#[test]
fn tch_without_the_feature_says_how_to_build_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args(["train", "backend=tch"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("built without LibTorch"))
        .stderr(predicate::str::contains("scripts/setup-torch.sh"));
    ezflt(tmp.path())
        .args(["train", "device=cuda"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("CUDA needs the LibTorch backend"));
}

#[test]
fn numpy_arrays_train_and_bad_keys_are_named() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tmp");
    // Two well separated blobs in 3-D, 64 samples, f8 inputs and i8 labels.
    let (n, d) = (64usize, 3usize);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for i in 0..n {
        let label = (i % 2) as i64;
        for j in 0..d {
            let v = if label == 1 { 1.0f64 } else { -1.0 } + ((i * 7 + j * 3) % 5) as f64 * 0.05;
            xs.extend_from_slice(&v.to_le_bytes());
        }
        ys.extend_from_slice(&label.to_le_bytes());
    }
    let f = std::fs::File::create(tmp.path().join("blobs.npz")).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    z.start_file("inputs.npy", opts).unwrap();
    z.write_all(&npy("<f8", &[n, d], &xs)).unwrap();
    z.start_file("labels.npy", opts).unwrap();
    z.write_all(&npy("<i8", &[n], &ys)).unwrap();
    z.finish().unwrap();
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "data=numpy",
            "data.path=blobs.npz",
            "data.x_key=inputs",
            "data.y_key=labels",
            "epochs=5",
            "batch_size=16",
        ])
        .assert()
        .success();
    let s = summary(&tmp.path().join("run"));
    assert_eq!(s["status"], "completed");
    assert!(s["final"]["test_acc"].as_f64().unwrap() > 0.9, "{s}");
    ezflt(tmp.path())
        .args(["train", "data=numpy", "data.path=blobs.npz"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "no array 'x' (data.x_key); the file holds: inputs, labels",
        ));
}

#[test]
fn mnist_idx_files_are_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    // 40 tiny 4x4 "images": label k lights pixel k (k < 4).
    let idx = common::idx;
    for (img, lab, n) in [
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 40u32),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 20),
    ] {
        let mut px = vec![0u8; (n * 16) as usize];
        let mut labels = vec![];
        for i in 0..n as usize {
            let k = i % 4;
            px[i * 16 + k] = 255;
            labels.push(k as u8);
        }
        std::fs::write(dir.join(img), idx(&[n, 4, 4], px)).unwrap();
        std::fs::write(dir.join(lab), idx(&[n], labels)).unwrap();
    }
    ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "data=mnist",
            "data.path=mnist",
            "epochs=30",
            "batch_size=full",
            "lr=0.5",
        ])
        .assert()
        .success();
    let s = summary(&tmp.path().join("run"));
    assert_eq!(s["final"]["test_acc"].as_f64().unwrap(), 1.0, "{s}");
    // A truncated file is named, with what is wrong.
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(&[40], vec![1; 3])).unwrap();
    ezflt(tmp.path())
        .args(["train", "data=mnist", "data.path=mnist"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "train-labels-idx1-ubyte: the header says [40]",
        ));
}

#[test]
fn multirun_runs_every_job() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "-m",
            "seed=0,1",
            "epochs=1",
            "hydra.sweep.dir=sweep",
            "threads=1",
        ])
        .assert()
        .success();
    for j in 0..2 {
        let s = summary(&tmp.path().join(format!("sweep/{j}")));
        assert_eq!(s["status"], "completed");
        assert_eq!(s["seed"], j);
    }
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_cpu_trains_reproducibly() {
    let args = [
        "backend=tch",
        "device=cpu",
        "data=digits",
        "epochs=2",
        "seed=3",
    ];
    let (_a, ra) = train(&args);
    let s = summary(&ra);
    assert_eq!(s["backend"], "tch");
    assert_eq!(s["device"], "cpu");
    assert_eq!(s["status"], "completed");
    let (first, last) = first_last_loss(&ra);
    assert!(last < first, "{first} -> {last}");
    let (_b, rb) = train(&args);
    assert_eq!(metric_values(&ra), metric_values(&rb));
    // The patch CNN and adversarial training run on LibTorch too.
    let (_c, rc) = train(&[
        "backend=tch",
        "device=cpu",
        "model=two_layer_cnn",
        "data=signal_noise",
        "data.dim=50",
        "batch_size=full",
        "lr=0.5",
        "epochs=5",
    ]);
    assert_eq!(summary(&rc)["status"], "completed");
    let (_d, rd) = train(&[
        "backend=tch",
        "device=cpu",
        "data=sparse_coding",
        "data.dim=16",
        "data.n_train=100",
        "data.n_test=50",
        "adv=pgd",
        "adv.steps=2",
        "adv.eval_steps=2",
        "epochs=1",
    ]);
    assert!(summary(&rd)["final"]["robust_acc"].is_number());
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_refuses_a_gpu_it_cannot_see() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args(["train", "backend=tch", "device=cuda:99"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "device cuda:99 requested, but LibTorch sees",
        ));
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_at_the_next_batch_and_marks_the_run_interrupted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = assert_cmd::cargo::cargo_bin("ezflt");
    let mut child = std::process::Command::new(bin)
        .current_dir(tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "epochs=1000000",
            "log_every=1",
            "threads=1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let metrics = tmp.path().join("run/metrics.csv");
    // Wait until training has started (a metrics row exists), then interrupt it.
    common::wait_until("two metrics rows", 120, &mut child, || {
        std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) >= 3
    });
    common::signal(child.id(), "INT");
    let status = common::wait_exit(&mut child, 60);
    assert_eq!(status.code(), Some(130));
    let s = summary(&tmp.path().join("run"));
    assert_eq!(s["status"], "interrupted");
    assert!(s["steps"].as_u64().unwrap() >= 2);
}

#[test]
fn default_threads_follow_the_work_per_step() {
    // threads=null: Flex takes one thread for small steps (batch x parameters below 5e7,
    // where a second thread made steps slower) and every core above.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let (_t, small) = train(&["threads=null", "epochs=1", "plot=none"]);
    assert_eq!(summary(&small)["threads"], 1);
    // One step of batch 1024 on a 784-2048-10 MLP: work above the threshold.
    let big = [
        "data.dim=784",
        "data.classes=10",
        "data.n_train=1024",
        "data.n_test=64",
        "model.widths=[2048]",
        "batch_size=1024",
        "max_steps=1",
        "tracker=none",
        "plot=none",
    ];
    let (_t, big_auto) = train(&[&["threads=null"][..], &big].concat());
    assert_eq!(summary(&big_auto)["threads"].as_u64(), Some(cores));
    // An explicit count is the most used: a small step stays on one thread (a second made
    // it slower), a big one takes them.
    let (_t, two) = train(&["threads=2", "epochs=1", "plot=none"]);
    assert_eq!(summary(&two)["threads"], 1);
    let (_t, two_big) = train(&[&["threads=2"][..], &big].concat());
    assert_eq!(summary(&two_big)["threads"], 2);
}

#[cfg(feature = "tch")]
#[test]
fn auto_backend_picks_flex_on_the_cpu_at_every_size_even_with_libtorch_built_in() {
    // Flex is ahead of LibTorch's CPU path, or within 2%, at every size of the README's
    // table, on one thread and on two ("Threads"), so a tch build still trains on Flex.
    let run = |extra: &[&str]| {
        let mut args = vec![
            "backend=auto",
            "device=cpu",
            "data.dim=784",
            "data.classes=10",
            "data.n_train=256",
            "data.n_test=64",
            "max_steps=1",
            "tracker=none",
            "plot=none",
        ];
        args.extend(extra);
        let (t, run) = train(&args);
        (t, summary(&run)["backend"].as_str().unwrap().to_string())
    };
    let (_t, small) = run(&["model.widths=[128]", "batch_size=64"]);
    assert_eq!(small, "flex");
    let big = ["model.widths=[2048]", "batch_size=256"];
    let (_t, one) = run(&[&big[..], &["threads=1"]].concat());
    assert_eq!(one, "flex");
    let (_t, two) = run(&[&big[..], &["threads=2"]].concat());
    assert_eq!(two, "flex");
}

#[test]
fn ezflt_resume_of_a_run_directory_continues_it_from_its_checkpoint() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = common::small_run(tmp.path());
    let steps = common::summary(&run)["steps"].clone();
    let out = ezflt(tmp.path()).args(["resume", "run"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Resume: run at epoch 2"), "{text}");
    assert_eq!(common::summary(&run)["status"], "completed");
    assert_eq!(common::summary(&run)["steps"], steps);
    ezflt(tmp.path())
        .args(["resume", "nowhere"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("not an ezflt run directory"));
}

/// Settings are typed with one source of defaults, ezflt's embedded `conf/`: a user's own
/// `conf/` may leave keys out (the embedded file of the same option fills them in, as Hydra's
/// schema does), but a misspelt key or a wrong type is an error naming the file and line.
#[test]
fn a_users_own_conf_gets_left_out_keys_from_ezflts_and_misspelt_keys_are_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let conf = tmp.path().join("conf");
    std::fs::create_dir_all(conf.join("model")).unwrap();
    std::fs::create_dir_all(conf.join("data")).unwrap();
    let write = |p: &str, t: &str| std::fs::write(conf.join(p), t).unwrap();
    write(
        "config.yaml",
        "defaults:\n  - model: mlp\n  - data: xor\n  - _self_\nepochs: 2\n",
    );
    write("model/mlp.yaml", "name: mlp\nwidths: [8]\n");
    write("data/xor.yaml", "name: xor\nn_train: 64\n");
    ezflt(tmp.path())
        .args(["train", "hydra.run.dir=run", "+threads=1"])
        .assert()
        .success();
    let s = summary(&tmp.path().join("run"));
    assert_eq!(s["status"], "completed", "{s}");
    // lr, batch_size, the optimizer, tracker and plots all came from the embedded conf/.
    assert!(tmp.path().join("run/features.npz").is_file());
    assert!(tmp.path().join("run/plots").is_dir());

    write("model/mlp.yaml", "name: mlp\nwidht: [8]\n");
    let out = ezflt(tmp.path())
        .args(["train", "hydra.run.dir=bad"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let e = String::from_utf8_lossy(&out);
    assert!(
        e.contains("config key 'model.widht'")
            && e.contains("model/mlp.yaml:2")
            && e.contains("Did you mean 'widths'?"),
        "{e}"
    );
    write("model/mlp.yaml", "name: mlp\nwidths: [8]\nbias: maybe\n");
    let out = ezflt(tmp.path())
        .args(["train", "hydra.run.dir=bad"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let e = String::from_utf8_lossy(&out);
    assert!(
        e.contains("config key 'model.bias'") && e.contains("model/mlp.yaml:3"),
        "{e}"
    );
    assert!(!tmp.path().join("bad").exists());
}

/// `dtype=f64` trains in float64: updates far below float32's resolution (lr 1e-9 on weights
/// of order 0.1) leave a float32 run's weights, and so its loss, exactly unchanged, while the
/// float64 run's loss falls at every step.
#[test]
fn float64_resolves_updates_below_float32s_resolution() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The LibTorch build checks its backend too.
    let backend = if cfg!(feature = "tch") { "tch" } else { "flex" };
    let losses = |dtype: &str| -> Vec<f64> {
        let dir = format!("run_{dtype}");
        ezflt(tmp.path())
            .args([
                "-q",
                "train",
                "model.widths=[16]",
                "lr=1e-9",
                "batch_size=full",
                "epochs=6",
                "log_every=1",
                "plot=none",
                "threads=1",
            ])
            .arg(format!("dtype={dtype}"))
            .arg(format!("backend={backend}"))
            .arg(format!("hydra.run.dir={dir}"))
            .assert()
            .success();
        let s = summary(&tmp.path().join(&dir));
        assert_eq!(s["dtype"], dtype, "{s}");
        rows(&tmp.path().join(&dir))
            .iter()
            .filter(|r| r.get("test_loss").is_none())
            .filter_map(|r| r.get("train_loss")?.as_f64())
            .collect()
    };
    let single = losses("f32");
    assert!(single.len() >= 6, "{single:?}");
    assert!(single.windows(2).all(|w| w[0] == w[1]), "f32: {single:?}");
    let double = losses("f64");
    assert!(double.len() >= 6, "{double:?}");
    assert!(double.windows(2).all(|w| w[1] < w[0]), "f64: {double:?}");
    // The same model and data: the two start at the same loss to float32 precision.
    assert!(
        (double[0] - single[0]).abs() < 1e-6 * single[0],
        "{double:?} {single:?}"
    );
    ezflt(tmp.path())
        .args(["train", "dtype=f16"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("config key 'dtype'")
                .and(predicate::str::contains("f32, f64")),
        );
}
