//! Helpers shared by the integration tests: the binary under test, and numpy checks of
//! the archives it writes (numpy from the repo's .venv; required when EZFLT_REQUIRE_ORACLE).
#![allow(dead_code)] // each test crate uses its own subset

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub fn ezflt(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("ezflt").expect("binary");
    c.current_dir(dir);
    // Named datasets download into the test's folder, never the user's cache.
    c.env("EZFLT_DATA", dir.join(".ezflt-data"));
    c
}

/// The repo's venv python with numpy (scripts/setup-venv.sh), if installed.
pub fn numpy_python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = p.exists()
        && std::process::Command::new(&p)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        Some(p)
    } else if std::env::var("EZFLT_REQUIRE_ORACLE").is_ok() {
        panic!("EZFLT_REQUIRE_ORACLE is set but .venv has no numpy; run scripts/setup-venv.sh");
    } else {
        skip(
            "numpy check",
            ".venv has no numpy (bash scripts/setup-venv.sh); the archive was not opened in numpy",
        );
        None
    }
}

/// Runs a Python check against `archive`; the script raises on failure.
pub fn numpy_check(archive: &Path, script: &str) {
    let Some(py) = numpy_python() else { return };
    let out = std::process::Command::new(py)
        .args(["-c", script, &archive.display().to_string()])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "numpy check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A run's `summary.json`.
pub fn summary(run: &Path) -> Value {
    let text = std::fs::read_to_string(run.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary is JSON")
}

/// The rows of a run's `metrics.jsonl`.
pub fn rows(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("row is JSON"))
        .collect()
}

/// A two-epoch default run into `<dir>/run`, for tests about what happens to a run after.
pub fn small_run(dir: &Path) -> PathBuf {
    ezflt(dir)
        .args([
            "train",
            "hydra.run.dir=run",
            "epochs=2",
            "threads=1",
            "plot=none",
        ])
        .assert()
        .success();
    dir.join("run")
}

/// The binary as a plain `std::process::Command`, for tests that spawn and signal it.
pub fn ezflt_cmd(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("ezflt"));
    c.current_dir(dir);
    c.env("EZFLT_DATA", dir.join(".ezflt-data"));
    c
}

/// Polls `cond` every 20 ms for at most `secs`; fails with `what` and the child's state if
/// it never holds (a child that died early fails the test instead of hanging the suite).
pub fn wait_until(
    what: &str,
    secs: u64,
    child: &mut std::process::Child,
    mut cond: impl FnMut() -> bool,
) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        if let Ok(Some(status)) = child.try_wait() {
            // One last look: the condition may have come true as it exited.
            if cond() {
                return;
            }
            panic!("waiting for {what}: the process exited first ({status})");
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("waiting for {what}: not after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits for a child at most `secs`; kills it and fails the test past that.
pub fn wait_exit(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not exit within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends a signal by name (`INT`, `TERM`, `KILL`) to a process id.
pub fn signal(pid: u32, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill -{name} {pid}");
}

/// A `.npy` file's bytes: a v1.0 header for `descr` (e.g. `<f4`, `<i8`) and `shape`, then `data`.
pub fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Writes a `.npz` of `(name, npy bytes)` members.
pub fn write_npz(path: &Path, members: &[(&str, Vec<u8>)]) {
    let f = std::fs::File::create(path).expect("create npz");
    let mut z = zip::ZipWriter::new(f);
    for (name, bytes) in members {
        z.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .expect("zip member");
        std::io::Write::write_all(&mut z, bytes).expect("zip write");
    }
    z.finish().expect("zip finish");
}

/// f32 values as little-endian bytes.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// i64 values as little-endian bytes.
pub fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Says, where `cargo test` shows it (not captured, unlike `eprintln!`), that a test did not
/// check what it is for, and why. CI sets EZFLT_REQUIRE_ORACLE / EZFLT_REQUIRE_SLURM so
/// that these turn into failures there.
pub fn skip(test: &str, reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
}

/// An example binary of this package (`cargo test` builds `examples/` next to the binary).
pub fn example(name: &str, dir: &Path) -> std::process::Command {
    let bin = assert_cmd::cargo::cargo_bin("ezflt");
    let path = bin
        .parent()
        .expect("target dir")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples; run it with --release as the README says",
        path.display()
    );
    let mut c = std::process::Command::new(path);
    c.current_dir(dir);
    c
}

/// An IDX file (MNIST's format) of unsigned bytes with these dimensions.
pub fn idx(dims: &[u32], body: Vec<u8>) -> Vec<u8> {
    let mut out = vec![0u8, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend(body);
    out
}
