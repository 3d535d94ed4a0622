//! Batched sweeps end to end: jobs that share a shape train as one stacked model, and each
//! member's run directory holds what the job alone writes (`hydra.launcher.batch=off`).

use predicates::prelude::*;
use serde_json::Value;
use std::path::Path;

mod common;
use common::{ezflt, rows, summary};

/// Runs the sweep `args` twice, batched (`batch`) and not, into `b` and `o`.
fn both(tmp: &Path, args: &[&str], batch: &str) {
    for (dir, b) in [("b", batch), ("o", "off")] {
        let mut a = vec![
            "-m".to_string(),
            format!("hydra.sweep.dir={dir}"),
            format!("hydra.launcher.batch={b}"),
        ];
        a.extend(args.iter().map(|s| s.to_string()));
        ezflt(tmp).args(&a).assert().success();
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1e-3)
}

/// Every logged value of job `j` agrees between the batched and the unbatched sweep (wall
/// times aside), and so do the summaries' final and best values.
fn same_run(tmp: &Path, j: usize) {
    let (b, o) = (tmp.join(format!("b/{j}")), tmp.join(format!("o/{j}")));
    let (rb, ro) = (rows(&b), rows(&o));
    assert_eq!(rb.len(), ro.len(), "job {j}: metrics rows");
    for (x, y) in rb.iter().zip(&ro) {
        for (k, v) in y.as_object().unwrap() {
            if k == "time_s" {
                continue;
            }
            match (v.as_f64(), x[k].as_f64()) {
                (Some(v), Some(w)) => assert!(close(v, w), "job {j} {k}: {w} batched, {v} alone"),
                _ => assert_eq!(&x[k], v, "job {j} {k}"),
            }
        }
    }
    let (sb, so) = (summary(&b), summary(&o));
    for part in ["final", "best"] {
        for (k, v) in so[part].as_object().unwrap() {
            let w = sb[part][k].as_f64().unwrap_or(f64::NAN);
            assert!(close(v.as_f64().unwrap(), w), "job {j} {part}.{k}");
        }
    }
    for k in ["status", "steps", "epochs", "seed", "params", "num_params"] {
        assert_eq!(sb[k], so[k], "job {j} {k}");
    }
    assert!(so.get("batched").is_none(), "batch=off never batches");
    let npz = o.join("features.npz");
    assert_eq!(b.join("features.npz").is_file(), npz.is_file(), "job {j}");
    if !npz.is_file() {
        return;
    }
    // The tracked weights, every snapshot, in numpy.
    common::numpy_check(
        &b.join("features.npz"),
        &format!(
            "import sys, numpy as np\n\
             a = np.load(sys.argv[1]); o = np.load('{}')\n\
             assert sorted(a.files) == sorted(o.files), (a.files, o.files)\n\
             for k in o.files:\n\
             \x20   if o[k].dtype.kind == 'f':\n\
             \x20       np.testing.assert_allclose(a[k], o[k], rtol=1e-5, atol=1e-7, err_msg=k)\n\
             \x20   else:\n\
             \x20       assert (a[k] == o[k]).all(), k\n",
            o.join("features.npz").display()
        ),
    );
}

fn batched(run: &Path) -> Option<Vec<u64>> {
    summary(run).get("batched").map(|b| {
        b["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    })
}

#[test]
fn a_sweep_of_seeds_and_learning_rates_trains_batched_and_matches_each_job_alone() {
    let tmp = tempfile::tempdir().unwrap();
    // 8 jobs on 2 workers: two batches of 4, each member with its own seed, data, lr and
    // weight decay.
    both(
        tmp.path(),
        &[
            "hydra.launcher.n_jobs=2",
            "seed=0,1,2,3",
            "lr=0.05,0.2",
            "optimizer.weight_decay=0.01",
            "epochs=3",
            "plot=none",
        ],
        "auto",
    );
    let t = tmp.path();
    assert_eq!(batched(&t.join("b/0")), Some(vec![0, 1, 2, 3]));
    assert_eq!(batched(&t.join("b/7")), Some(vec![4, 5, 6, 7]));
    for j in 0..8 {
        same_run(t, j);
        assert!(t.join(format!("b/{j}/checkpoint")).is_dir(), "job {j}");
    }
    // A batched job's checkpoint is its own: it continues alone for more epochs, exactly as
    // the job that trained alone does.
    for s in ["b", "o"] {
        ezflt(t)
            .args(["train", &format!("resume={s}/5"), "epochs=4"])
            .assert()
            .success();
    }
    assert_eq!(summary(&t.join("b/5"))["epochs"], 4);
    same_run(t, 5);
    // `status` and the sweep records see ordinary jobs.
    ezflt(t)
        .args(["status", "b"])
        .assert()
        .success()
        .stdout(predicate::str::contains("8 job(s): 8 completed"));
}

#[test]
fn two_layer_cnns_with_different_snrs_batch_and_match() {
    let tmp = tempfile::tempdir().unwrap();
    both(
        tmp.path(),
        &[
            "experiment=benign_overfitting",
            "data.n_test=200",
            "epochs=40",
            "data.snr=0.3,0.8",
            "seed=0,1",
            "hydra.launcher.n_jobs=1",
        ],
        // `auto` stacks only the MLP (where it measured faster): ask for batches of 4.
        "4",
    );
    // `hydra/launcher=batched`: one worker, every model with a batched form, all four.
    ezflt(tmp.path())
        .args([
            "-m",
            "hydra/launcher=batched",
            "hydra.sweep.dir=l",
            "experiment=benign_overfitting",
            "data.n_test=200",
            "epochs=40",
            "data.snr=0.3,0.8",
            "seed=0,1",
        ])
        .assert()
        .success();
    assert_eq!(batched(&tmp.path().join("l/3")), Some(vec![0, 1, 2, 3]));
    assert_eq!(batched(&tmp.path().join("b/2")), Some(vec![0, 1, 2, 3]));
    for j in 0..4 {
        same_run(tmp.path(), j);
    }
    // End-of-run figures are drawn for every member.
    assert!(tmp.path().join("b/3/plots/curves.png").is_file());
}

#[test]
fn every_optimizer_trains_batched_matches_each_job_alone_and_resumes_alone() {
    // Momentum and Adam keep state per member; float64 checks the per-member decay rounds
    // as burn's does.
    // Momentum, betas and eps may differ per member too.
    for opt in [
        // Momentum per member, 0 (plain SGD) among them; dampening too.
        &[
            "optimizer.momentum=0.9,0",
            "optimizer.dampening=0.1",
            "optimizer.weight_decay=0.001",
            // Each member's own gradients, sliced from the stacked ones.
            "tracker.track_gradients=true",
        ][..],
        &[
            "optimizer.momentum=0.5,0.9",
            "optimizer.nesterov=true",
            "optimizer.weight_decay=0.01",
        ],
        &[
            "optimizer=adam",
            "lr=0.01",
            "optimizer.betas=[0.9,0.999],[0.5,0.99]",
            "optimizer.weight_decay=0.01",
        ],
        &[
            "optimizer=adamw",
            "lr=0.01",
            "optimizer.eps=1e-8,1e-4",
            "optimizer.weight_decay=0.05",
            "dtype=f64",
        ],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let mut args = vec![
            "seed=0,1",
            "epochs=2",
            "plot=none",
            "hydra.launcher.n_jobs=1",
        ];
        args.extend(opt);
        both(t, &args, "auto");
        assert_eq!(batched(&t.join("b/3")), Some(vec![0, 1, 2, 3]), "{opt:?}");
        for j in 0..4 {
            same_run(t, j);
        }
        // The member's optimizer state went into its checkpoint: it continues alone exactly
        // as the job that trained alone does.
        for s in ["b", "o"] {
            ezflt(t)
                .args(["train", &format!("resume={s}/3"), "epochs=3"])
                .assert()
                .success();
        }
        same_run(t, 3);
    }
}

#[test]
fn image_cnns_and_conv_autoencoders_batch_and_match() {
    // The CNN's members run as one grouped convolution; `auto` leaves both to run alone.
    for (args, batch) in [
        (
            &[
                "model=cnn",
                "data=digits",
                "seed=0,1",
                "lr=0.05,0.1",
                "epochs=2",
                "optimizer.momentum=0.9",
            ][..],
            "4",
        ),
        (
            &[
                "experiment=cae_anomaly",
                "data.n_train=200",
                "data.n_test=100",
                "epochs=60",
                "seed=0,1,2",
            ],
            "3",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let mut a = vec!["hydra.launcher.n_jobs=1", "plot=none"];
        a.extend(args);
        both(t, &a, batch);
        let n: usize = batch.parse().unwrap();
        assert_eq!(
            batched(&t.join("b/0")),
            Some((0..n as u64).collect()),
            "{args:?}"
        );
        for j in 0..n {
            same_run(t, j);
        }
    }
}

#[test]
fn adversarial_training_batches_with_a_radius_per_member() {
    // Feature purification in miniature (MLP, Adam, l2 PGD with robust evaluation), and FGSM
    // in l_inf: each member attacked with its own radius and step size.
    for args in [
        &[
            "experiment=purification",
            "data.n_train=400",
            "data.n_test=200",
            "epochs=2",
            "eval_every=1",
            "adv.eps=0.1,0.3",
        ][..],
        &["adv=fgsm", "adv.norm=linf", "adv.eps=0.05,0.2", "epochs=2"],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let mut a = vec!["hydra.launcher.n_jobs=1", "plot=none", "seed=0,1"];
        a.extend(args);
        both(t, &a, "auto");
        assert_eq!(batched(&t.join("b/3")), Some(vec![0, 1, 2, 3]), "{args:?}");
        for j in 0..4 {
            same_run(t, j);
        }
        assert!(summary(&t.join("b/3"))["final"]["robust_acc"].is_number());
    }
}

#[test]
fn every_built_in_model_isolates_a_diverging_member_and_resumes_alone() {
    // lr=1e9 sends member 1 to infinity; members 0 and 2 go on, and member 2's checkpoint
    // continues alone exactly as the job alone's does.
    for model in [
        &["loss=mse"][..],
        &[
            "experiment=benign_overfitting",
            "data.n_test=100",
            "loss=mse",
        ],
        &[
            "experiment=lazy_rich",
            "model.width=20",
            "data.n_train=100",
            "data.n_test=100",
        ],
        &["model=cnn", "data=digits", "loss=mse"],
        &[
            "experiment=cae_anomaly",
            "data.n_train=200",
            "data.n_test=100",
        ],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        for (dir, b) in [("b", "3"), ("o", "off")] {
            ezflt(t)
                .args([
                    "-m",
                    &format!("hydra.sweep.dir={dir}"),
                    &format!("hydra.launcher.batch={b}"),
                    "hydra.launcher.n_jobs=1",
                    "plot=none",
                    "epochs=4",
                    "lr=0.01,1e9,0.02",
                ])
                .args(model)
                .assert()
                .failure()
                .stderr(predicate::str::contains("#1 diverged"));
        }
        assert_eq!(batched(&t.join("b/0")), Some(vec![0, 1, 2]), "{model:?}");
        let (b, o) = (summary(&t.join("b/1")), summary(&t.join("o/1")));
        assert_eq!(b["status"], "diverged", "{model:?}");
        assert_eq!(
            b["steps"], o["steps"],
            "{model:?}: it stops at the same step"
        );
        assert_eq!(b["error"], o["error"], "{model:?}");
        for j in [0, 2] {
            same_run(t, j);
        }
        for s in ["b", "o"] {
            ezflt(t)
                .args(["train", &format!("resume={s}/2"), "epochs=6"])
                .assert()
                .success();
        }
        same_run(t, 2);
    }
}

#[test]
fn sequential_models_batch_layer_by_layer_and_match() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Token pairs (a, b) -> (a + b) mod 7, for the embedding.
    let (mut x, mut y) = (vec![], vec![]);
    for a in 0..7i64 {
        for b in 0..7 {
            x.extend([a, b]);
            y.push((a + b) % 7);
        }
    }
    common::write_npz(
        &t.join("tokens.npz"),
        &[
            ("x", common::npy("<i8", &[49, 2], &common::i64_bytes(&x))),
            ("y", common::npy("<i8", &[49], &common::i64_bytes(&y))),
        ],
    );
    let tokens = format!("data.path={}", t.join("tokens.npz").display());
    for (i, (layers, data)) in [
        (
            // Dropout: each member's masks from its own stream, as its run draws them.
            "[{reshape: [1, 8, 8]}, {conv2d: {out: 4, kernel: 3, padding: 1}}, relu, \
             {dropout: 0.2}, {maxpool2d: 2}, flatten, \
             {residual: [{linear: 64}, gelu, {dropout: 0.1}]}, layer_norm, {linear: out}]",
            vec!["data=digits"],
        ),
        (
            "[{reshape: [1, 64]}, {conv1d: {out: 3, kernel: 5, stride: 2}}, tanh, \
             {avgpool1d: 2}, flatten, {linear: {out: out, bias: false}}]",
            vec!["data=digits"],
        ),
        (
            // Batch norm: each member's statistics its own (running ones in the checkpoint).
            "[{reshape: [4, 16]}, batch_norm, flatten, {linear: 16}, batch_norm, relu, \
             {linear: out}]",
            vec!["data=digits", "tracker.layers=[1.*,3.*]"],
        ),
        (
            "[{embedding: {num: 7, dim: 8}}, flatten, {linear: 32}, relu, {dropout: 0.5}, \
             {linear: out}]",
            vec!["data=numpy", "data.x_key=x", "data.y_key=y", &tokens],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = t.join(format!("m{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let layers = format!("model.layers={layers}");
        let mut a = vec![
            "model=sequential",
            layers.as_str(),
            "hydra.launcher.n_jobs=1",
            "plot=none",
            "epochs=3",
            "seed=0,1",
            "lr=0.05,0.1",
            "tracker.activations=[0]",
        ];
        a.extend(data.iter().map(|s| &**s));
        both(&dir, &a, "4");
        assert_eq!(
            batched(&dir.join("b/3")),
            Some(vec![0, 1, 2, 3]),
            "{layers}"
        );
        for j in 0..4 {
            same_run(&dir, j);
        }
    }
}

#[test]
fn members_start_from_a_state_dict_and_keep_frozen_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // The default MLP's weights from a file; the first layer's bias frozen.
    let shapes = [
        ("layers.0.weight", vec![64, 20]),
        ("layers.0.bias", vec![64]),
        ("layers.1.weight", vec![3, 64]),
        ("layers.1.bias", vec![3]),
    ];
    let bytes: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, s)| {
            (0..s.iter().product::<usize>())
                .flat_map(|i| ((i as f32 * 0.37).sin() * 0.2).to_le_bytes())
                .collect()
        })
        .collect();
    let views: Vec<_> = shapes
        .iter()
        .zip(&bytes)
        .map(|((n, s), b)| {
            (
                *n,
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(
        t.join("w.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    let init = format!("model.init_from={}", t.join("w.safetensors").display());
    both(
        t,
        &[
            "hydra.launcher.n_jobs=1",
            &init,
            "model.freeze=[layers.0.bias]",
            "seed=0,1",
            "lr=0.05,0.1",
            "epochs=2",
            "plot=none",
        ],
        "auto",
    );
    assert_eq!(batched(&t.join("b/3")), Some(vec![0, 1, 2, 3]));
    for j in 0..4 {
        same_run(t, j);
    }
    // Each member's log says what the job alone says.
    let said = |d: &str| {
        std::fs::read_to_string(t.join(d).join("train.log"))
            .unwrap()
            .lines()
            .find(|l| l.contains("training "))
            .map(|l| l[l.find("training ").unwrap()..].to_string())
            .unwrap()
    };
    assert_eq!(said("b/2"), said("o/2"));
    assert!(said("b/2").contains("(64 frozen) from "), "{}", said("b/2"));
}

#[test]
fn online_data_members_draw_their_own_fresh_samples_each_epoch() {
    // Sparse parity (a sequential MLP, hinge loss, weight decay, early stopping) on fresh
    // samples every epoch, each member from its own stream.
    let tmp = tempfile::tempdir().unwrap();
    both(
        tmp.path(),
        &[
            "experiment=sparse_parity",
            "epochs=4",
            "seed=0,1,2",
            "hydra.launcher.n_jobs=1",
            "plot=none",
        ],
        "auto",
    );
    assert_eq!(batched(&tmp.path().join("b/2")), Some(vec![0, 1, 2]));
    for j in 0..3 {
        same_run(tmp.path(), j);
    }
}

#[test]
fn jobs_of_different_shapes_batch_apart_and_a_limit_splits_a_batch() {
    let tmp = tempfile::tempdir().unwrap();
    // Widths set a shape: {0, 2, 4} have width 8 and {1, 3, 5} width 16; at most 2 a batch.
    both(
        tmp.path(),
        &[
            "seed=0,1,2",
            "model.widths=[8],[16]",
            "epochs=2",
            "plot=none",
            "tracker=none",
        ],
        "2",
    );
    let t = tmp.path();
    assert_eq!(batched(&t.join("b/0")), Some(vec![0, 2]));
    assert_eq!(batched(&t.join("b/2")), Some(vec![0, 2]));
    assert_eq!(
        batched(&t.join("b/4")),
        None,
        "a batch of one is a job alone"
    );
    assert_eq!(batched(&t.join("b/3")), Some(vec![1, 3]));
    for j in 0..6 {
        same_run(t, j);
    }
}

#[test]
fn jobs_that_cannot_batch_train_alone_and_the_sweep_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "-m",
        "hydra.launcher.n_jobs=1",
        "model=sequential",
        "model.layers=[flatten, {linear: 16}, relu, {linear: out}]",
        "data=digits",
        // A float, so the jobs share a batch key; but their test splits differ in size.
        "data.test_fraction=0.2,0.3",
        "epochs=2",
        "plot=none",
    ];
    ezflt(tmp.path())
        .args(args)
        .arg("hydra.sweep.dir=b")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "#0-#1 trained one by one: the jobs' data differ in shape (sample shape, task, \
             split sizes)",
        ));
    ezflt(tmp.path())
        .args(args)
        .args(["hydra.sweep.dir=o", "hydra.launcher.batch=off"])
        .assert()
        .success();
    // Trained one by one in the batch's worker, each job is exactly the job alone.
    for j in 0..2 {
        let s = summary(&tmp.path().join(format!("b/{j}")));
        assert_eq!(s["status"], "completed");
        assert!(s.get("batched").is_none());
        same_run(tmp.path(), j);
    }
    // `auto` leaves models it does not stack faster to run alone, without a word.
    ezflt(tmp.path())
        .args([
            "-m",
            "hydra.sweep.dir=cnn",
            "hydra.launcher.n_jobs=1",
            "experiment=benign_overfitting",
            "epochs=5",
            "seed=0,1",
            "plot=none",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("one by one").not());
    assert!(summary(&tmp.path().join("cnn/1")).get("batched").is_none());
}

#[cfg(unix)]
#[test]
fn a_stopped_batch_checkpoints_every_member_and_resume_ends_where_an_unbroken_sweep_does() {
    // The basic launcher trains the batch in the sweep's own process, so SIGTERM reaches it.
    let args = [
        "-m",
        "hydra/launcher=basic",
        "seed=0,1,2",
        "lr=0.05,0.1",
        "data=xor",
        "data.n_train=256",
        "batch_size=16",
        "max_steps=8000",
        "epochs=100000",
        "eval_every=100000",
        "log_every=1",
        "plot=none",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ezflt(t)
        .args(args)
        .arg("hydra.sweep.dir=whole")
        .assert()
        .success();
    assert_eq!(batched(&t.join("whole/5")).map(|m| m.len()), Some(6));
    let mut child = common::ezflt_cmd(t)
        .args(args)
        .arg("hydra.sweep.dir=cut")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let m = t.join("cut/0/metrics.jsonl");
    common::wait_until("some training", 120, &mut child, || {
        std::fs::read_to_string(&m).map_or(0, |t| t.lines().count()) >= 100
    });
    common::signal(child.id(), "TERM");
    // A sweep with jobs that did not complete exits 1.
    assert_eq!(common::wait_exit(&mut child, 60).code(), Some(1));
    // Every member stopped at the same batch, with its own checkpoint there.
    let steps = summary(&t.join("cut/0"))["steps"].clone();
    for j in 0..6 {
        let run = t.join(format!("cut/{j}"));
        let s = summary(&run);
        assert_eq!(s["status"], "interrupted", "job {j}");
        assert_eq!(s["steps"], steps, "job {j}");
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(state["step"], steps, "job {j}");
    }
    // Each continues alone from its checkpoint and ends where the unbroken sweep's member did.
    ezflt(t).args(["resume", "cut"]).assert().success();
    for j in 0..6 {
        let (c, w) = (t.join(format!("cut/{j}")), t.join(format!("whole/{j}")));
        let (sc, sw) = (summary(&c), summary(&w));
        assert_eq!(sc["status"], "completed", "job {j}");
        assert_eq!(sc["steps"], sw["steps"], "job {j}");
        for (k, v) in sw["final"].as_object().unwrap() {
            let got = sc["final"][k].as_f64().unwrap_or(f64::NAN);
            // The resumed epoch's mean train loss covers only its own batches (README).
            if k.starts_with("train_") {
                continue;
            }
            assert!(close(v.as_f64().unwrap(), got), "job {j} {k}: {got} vs {v}");
        }
        let (rc, rw) = (rows(&c), rows(&w));
        let (lc, lw) = (rc.last().unwrap(), rw.last().unwrap());
        assert_eq!(lc["step"], lw["step"]);
        assert!(
            close(
                lc["train_loss"].as_f64().unwrap(),
                lw["train_loss"].as_f64().unwrap()
            ),
            "job {j}: last step's loss"
        );
    }
}

#[test]
fn mean_field_members_in_float64_log_their_own_weight_metrics_and_stop_early_alone() {
    let tmp = tempfile::tempdir().unwrap();
    // Lazy vs rich in miniature: scale and lr differ per member (lr follows the scale through
    // the eval resolver), weight metrics from each member's own init, float64.
    both(
        tmp.path(),
        &[
            "experiment=lazy_rich",
            "model.width=20",
            "data.n_train=100",
            "data.n_test=100",
            "epochs=300",
            "model.scale=0.1,1,10",
            "seed=0,1",
            "hydra.launcher.n_jobs=1",
            "plot=none",
        ],
        "6",
    );
    let t = tmp.path();
    assert_eq!(batched(&t.join("b/4")), Some(vec![0, 1, 2, 3, 4, 5]));
    for j in 0..6 {
        same_run(t, j);
    }
    assert!(
        summary(&t.join("b/0"))["final"]["change_w"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(summary(&t.join("b/0"))["dtype"], "f64");
    // Early stopping: each member ends at its own evaluation, as it would alone.
    let tmp = tempfile::tempdir().unwrap();
    both(
        tmp.path(),
        &[
            "seed=0,1,2,3",
            "lr=0.02",
            "epochs=30",
            "early_stopping.monitor=test_acc",
            "early_stopping.stop_at=0.97",
            "hydra.launcher.n_jobs=1",
            "plot=none",
        ],
        "auto",
    );
    let t = tmp.path();
    let steps: Vec<Value> = (0..4)
        .map(|j| summary(&t.join(format!("b/{j}")))["steps"].clone())
        .collect();
    assert!(steps.iter().any(|s| s != &steps[0]), "{steps:?}");
    for j in 0..4 {
        same_run(t, j);
        let (b, o) = (
            summary(&t.join(format!("b/{j}"))),
            summary(&t.join(format!("o/{j}"))),
        );
        assert_eq!(b["stopped_early"], o["stopped_early"], "job {j}");
    }
}

/// A batched member's checkpoint keeps how far its dropout streams have drawn: members
/// batched for 2 epochs, each resumed alone to 4, end where a batched 4-epoch sweep's do.
#[test]
fn batched_dropout_members_resume_alone_with_their_own_streams() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let sweep = |dir: &str, epochs: &str| {
        ezflt(t)
            .args([
                "-m",
                "hydra.launcher.n_jobs=1",
                "model=sequential",
                "model.layers=[flatten, {linear: 32}, relu, {dropout: 0.3}, {linear: out}]",
                "data=digits",
                "seed=0,1,2",
                "plot=none",
                "tracker=none",
            ])
            .args([format!("epochs={epochs}"), format!("hydra.sweep.dir={dir}")])
            .assert()
            .success();
    };
    sweep("whole", "4");
    sweep("cut", "2");
    for j in 0..3 {
        let run = t.join(format!("cut/{j}"));
        assert_eq!(batched(&run), Some(vec![0, 1, 2]));
        ezflt(t)
            .args([
                "-q",
                "train",
                &format!("resume={}", run.display()),
                "epochs=4",
            ])
            .assert()
            .success();
        let w = summary(&t.join(format!("whole/{j}")));
        let c = summary(&run);
        for (k, v) in w["final"].as_object().unwrap() {
            let got = c["final"][k].as_f64().unwrap_or(f64::NAN);
            assert!(close(v.as_f64().unwrap(), got), "job {j} {k}: {got} vs {v}");
        }
    }
}
