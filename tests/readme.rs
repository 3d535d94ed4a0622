//! The README's examples, run as typed: every line of its `sh` blocks through bash (with
//! `ezflt` on PATH, at a few steps per run) and its Python block against a real archive, so
//! the documentation cannot drift from the binary. Lines that cannot run here are listed
//! with the reason, and a line that matches no rule fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{f32_bytes, i64_bytes, npy, numpy_python, write_npz};

/// Lines that are not run here, by prefix or substring, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "cargo ",
        "cargo itself: this suite is what `cargo test --release` runs, on the binary it builds; tests/examples.rs runs the examples",
    ),
    (
        "bash scripts/setup-torch.sh",
        "a 7 GB PyTorch download; CI's LibTorch pass runs it",
    ),
    (
        "scripts/cargo-tch",
        "the LibTorch build; CI's second pass builds and tests it",
    ),
    ("target-tch/", "the LibTorch binary (CI's second pass)"),
    (
        "hydra/launcher=slurm",
        "needs a SLURM cluster; tests/slurm.rs runs this launcher on one",
    ),
    ("export WANDB_API_KEY=", "a placeholder for a secret"),
    (
        "ezflt sync ",
        "needs a W&B server; tests/wandb.rs syncs against a stand-in",
    ),
    (
        "bash bench/",
        "benchmarks take minutes and need PyTorch; they are not tests",
    ),
    ("> /etc/", "writes a system file"),
    (
        "data=fashion_mnist",
        "downloads from the internet; tests/datasets.rs downloads from a local server",
    ),
    (
        "data=cifar10",
        "downloads from the internet; tests/datasets.rs downloads from a local server",
    ),
    (
        "EZFLT_DATA=/scratch",
        "downloads from the internet; tests/datasets.rs downloads from a local server",
    ),
    (
        "model.init_from=weights.pt",
        "needs a state dict written by PyTorch; tests/pytorch_oracle.rs runs this command's setup with one",
    ),
];

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md")
}

/// `(language, first line number, lines)` of every fenced code block.
fn blocks(text: &str) -> Vec<(String, usize, Vec<String>)> {
    let mut out = vec![];
    let mut cur: Option<(String, usize, Vec<String>)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut cur, line.strip_prefix("```")) {
            (None, Some(lang)) => cur = Some((lang.trim().to_string(), i + 2, vec![])),
            (Some(_), Some(_)) => out.push(cur.take().unwrap()),
            (Some(b), None) => b.2.push(line.to_string()),
            (None, None) => {}
        }
    }
    out
}

/// A directory holding `ezflt` (a wrapper that caps every training command at a few steps)
/// and the files the examples name: `~/data/mnist`, `arrays.npz`, the example run
/// `outputs/2026-11-29/10-00-00` and sweep `multirun/2026-11-29/11-00-00`.
fn sandbox() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let bin = t.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let real = assert_cmd::cargo::cargo_bin("ezflt");
    // Subcommands that take no overrides go through as they are.
    let wrapper = format!(
        "#!/usr/bin/env bash\ncase \"$1\" in\n  plot|inspect|status|resume|sync|compare|report|completions|run-job) exec '{real}' \"$@\";;\nesac\nfor a in \"$@\"; do case \"$a\" in --cfg|-c|--info|-i|--help|-h) exec '{real}' \"$@\";; esac; done\nexec '{real}' \"$@\" max_steps=3\n",
        real = real.display()
    );
    std::fs::write(bin.join("ezflt"), wrapper).unwrap();
    Command::new("chmod")
        .args(["+x", &bin.join("ezflt").display().to_string()])
        .status()
        .unwrap();
    // MNIST-style IDX files, 50 training and 20 test images of 28x28.
    let mnist = t.join("data/mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    let idx = |dims: &[u32], body: Vec<u8>| {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend(body);
        v
    };
    for (prefix, n) in [("train", 50u32), ("t10k", 20)] {
        let images: Vec<u8> = (0..n * 784).map(|i| (i * 7 % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        std::fs::write(
            mnist.join(format!("{prefix}-images-idx3-ubyte")),
            idx(&[n, 28, 28], images),
        )
        .unwrap();
        std::fs::write(
            mnist.join(format!("{prefix}-labels-idx1-ubyte")),
            idx(&[n], labels),
        )
        .unwrap();
    }
    let x: Vec<f32> = (0..200).map(|i| ((i * 13) % 17) as f32 / 17.0).collect();
    let y: Vec<i64> = (0..50).map(|i| i % 2).collect();
    write_npz(
        &t.join("arrays.npz"),
        &[
            ("X", npy("<f4", &[50, 4], &f32_bytes(&x))),
            ("labels", npy("<i8", &[50], &i64_bytes(&y))),
        ],
    );
    // Your own data: a regression teacher, a CSV table with labels 3/7 and its features.
    let xs: Vec<f32> = (0..120)
        .map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5)
        .collect();
    let ys: Vec<f32> = (0..40).map(|i| xs[i * 3] - 2.0 * xs[i * 3 + 1]).collect();
    write_npz(
        &t.join("teacher.npz"),
        &[
            ("x", npy("<f4", &[40, 3], &f32_bytes(&xs))),
            ("y", npy("<f4", &[40], &f32_bytes(&ys))),
        ],
    );
    let mut table = String::from("a,b,label\n");
    for i in 0..40 {
        let (a, b) = (xs[i * 3], xs[i * 3 + 1]);
        table.push_str(&format!("{a},{b},{}\n", if a > b { 7 } else { 3 }));
    }
    std::fs::write(t.join("table.csv"), table).unwrap();
    std::fs::write(
        t.join("feats.npy"),
        npy("<f4", &[2, 2], &f32_bytes(&[1.0, 0.0, 0.0, 1.0])),
    )
    .unwrap();
    // Token pairs (a, b) -> (a + b) mod 7 for the embedding example.
    let (mut ids, mut sums) = (vec![], vec![]);
    for a in 0..7i64 {
        for b in 0..7i64 {
            ids.extend([a, b]);
            sums.push((a + b) % 7);
        }
    }
    write_npz(
        &t.join("tokens.npz"),
        &[
            ("x", npy("<i8", &[49, 2], &i64_bytes(&ids))),
            ("y", npy("<i8", &[49], &i64_bytes(&sums))),
        ],
    );
    // Config files the README shows (a yaml block whose first line is `# <path>.yaml`).
    for (lang, _, lines) in blocks(&readme()) {
        let path = lines.first().and_then(|l| l.strip_prefix("# "));
        if let (true, Some(path)) = (lang == "yaml", path.filter(|p| p.ends_with(".yaml"))) {
            let file = t.join(path.trim());
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, lines[1..].join("\n")).unwrap();
        }
    }
    // The example run: long enough for `--step 120`, every weight tracked for `--tensor`.
    let ok = Command::new(&real)
        .args([
            "train",
            "hydra.run.dir=outputs/2026-11-29/10-00-00",
            "model.widths=[16,16]",
            "tracker.layers=[layers.*.weight]",
            "tracker.track_frequency=1",
            "epochs=16",
            "threads=1",
        ])
        .current_dir(t)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "setting up the example run");
    let ok = bash(
        t,
        "ezflt -m hydra.sweep.dir=multirun/2026-11-29/11-00-00 lr=0.01,0.1 seed=0,1",
    )
    .status
    .success();
    assert!(ok, "setting up the example sweep");
    tmp
}

fn bash(dir: &Path, line: &str) -> std::process::Output {
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env("WANDB_MODE", "offline")
        .env_remove("WANDB_API_KEY")
        .output()
        .expect("bash")
}

#[test]
fn every_shell_example_runs_as_typed() {
    let text = readme();
    let tmp = sandbox();
    let (mut ran, mut skipped, mut failed) = (0, vec![], vec![]);
    for (lang, first, lines) in blocks(&text) {
        if lang != "sh" {
            continue;
        }
        for (k, line) in lines.iter().enumerate() {
            let cmd = line.trim();
            if cmd.is_empty() || cmd.starts_with('#') {
                continue;
            }
            if let Some((_, why)) = NOT_RUN
                .iter()
                .find(|(p, _)| cmd.starts_with(p) || cmd.contains(p))
            {
                skipped.push(format!("README.md:{}: {cmd}  ({why})", first + k));
                continue;
            }
            assert!(
                cmd.starts_with("ezflt ") || cmd.contains(" ezflt "),
                "README.md:{}: no rule for `{cmd}`",
                first + k
            );
            let out = bash(tmp.path(), cmd);
            ran += 1;
            if !out.status.success() {
                failed.push(format!(
                    "README.md:{}: `{cmd}` exited {}:\n{}",
                    first + k,
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    {
        use std::io::Write;
        let mut e = std::io::stderr();
        let _ = writeln!(e, "README: ran {ran} shell lines; not run here:");
        for s in &skipped {
            let _ = writeln!(e, "  {s}");
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert!(ran >= 30, "only {ran} README lines ran");
}

#[test]
fn the_python_example_reads_an_archive() {
    let text = readme();
    let (_, line, code) = blocks(&text)
        .into_iter()
        .find(|b| b.0 == "python")
        .expect("a python block in the README");
    let Some(py) = numpy_python() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let real: PathBuf = assert_cmd::cargo::cargo_bin("ezflt");
    let ok = Command::new(real)
        .args([
            "train",
            "hydra.run.dir=outputs/2026-11-29/10-00-00",
            "epochs=2",
            "threads=1",
            "plot=none",
        ])
        .current_dir(tmp.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = Command::new(py)
        .args(["-c", &code.join("\n")])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "README.md:{line}: the python example failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
