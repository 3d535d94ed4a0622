//! Helpers shared by the integration tests: the binary under test, and numpy checks of
//! the archives it writes (numpy from the repo's .venv; required when EZFLT_REQUIRE_ORACLE).
#![allow(dead_code)] // each test crate uses its own subset

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub fn ezflt(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("ezflt").expect("binary");
    c.current_dir(dir);
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
        eprintln!("note: numpy not installed (scripts/setup-venv.sh); numpy checks skipped");
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
