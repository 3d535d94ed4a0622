//! Differential tests against PyTorch 2.9.0 (the venv of scripts/setup-torch.sh): learning
//! rate schedules step by step, and optimizers with the cross-entropy loss weight by weight
//! from the same initial weights on the same data. CI requires the oracle.

use serde_json::Value;
use std::path::{Path, PathBuf};

mod common;
use common::{ezflt, f32_bytes, i64_bytes, npy, rows, skip, write_npz};

fn torch_python() -> Option<PathBuf> {
    let venv = std::env::var("EZFLT_TORCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ezflt/venv-torch")
        });
    let py = venv.join("bin/python");
    let ok = std::process::Command::new(&py)
        .args([
            "-c",
            "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.9.0')",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else if std::env::var("EZFLT_REQUIRE_ORACLE").is_ok() {
        panic!(
            "EZFLT_REQUIRE_ORACLE is set but {} has no torch 2.9.0; run scripts/setup-torch.sh",
            venv.display()
        );
    } else {
        skip(
            "pytorch oracle",
            "no PyTorch 2.9.0 venv (bash scripts/setup-torch.sh); nothing was compared",
        );
        None
    }
}

fn python(py: &Path, dir: &Path, script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "the PyTorch script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const SCHEDULES: &str = r#"
import json, sys, torch
cases = json.loads(sys.argv[1])
out = {}
for name, c in cases.items():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=c["lr"])
    total, spe, kind = c["total"], c["spe"], c["kind"]
    if kind == "warmup":
        W = c["W"]
        sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / W))
    elif kind == "step":
        sch = torch.optim.lr_scheduler.StepLR(opt, step_size=c["step_size"], gamma=c["gamma"])
    else:
        sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=c["min_lr"])
    lrs = []
    for k in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        # StepLR counts epochs; the others count optimizer steps.
        if kind != "step" or (k + 1) % spe == 0:
            sch.step()
    out[name] = lrs
print(json.dumps(out))
"#;

#[test]
fn schedules_match_pytorch_step_by_step() {
    let Some(py) = torch_python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    // 64 samples in batches of 16: 4 steps per epoch, 10 epochs.
    let (spe, total) = (4, 40);
    let cases = [
        (
            "warmup",
            vec!["schedule=constant", "schedule.warmup_steps=7", "lr=0.5"],
            serde_json::json!({"kind": "warmup", "W": 7, "lr": 0.5}),
        ),
        (
            "step",
            vec![
                "schedule=step",
                "schedule.step_size=3",
                "schedule.gamma=0.5",
                "lr=0.2",
            ],
            serde_json::json!({"kind": "step", "step_size": 3, "gamma": 0.5, "lr": 0.2}),
        ),
        (
            "cosine",
            vec!["schedule=cosine", "schedule.min_lr=0.01", "lr=0.3"],
            serde_json::json!({"kind": "cosine", "min_lr": 0.01, "lr": 0.3}),
        ),
    ];
    let mut spec = serde_json::Map::new();
    for (name, args, mut c) in cases.clone() {
        c["total"] = total.into();
        c["spe"] = spe.into();
        spec.insert(name.into(), c);
        ezflt(tmp.path())
            .args([
                "train",
                &format!("hydra.run.dir={name}"),
                "data=xor",
                "data.n_train=64",
            ])
            .args([
                "batch_size=16",
                "epochs=10",
                "log_every=1",
                "plot=none",
                "tracker=none",
            ])
            .args(args)
            .assert()
            .success();
    }
    let want: Value = serde_json::from_str(&python(
        &py,
        tmp.path(),
        SCHEDULES,
        &[&Value::Object(spec).to_string()],
    ))
    .unwrap();
    for (name, _, _) in cases {
        let got: Vec<(u64, f64)> = rows(&tmp.path().join(name))
            .iter()
            .filter(|r| r.get("test_loss").is_none())
            .map(|r| (r["step"].as_u64().unwrap(), r["lr"].as_f64().unwrap()))
            .collect();
        assert_eq!(got.len(), total, "{name}");
        for (step, lr) in got {
            // The row of step k+1 reports the rate the (k+1)-th update used.
            let t = want[name][step as usize - 1].as_f64().unwrap();
            assert!(
                (lr - t).abs() <= 1e-9 * t.abs().max(1e-12),
                "{name}: step {step}: ezflt {lr}, PyTorch {t}"
            );
        }
    }
}

const OPTIMIZERS: &str = r#"
import json, sys, numpy as np, torch
cases = json.loads(sys.argv[1])
d = np.load("data.npz")
x, y = torch.tensor(d["x"]), torch.tensor(d["y"])
worst = {}
for name, c in cases.items():
    z = np.load(f"{c.get('dir', name)}/features.npz")
    names = ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    params = [torch.nn.Parameter(torch.tensor(z[n][0])) for n in names]
    o = c["opt"]
    if o["name"] == "sgd":
        opt = torch.optim.SGD(params, lr=o["lr"], momentum=o.get("momentum", 0), nesterov=o.get("nesterov", False), weight_decay=o.get("wd", 0))
    elif o["name"] == "adam":
        opt = torch.optim.Adam(params, lr=o["lr"], weight_decay=o.get("wd", 0))
    else:
        opt = torch.optim.AdamW(params, lr=o["lr"], weight_decay=o.get("wd", 0))
    err = 0.0
    for t in range(1, c["steps"] + 1):
        w0, b0, w1, b1 = params
        out = torch.relu(x @ w0.T + b0) @ w1.T + b1
        loss = torch.nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for n, p in zip(names, params):
            ref = p.detach().numpy()
            got = z[n][t]
            err = max(err, float(np.abs(got - ref).max() / (np.abs(ref).max() + 1e-12)))
    worst[name] = err
print(json.dumps(worst))
"#;

#[test]
fn optimizers_and_cross_entropy_match_pytorch_weight_by_weight() {
    let Some(py) = torch_python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    // 48 samples, 4 features, 3 classes; the same file is the test split, so the
    // training batch is the whole file in order (full-batch gradient descent).
    let n = 48;
    let x: Vec<f32> = (0..n * 4)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let y: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    write_npz(
        &tmp.path().join("data.npz"),
        &[
            ("x", npy("<f4", &[n, 4], &f32_bytes(&x))),
            ("y", npy("<i8", &[n], &i64_bytes(&y))),
        ],
    );
    let steps = 8;
    let cases: &[(&str, &[&str], Value)] = &[
        (
            "sgd",
            &["optimizer=sgd", "lr=0.3"],
            serde_json::json!({"name": "sgd", "lr": 0.3}),
        ),
        (
            "sgd_nesterov_wd",
            &[
                "optimizer=sgd",
                "lr=0.1",
                "optimizer.momentum=0.9",
                "optimizer.nesterov=true",
                "optimizer.weight_decay=0.01",
            ],
            serde_json::json!({"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true, "wd": 0.01}),
        ),
        (
            "adam_wd",
            &["optimizer=adam", "lr=0.01", "optimizer.weight_decay=0.01"],
            serde_json::json!({"name": "adam", "lr": 0.01, "wd": 0.01}),
        ),
        (
            "adamw",
            &["optimizer=adamw", "lr=0.01", "optimizer.weight_decay=0.1"],
            serde_json::json!({"name": "adamw", "lr": 0.01, "wd": 0.1}),
        ),
    ];
    let mut spec = serde_json::Map::new();
    for (name, args, opt) in cases {
        spec.insert(
            name.to_string(),
            serde_json::json!({"opt": opt, "steps": steps}),
        );
        ezflt(tmp.path())
            .args([
                "train",
                &format!("hydra.run.dir={name}"),
                "data=numpy",
                "data.path=data.npz",
            ])
            .args([
                "data.test_path=data.npz",
                "model.widths=[5]",
                "batch_size=full",
            ])
            .args([
                &format!("epochs={steps}"),
                "tracker.layers=[]",
                "tracker.schedule=every",
            ])
            .args(["tracker.track_frequency=1", "plot=none", "threads=1"])
            .args(*args)
            .assert()
            .success();
    }
    // A control that must differ: the plain SGD run against PyTorch at a 1% larger rate.
    spec.insert(
        "control".into(),
        serde_json::json!({"opt": {"name": "sgd", "lr": 0.303}, "steps": steps, "dir": "sgd"}),
    );
    let worst: Value = serde_json::from_str(&python(
        &py,
        tmp.path(),
        OPTIMIZERS,
        &[&Value::Object(spec).to_string()],
    ))
    .unwrap();
    for (name, _, _) in cases {
        let e = worst[name].as_f64().unwrap();
        assert!(
            e < 1e-5,
            "{name}: weights differ from PyTorch's by {e:e} (relative) within {steps} steps"
        );
    }
    let control = worst["control"].as_f64().unwrap();
    assert!(
        control > 1e-4,
        "the comparison cannot tell a 1% rate change: {control:e}"
    );
}

const STATE_DICT: &str = r#"
import json, struct, sys, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
d, h, k = 20, 16, 3
net = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, k))
rng = np.random.default_rng(0)
def split(n):
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, size=n).astype(np.int64)
(xtr, ytr), (xte, yte) = split(64), split(50)
np.savez("train.npz", x=xtr, y=ytr)
np.savez("test.npz", x=xte, y=yte)
sd = net.state_dict()
torch.save(sd, "weights.pt")
torch.save({"state_dict": sd, "epoch": 3}, "checkpoint.pt")
# The safetensors layout: header size (u64 LE), JSON header, little-endian data.
header, blobs, off = {}, [], 0
for name, t in sd.items():
    b = t.numpy().astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
hj = json.dumps(header).encode()
open("weights.safetensors", "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
with torch.no_grad():
    loss = F.cross_entropy(net(torch.from_numpy(xte)), torch.from_numpy(yte)).item()
json.dump({"test_loss": loss, "w0": sd["0.weight"].numpy().ravel().tolist(),
           "w2": sd["2.weight"].numpy().ravel().tolist()}, sys.stdout)
"#;

/// A state dict written by real PyTorch (`nn.Sequential(Linear, ReLU, Linear)`) loads into
/// `model=sequential` and into `model=mlp` (whose `layers.1` is PyTorch's `2`), from `.pt`,
/// a nested checkpoint and `.safetensors`, and gives PyTorch's test loss; frozen layers keep
/// PyTorch's weights through fine-tuning while the rest train.
#[test]
fn pytorch_state_dicts_load_and_frozen_layers_stay() {
    let Some(py) = torch_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let want: Value = serde_json::from_str(&python(&py, t, STATE_DICT, &[])).unwrap();
    let torch_loss = want["test_loss"].as_f64().unwrap();
    let data = [
        "data=numpy",
        "data.path=train.npz",
        "data.test_path=test.npz",
        "batch_size=full",
        "threads=1",
        "plot=none",
    ];
    let seq = "model.layers=[{linear: 16}, relu, {linear: out}]";
    // One step at a learning rate too small to move an f32 weight: the evaluation after it
    // is the imported network's.
    for (i, (model, file)) in [
        (["model=sequential", seq], "weights.pt"),
        (["model=sequential", seq], "weights.safetensors"),
        (["model=sequential", seq], "checkpoint.pt"),
        (["model=mlp", "model.widths=[16]"], "weights.pt"),
    ]
    .iter()
    .enumerate()
    {
        let dir = format!("run{i}");
        ezflt(t)
            .args(["-q", "train", "epochs=1", "lr=1e-30", "tracker=none"])
            .args(data)
            .args(model)
            .arg(format!("model.init_from={file}"))
            .arg(format!("hydra.run.dir={dir}"))
            .assert()
            .success();
        let s = common::summary(&t.join(&dir));
        let loss = s["final"]["test_loss"].as_f64().unwrap();
        assert!(
            (loss - torch_loss).abs() < 1e-5,
            "{model:?} from {file}: ezflt {loss}, PyTorch {torch_loss}"
        );
    }
    // Fine-tuning with the first layer frozen.
    ezflt(t)
        .args(["-q", "train", "epochs=20", "lr=0.5"])
        .args(data)
        .args(["model=sequential", seq, "model.init_from=weights.pt"])
        .args([
            "model.freeze=[0.*]",
            "tracker.layers=[0.weight,2.weight]",
            "hydra.run.dir=tuned",
        ])
        .assert()
        .success();
    let mut ar = ezflt::Archive::open(t.join("tuned")).unwrap();
    let as_f32 = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let (w0, w2) = (as_f32(&want["w0"]), as_f32(&want["w2"]));
    let first = ar.feature("0.weight").unwrap();
    let second = ar.feature("2.weight").unwrap();
    assert_eq!(first.get(0).values, w0.as_slice(), "step 0 is PyTorch's");
    assert_eq!(first.latest().unwrap().values, w0.as_slice(), "frozen");
    assert_eq!(second.get(0).values, w2.as_slice(), "step 0 is PyTorch's");
    let moved = second
        .latest()
        .unwrap()
        .values
        .iter()
        .zip(&w2)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "the unfrozen layer trains: {moved}");
    let rows = rows(&t.join("tuned"));
    let losses: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.get("train_loss")?.as_f64())
        .collect();
    assert!(losses.last() < losses.first(), "{losses:?}");

    // What does not fit is listed, by name and shape.
    let out = ezflt(t)
        .args([
            "train",
            "model=mlp",
            "model.widths=[8]",
            "model.init_from=weights.pt",
        ])
        .args(data)
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let e = String::from_utf8_lossy(&out);
    assert!(
        e.contains("shape mismatch: 0.weight: file [16, 20], model layers.0.weight [8, 20]"),
        "{e}"
    );
    let out = ezflt(t)
        .args([
            "train",
            "model=mlp",
            "model.widths=[16,16]",
            "model.init_from=weights.pt",
        ])
        .args(data)
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let e = String::from_utf8_lossy(&out);
    assert!(
        e.contains("missing in the file: layers.2.weight [3, 16]"),
        "{e}"
    );
    ezflt(t)
        .args(["train", "model=sequential", seq, "model.freeze=[3.*]"])
        .args(data)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "model.freeze: '3.*' matches no parameter; the model has: 0.weight, 0.bias, 2.weight, 2.bias",
        ));
    ezflt(t)
        .args(["train", "model.init_from=nope.pt"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("config key 'model.init_from'"));
}
