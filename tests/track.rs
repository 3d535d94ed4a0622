//! Feature tracking end to end: the archive opens in numpy with the promised layout,
//! gradients match the SGD update, crashes leave a repairable spill, bad configs fail.

use predicates::prelude::*;
use std::path::{Path, PathBuf};

mod common;
use common::{ezflt, numpy_check};

fn train(tmp: &Path, args: &[&str]) -> PathBuf {
    let mut all = vec!["train", "hydra.run.dir=run", "threads=1"];
    all.extend_from_slice(args);
    ezflt(tmp).args(&all).assert().success();
    tmp.join("run")
}

#[test]
fn archive_layout_and_gradients_match_the_sgd_update() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = train(
        tmp.path(),
        &[
            "data=xor",
            "data.n_train=64",
            "model.widths=[8]",
            "epochs=3",
            "batch_size=16",
            "lr=0.1",
            "tracker.track_frequency=1",
            "tracker.track_gradients=true",
            "tracker.layers=[layers.*.weight]",
        ],
    );
    assert!(run.join("features.npz").is_file());
    assert!(!run.join("features.spill").exists());
    numpy_check(
        &run.join("features.npz"),
        r#"
import sys, json, numpy as np
z = np.load(sys.argv[1])
step, gstep = z["step"], z["grad_step"]
assert step.dtype == np.int64 and list(step) == list(range(13)), step
assert list(gstep) == list(range(12)), gstep
w = z["layers.0.weight"]; g = z["layers.0.weight.grad"]
assert w.shape == (13, 8, 2) and w.dtype == np.float32, w.shape
assert g.shape == (12, 8, 2), g.shape
assert z["layers.1.weight"].shape == (13, 1, 8)
# plain SGD: W[s+1] = W[s] - lr * grad at W[s]
err = np.abs(w[1:] - (w[:-1] - 0.1 * g)).max()
assert err < 1e-5, err
assert list(z["epoch"]) == [0] + [0]*4 + [1]*4 + [2]*4, z["epoch"]
assert list(z["batch"]) == [-1] + [0, 1, 2, 3] * 3, z["batch"]
meta = json.loads(str(z["metadata"]))
assert meta["format"] == "ezflt-features/1" and meta["complete"] is True, meta
assert meta["layers"] == ["layers.0.weight", "layers.1.weight"], meta
assert z["gt_features"].shape == (2, 2)
# alignment with the planted axes e1, e2 is the weight itself here
a = z["align.layers.0.weight.axes"]; n = z["align_norm.layers.0.weight.axes"]
assert np.allclose(a, w, atol=1e-6)
assert np.allclose(n, w / np.linalg.norm(w, axis=2, keepdims=True), atol=1e-5)
"#,
    );
}

#[test]
fn default_tracker_records_init_and_final_step_on_a_log_schedule() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = train(
        tmp.path(),
        &[
            "model=two_layer_cnn",
            "data=signal_noise",
            "data.dim=30",
            "model.init_scale=0.5",
            "batch_size=full",
            "epochs=300",
            "lr=0.01",
        ],
    );
    numpy_check(
        &run.join("features.npz"),
        r#"
import sys, json, numpy as np
z = np.load(sys.argv[1])
s = list(z["step"])
assert s[0] == 0 and s[-1] == 300 and len(s) <= 52 and s == sorted(set(s)), s
assert 1 in s and 2 in s, s   # log schedule: dense at the start
f = z["filters"]
assert f.shape == (len(s), 2, 10, 30), f.shape
# step 0 is the initialisation: N(0, 0.5^2)
assert abs(f[0].std() - 0.5) < 0.08, f[0].std()
assert z["align_norm.filters.signal"].shape == (len(s), 20, 1)
assert z["align_norm.filters.noise"].shape == (len(s), 20, 40)
assert json.loads(str(z["metadata"]))["schedule"] == "log (50 points)"
"#,
    );
    // The same seed gives the same initial snapshot.
    let tmp2 = tempfile::tempdir().expect("tmp");
    let run2 = train(
        tmp2.path(),
        &[
            "model=two_layer_cnn",
            "data=signal_noise",
            "data.dim=30",
            "model.init_scale=0.5",
            "batch_size=full",
            "epochs=3",
            "lr=0.01",
        ],
    );
    let show = |r: &Path| {
        let out = ezflt(tmp.path())
            .args([
                "inspect",
                &r.display().to_string(),
                "--tensor",
                "filters",
                "--step",
                "0",
            ])
            .output()
            .expect("inspect");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(show(&run).contains("(step 0): shape [2, 10, 30]"));
    assert_eq!(show(&run), show(&run2));
}

#[test]
fn tracker_none_writes_no_archive_and_inspect_says_so() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = train(tmp.path(), &["tracker=none", "epochs=1"]);
    assert!(!run.join("features.npz").exists());
    ezflt(tmp.path())
        .args(["inspect", "run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("features  none"))
        .stdout(predicate::str::contains("status    completed"));
}

#[test]
fn bad_tracker_config_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args(["train", "tracker.layers=[layers.0.wieght]"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "'layers.0.wieght' matches no parameter",
        ))
        .stderr(predicate::str::contains("Did you mean 'layers.0.weight'?"))
        .stderr(predicate::str::contains("layers.1.bias"));
    ezflt(tmp.path())
        .args(["train", "tracker.track_frequency=0"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("tracker.track_frequency"));
    ezflt(tmp.path())
        .args(["train", "tracker.dtype=f64"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("expected one of: f32, f16"));
    // Over budget: a warning naming the settings, and snapshots stop (the last one is kept).
    let out = ezflt(tmp.path())
        .args([
            "train",
            "hydra.run.dir=small",
            "tracker.track_frequency=1",
            "tracker.max_bytes=20000",
            "epochs=2",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("over tracker.max_bytes"))
        .stderr(predicate::str::contains("tracker.dtype=f16"));
    drop(out);
    numpy_check(
        &tmp.path().join("small/features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
s = list(z["step"])
assert 2 <= len(s) < 17 and s[-1] == 16, s
"#,
    );
}

#[test]
fn f16_halves_the_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = train(
        tmp.path(),
        &[
            "epochs=2",
            "tracker.track_frequency=1",
            "tracker.alignment=false",
        ],
    );
    let size32 = std::fs::metadata(a.join("features.npz")).unwrap().len();
    let tmp2 = tempfile::tempdir().expect("tmp");
    let b = train(
        tmp2.path(),
        &[
            "epochs=2",
            "tracker.track_frequency=1",
            "tracker.alignment=false",
            "tracker.dtype=f16",
        ],
    );
    let size16 = std::fs::metadata(b.join("features.npz")).unwrap().len();
    assert!(size16 * 10 < size32 * 6, "{size16} vs {size32}");
    numpy_check(
        &b.join("features.npz"),
        "import sys, numpy as np\nz = np.load(sys.argv[1])\nassert z['layers.0.weight'].dtype == np.float16",
    );
}

#[test]
fn resumed_run_continues_its_archive() {
    let tmp = tempfile::tempdir().expect("tmp");
    let run = train(tmp.path(), &["epochs=2", "tracker.schedule=per_epoch"]);
    ezflt(tmp.path())
        .args(["train", "resume=run", "epochs=4"])
        .assert()
        .success();
    numpy_check(
        &run.join("features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
assert list(z["step"]) == [0, 8, 16, 24, 32], z["step"]
assert z["layers.0.weight"].shape[0] == 5
"#,
    );
}

#[cfg(unix)]
#[test]
fn a_killed_run_leaves_a_spill_that_inspect_repairs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bin = assert_cmd::cargo::cargo_bin("ezflt");
    let mut child = std::process::Command::new(bin)
        .current_dir(tmp.path())
        .args([
            "train",
            "hydra.run.dir=run",
            "epochs=1000000",
            "tracker.track_frequency=1",
            "threads=1",
            "log_every=1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let idx = tmp.path().join("run/features.spill/weights.idx");
    common::wait_until("5 spilled snapshots", 120, &mut child, || {
        std::fs::metadata(&idx).map_or(0, |m| m.len()) >= 24 * 5
    });
    child.kill().expect("kill"); // SIGKILL: no chance to finish anything
    common::wait_exit(&mut child, 60);
    let run = tmp.path().join("run");
    assert!(!run.join("features.npz").exists());
    ezflt(tmp.path())
        .args(["inspect", "run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("inspect --repair"));
    ezflt(tmp.path())
        .args(["inspect", "--repair", "run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("assembled"));
    assert!(!run.join("features.spill").exists());
    numpy_check(
        &run.join("features.npz"),
        r#"
import sys, json, numpy as np
z = np.load(sys.argv[1])
s = z["step"]
assert len(s) >= 5 and list(s) == list(range(len(s))), s
assert z["layers.0.weight"].shape[0] == len(s)
assert json.loads(str(z["metadata"]))["complete"] is False
"#,
    );
}

#[test]
fn initial_weights_are_independent_of_the_planted_features() {
    // Regression: data and weights once drew from the same random stream, so each initial
    // weight row lay inside the span of the first dictionary atoms (|cos| = 1 for atom r).
    let tmp = tempfile::tempdir().expect("tmp");
    let run = train(
        tmp.path(),
        &[
            "data=sparse_coding",
            "data.dim=32",
            "data.n_train=100",
            "data.n_test=10",
            "model.init_scale=0.01",
            "model.widths=[64]",
            "epochs=1",
            "plot=none",
        ],
    );
    numpy_check(
        &run.join("features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
a = np.abs(z["align_norm.layers.0.weight.atoms"][0])
# Random directions in 32-d: no cosine near 1 with any atom.
assert a.max() < 0.8, a.max()
"#,
    );
}
