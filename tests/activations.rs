//! `tracker.activations`: intermediate outputs recorded on a fixed probe batch, checked
//! against a numpy forward pass of the archive's own weights on the archive's own probe.

use predicates::prelude::*;

mod common;
use common::{ezflt, numpy_check};

#[test]
fn recorded_activations_are_the_forward_pass_of_the_recorded_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ezflt(t)
        .args([
            "-q",
            "train",
            "model.widths=[16,8]",
            "epochs=3",
            "threads=1",
            "tracker.layers=[layers.*]",
            "tracker.activations=[layers.*]",
            "tracker.probe_size=40",
            "hydra.run.dir=mlp",
        ])
        .assert()
        .success();
    numpy_check(
        &t.join("mlp/features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
x = z["probe.x"]
assert x.shape == (40, 20) and z["probe.y"].shape == (40,), (x.shape, z["probe.y"].shape)
relu = lambda v: np.maximum(v, 0)
T = z["step"].shape[0]
assert z["act.layers.0"].shape == (T, 40, 16) and z["act.layers.1"].shape == (T, 40, 8)
for t in [0, T - 1]:
    h0 = relu(x @ z["layers.0.weight"][t].T + z["layers.0.bias"][t])
    h1 = relu(h0 @ z["layers.1.weight"][t].T + z["layers.1.bias"][t])
    assert np.allclose(z["act.layers.0"][t], h0, atol=1e-5), t
    assert np.allclose(z["act.layers.1"][t], h1, atol=1e-5), t
# The probe is test data: its rows are rows of a 20-dim gaussian mixture, not zeros.
assert np.abs(x).sum() > 0
"#,
    );
    // The figure: CKA over time and the units' correlation with the class means.
    ezflt(t)
        .args(["plot", "mlp", "--what", "activations"])
        .assert()
        .success()
        .stdout(predicate::str::contains("activations_layers.0.png"));

    // A sequential model names its outputs by index; a wrong name lists them.
    ezflt(t)
        .args([
            "-q",
            "train",
            "model=sequential",
            "epochs=1",
            "threads=1",
            "tracker.layers=[0.*]",
            "tracker.activations=[1]",
            "hydra.run.dir=seq",
        ])
        .assert()
        .success();
    numpy_check(
        &t.join("seq/features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
assert z["act.1"].shape[1:] == (256, 64), z["act.1"].shape
for t in [0, -1]:
    h = np.maximum(z["probe.x"] @ z["0.weight"][t].T + z["0.bias"][t], 0)
    assert np.allclose(z["act.1"][t], h, atol=1e-5), t
"#,
    );
    ezflt(t)
        .args(["train", "tracker.activations=[layers.5]", "hydra.run.dir=bad"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "tracker.activations: 'layers.5' names no intermediate output of this model; it has: layers.0",
        ));

    // The patch models: per-filter activation summed over patches, and each autoencoder
    // kernel's strongest response.
    ezflt(t)
        .args([
            "-q",
            "train",
            "model=two_layer_cnn",
            "model.activation=relu",
            "data=signal_noise",
            "data.dim=40",
            "batch_size=full",
            "epochs=3",
            "threads=1",
            "tracker.activations=[filters]",
            "tracker.probe_size=16",
            "hydra.run.dir=cnn",
        ])
        .assert()
        .success();
    numpy_check(
        &t.join("cnn/features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
w = z["filters"]                               # [T, classes, m, d]
T, j, m, d = w.shape
x = z["probe.x"].reshape(16, -1, d)            # [probe, patches, d]
for t in [0, T - 1]:
    h = np.maximum(np.einsum("npd,rd->npr", x, w[t].reshape(j * m, d)), 0).sum(1)
    assert np.allclose(z["act.filters"][t], h, atol=1e-4), t
"#,
    );
    ezflt(t)
        .args([
            "-q",
            "train",
            "experiment=cae_anomaly",
            "epochs=2",
            "threads=1",
            "tracker.activations=[kernels]",
            "tracker.probe_size=16",
            "plot=none",
            "hydra.run.dir=cae",
        ])
        .assert()
        .success();
    numpy_check(
        &t.join("cae/features.npz"),
        r#"
import sys, numpy as np
z = np.load(sys.argv[1])
w = z["kernels"]                               # [T, C, d]
T, c, d = w.shape
x = z["probe.x"].reshape(16, -1, d)
for t in [0, T - 1]:
    h = np.maximum(np.einsum("npd,cd->npc", x, w[t]), 0).max(1)
    assert np.allclose(z["act.kernels"][t], h, atol=1e-5), t
"#,
    );
}
