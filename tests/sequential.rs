//! `model=sequential` end to end: architectures written in config train, their parameters
//! carry PyTorch's `nn.Sequential` names, the default reproduces `model=mlp` exactly, and a
//! layer that does not fit is named with its shapes before anything runs.

use predicates::prelude::*;
use std::path::Path;

mod common;
use common::ezflt;

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// The losses of a run's metrics rows, in order.
fn losses(dir: &Path) -> Vec<f64> {
    common::rows(dir)
        .iter()
        .filter_map(|r| r.get("train_loss")?.as_f64())
        .collect()
}

#[test]
fn sequential_reproduces_mlp_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let run = |dir: &str, args: &[&str]| {
        ezflt(t)
            .args(["-q", "train", "epochs=2", "threads=1", "plot=none"])
            .arg(format!("hydra.run.dir={dir}"))
            .args(args)
            .assert()
            .success();
    };
    // PyTorch's default initialisation, and a small normal one.
    run("mlp", &["model=mlp"]);
    run("seq", &["model=sequential"]);
    run("mlp_n", &["model=mlp", "model.init_scale=0.05"]);
    run("seq_n", &["model=sequential", "model.init=0.05"]);
    for (a, b) in [("mlp", "seq"), ("mlp_n", "seq_n")] {
        let (la, lb) = (losses(&t.join(a)), losses(&t.join(b)));
        assert!(!la.is_empty());
        assert_eq!(la, lb, "{a} vs {b}");
        let wa = ezflt::Archive::open(t.join(a))
            .unwrap()
            .feature("layers.0.weight")
            .unwrap();
        let wb = ezflt::Archive::open(t.join(b))
            .unwrap()
            .feature("0.weight")
            .unwrap();
        assert_eq!(wa.len(), wb.len());
        for (x, y) in wa.iter().zip(wb.iter()) {
            assert_eq!(x.step, y.step);
            assert_eq!(x.values, y.values, "{a} vs {b} at step {}", x.step);
        }
    }
}

#[test]
fn a_convnet_from_a_users_conf_file_trains_with_pytorch_names() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir_all(t.join("my_conf/model")).unwrap();
    std::fs::write(
        t.join("my_conf/model/small_convnet.yaml"),
        "name: sequential
layers:
  - reshape: [1, 8, 8]
  - conv2d: {out: 4, kernel: 3, padding: 1}
  - relu
  - maxpool2d: 2
  - flatten
  - residual: [{linear: 64}, gelu]
  - layer_norm
  - dropout: 0.1
  - linear: out
",
    )
    .unwrap();
    ezflt(t)
        .args([
            "-q",
            "train",
            "--config-dir",
            "my_conf",
            "model=small_convnet",
            "data=digits",
            "epochs=3",
            "threads=1",
            "optimizer=adam",
            "lr=3e-3",
            "hydra.run.dir=run",
            "tracker.layers=[1.weight,5.0.weight]",
        ])
        .assert()
        .success();
    let s = summary(&t.join("run"));
    assert_eq!(s["status"], "completed", "{s}");
    let params = &s["params"];
    assert_eq!(params["1.weight"], serde_json::json!([4, 1, 3, 3]), "{s}");
    assert_eq!(params["5.0.weight"], serde_json::json!([64, 64]), "{s}");
    assert_eq!(params["6.weight"], serde_json::json!([64]), "{s}");
    assert_eq!(params["8.weight"], serde_json::json!([10, 64]), "{s}");
    let acc = s["final"]["test_acc"].as_f64().unwrap();
    assert!(acc > 0.5, "digits are learned: test_acc {acc}");
    let mut ar = ezflt::Archive::open(t.join("run")).unwrap();
    assert_eq!(ar.names(), ["1.weight", "5.0.weight"]);
    assert!(ar.feature("1.weight").unwrap().len() > 2);
}

#[test]
fn layers_that_do_not_fit_are_named_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let fails = |layers: &str| {
        let out = ezflt(t)
            .args(["train", "model=sequential", "hydra.run.dir=bad"])
            .arg(format!("model.layers={layers}"))
            .assert()
            .code(1)
            .get_output()
            .stderr
            .clone();
        String::from_utf8_lossy(&out).to_string()
    };
    let e = fails("[{conv2d: {out: 4, kernel: 3}}, flatten, {linear: out}]");
    assert!(
        e.contains(
            "model.layers[0] (conv2d): needs samples of shape [channels, height, width], gets [20]"
        ),
        "{e}"
    );
    let e = fails("[{linear: 8}, rleu, {linear: out}]");
    assert!(
        e.contains("config key 'model.layers.1'")
            && e.contains("command-line override")
            && e.contains("Did you mean 'relu'?"),
        "{e}"
    );
    let e = fails("[{linear: 8}, relu]");
    assert!(
        e.contains("the last layer gives samples of shape [8], but the task needs [3]"),
        "{e}"
    );
    let e = fails("[{residual: [{linear: 4}]}, {linear: out}]");
    assert!(
        e.contains("model.layers[0] (residual): its block maps [20] to [4]"),
        "{e}"
    );
    assert!(!t.join("bad").exists(), "nothing ran");
    ezflt(t)
        .args(["train", "model=sequential", "model.layers=[]"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("at least one layer"));
}

/// `batch_norm` normalises in training and keeps running statistics (PyTorch's names:
/// `1.weight`, `1.bias`, `1.running_mean`, `1.running_var`), which move from 0 and 1.
#[test]
fn batch_norm_trains_and_keeps_running_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ezflt(t)
        .args([
            "-q",
            "train",
            "model=sequential",
            "model.layers=[{linear: 32}, batch_norm, relu, {linear: out}]",
            "epochs=5",
            "threads=1",
            "tracker.layers=[1.*]",
            "hydra.run.dir=bn",
        ])
        .assert()
        .success();
    let s = summary(&t.join("bn"));
    for p in ["1.weight", "1.bias", "1.running_mean", "1.running_var"] {
        assert_eq!(s["params"][p], serde_json::json!([32]), "{p}: {s}");
    }
    assert!(s["final"]["test_acc"].as_f64().unwrap() > 0.6, "{s}");
    let mut ar = ezflt::Archive::open(t.join("bn")).unwrap();
    let mean = ar.feature("1.running_mean").unwrap();
    assert!(mean.get(0).values.iter().all(|v| *v == 0.0), "starts at 0");
    assert!(
        mean.latest().unwrap().values.iter().any(|v| v.abs() > 1e-3),
        "running means follow the batches"
    );
    let var = ar.feature("1.running_var").unwrap();
    assert!(var.get(0).values.iter().all(|v| *v == 1.0), "starts at 1");
}

/// `embedding` reads its inputs as token ids (PyTorch's `nn.Embedding`, `0.weight`
/// `[num, dim]`): the recorded output of layer 0 is the table's rows for the probe's ids,
/// and ids out of range or not whole are named before anything runs.
#[test]
fn embedding_looks_up_token_ids_checked_before_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Modular addition mod 11 as token pairs (a, b) -> (a + b) mod 11.
    let p = 11i64;
    let (mut x, mut y) = (vec![], vec![]);
    for a in 0..p {
        for b in 0..p {
            x.extend([a, b]);
            y.push((a + b) % p);
        }
    }
    let n = y.len();
    common::write_npz(
        &t.join("tokens.npz"),
        &[
            ("x", common::npy("<i8", &[n, 2], &common::i64_bytes(&x))),
            ("y", common::npy("<i8", &[n], &common::i64_bytes(&y))),
        ],
    );
    let run = |layers: &str, file: &str, dir: &str| {
        ezflt(t)
            .args([
                "-q",
                "train",
                "model=sequential",
                "data=numpy",
                "data.x_key=x",
                "data.y_key=y",
                "epochs=150",
                "batch_size=full",
                "optimizer=adam",
                "lr=1e-2",
                "threads=1",
                "tracker.layers=[0.weight]",
                "tracker.activations=[0]",
                "tracker.probe_size=20",
            ])
            .arg(format!("data.path={file}"))
            .arg(format!("model.layers={layers}"))
            .arg(format!("hydra.run.dir={dir}"))
            .assert()
    };
    let net = "[{embedding: {num: 11, dim: 16}}, flatten, {linear: 64}, relu, {linear: out}]";
    run(net, "tokens.npz", "emb").success();
    let s = summary(&t.join("emb"));
    assert_eq!(s["params"]["0.weight"], serde_json::json!([11, 16]), "{s}");
    assert_eq!(s["params"]["2.weight"], serde_json::json!([64, 32]), "{s}");
    let l = losses(&t.join("emb"));
    assert!(l[l.len() - 1] < l[0] / 10.0, "the table is learned: {l:?}");
    common::numpy_check(
        &t.join("emb/features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
ids = z["probe.x"]
assert ids.shape == (20, 2) and np.all(ids == np.round(ids)), ids
T = z["step"].shape[0]
for t in [0, T - 1]:
    W = z["0.weight"][t]
    want = W[ids.astype(int)].reshape(20, 32)
    assert np.allclose(z["act.0"][t], want, atol=1e-6), t
# PyTorch's default init of an embedding is N(0, 1).
assert 0.7 < z["0.weight"][0].std() < 1.3, z["0.weight"][0].std()
"#,
    );

    // An id past the table, a value that is no id, an embedding that is not first.
    let e = run(
        "[{embedding: {num: 10, dim: 4}}, flatten, {linear: out}]",
        "tokens.npz",
        "bad",
    )
    .code(1)
    .get_output()
    .stderr
    .clone();
    let e = String::from_utf8_lossy(&e);
    assert!(
        e.contains("model.layers[0] (embedding) looks up integer ids in 0..9, but the")
            && e.contains("hold 10 at sample")
            && e.contains("raise the embedding's num"),
        "{e}"
    );
    let halves: Vec<f32> = x.iter().map(|&v| v as f32 + 0.5).collect();
    common::write_npz(
        &t.join("floats.npz"),
        &[
            (
                "x",
                common::npy("<f4", &[n, 2], &common::f32_bytes(&halves)),
            ),
            ("y", common::npy("<i8", &[n], &common::i64_bytes(&y))),
        ],
    );
    run(net, "floats.npz", "bad").code(1).stderr(
        predicate::str::contains(".5 at sample 0, position 0").and(predicate::str::contains(
            "the inputs must be token ids (whole numbers >= 0)",
        )),
    );
    run(
        "[{linear: 4}, {embedding: {num: 3, dim: 2}}, flatten, {linear: out}]",
        "tokens.npz",
        "bad",
    )
    .code(1)
    .stderr(predicate::str::contains(
        "model.layers[1] (embedding): looks up integer ids, so it must be the model's first layer",
    ));
    assert!(!t.join("bad").exists(), "nothing ran");
}

/// `ezflt train` of `layers` on the digits, one thread, no figures or tracking, into `dir`.
fn train_digits(t: &Path, layers: &str, dir: &str, args: &[&str]) {
    ezflt(t)
        .args([
            "-q",
            "train",
            "model=sequential",
            "data=digits",
            "threads=1",
        ])
        .args(["plot=none", "tracker=none"])
        .arg(format!("model.layers={layers}"))
        .arg(format!("hydra.run.dir={dir}"))
        .args(args)
        .assert()
        .success();
}

/// Dropout's masks follow the seed, and a checkpoint keeps how far each layer's stream
/// has drawn: stopped after 2 epochs and resumed to 4, a run ends where 4 unbroken epochs do.
#[test]
fn dropout_masks_follow_the_seed_and_continue_across_a_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layers = "[flatten, {linear: 32}, relu, {dropout: 0.3}, \
                  {residual: [{linear: 32}, {dropout: 0.2}]}, {linear: out}]";
    let run = |dir: &str, args: &[&str]| train_digits(t, layers, dir, args);
    run("whole", &["epochs=4"]);
    run("again", &["epochs=4"]);
    run("other", &["epochs=4", "seed=1"]);
    run("cut", &["epochs=2"]);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.join("cut/checkpoint/state.json")).unwrap(),
    )
    .unwrap();
    let steps = summary(&t.join("cut"))["steps"].as_u64().unwrap();
    // One mask a training step for each of the two dropout layers.
    assert_eq!(
        state["streams"],
        serde_json::json!([steps, steps]),
        "{state}"
    );
    ezflt(t)
        .args(["-q", "train", "resume=cut", "epochs=4"])
        .assert()
        .success();
    let final_ = |d: &str| summary(&t.join(d))["final"].clone();
    assert_eq!(losses(&t.join("whole")), losses(&t.join("again")));
    assert_ne!(losses(&t.join("whole")), losses(&t.join("other")));
    assert_eq!(final_("whole"), final_("cut"));
}

/// Robust evaluation attacks the model in eval mode, as PyTorch's after `model.eval()`: no
/// dropout masks drawn, batch norm on its running statistics (the test split's adversarial
/// batches never move them). So a run that only evaluates under attack trains exactly as
/// one without the attack.
#[test]
fn robust_evaluation_attacks_in_eval_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let layers = "[{reshape: [4, 16]}, batch_norm, flatten, {linear: 32}, relu, \
                  {dropout: 0.3}, {linear: out}]";
    let run = |dir: &str, adv: &[&str]| {
        train_digits(t, layers, dir, &[&["epochs=3"], adv].concat());
    };
    run("clean", &[]);
    run(
        "attacked",
        &["adv=pgd", "adv.train=false", "adv.eval_steps=3"],
    );
    let (c, a) = (summary(&t.join("clean")), summary(&t.join("attacked")));
    assert!(a["final"]["robust_acc"].is_number(), "{a}");
    for k in ["train_loss", "train_acc", "test_loss", "test_acc"] {
        assert_eq!(c["final"][k], a["final"][k], "{k}");
    }
    assert_eq!(losses(&t.join("clean")), losses(&t.join("attacked")));
}
