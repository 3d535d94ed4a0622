//! Run directories: resolve `hydra.run.dir` / `hydra.sweep.dir`, create them without
//! colliding with a run started the same second, and write the `.hydra/` records.

use crate::config::compose::{hydra_config, job_config};
use crate::config::interp::Resolver;
use crate::config::node::{py_str, split_path};
use crate::config::{yaml, Node, Value};
use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Local};
use std::path::{Path, PathBuf};

/// Resolves a `hydra.*` string setting (e.g. `hydra.run.dir`) against the full config.
pub fn resolve_setting(cfg: &Node, key: &str, now: DateTime<Local>) -> Result<String> {
    let r = Resolver::new(cfg, now, false);
    let n = r
        .resolve_path(&split_path(key))
        .with_context(|| format!("resolving {key}"))?;
    match n.v {
        Value::Str(s) => Ok(s),
        Value::Null => Err(anyhow!(
            "{key} is null; set it to a directory, e.g. {key}=outputs/my_run"
        )),
        _ => Ok(py_str(&n)),
    }
}

/// Creates `want`; if it already exists (another run in the same second), uses
/// `want_1`, `want_2`, ... The final `create_dir` is atomic, so two processes never share one.
pub fn create_unique_dir(want: &Path) -> Result<PathBuf> {
    if let Some(parent) = want.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    for i in 0..10_000 {
        let cand = if i == 0 {
            want.to_path_buf()
        } else {
            PathBuf::from(format!("{}_{i}", want.display()))
        };
        match std::fs::create_dir(&cand) {
            Ok(()) => return Ok(cand),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating run directory {}", cand.display()))
            }
        }
    }
    Err(anyhow!(
        "could not find a free directory name next to {}",
        want.display()
    ))
}

/// Writes a file atomically (temp name, fsync, rename), so a crash or a kill never leaves
/// half a file under the real name.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    commit(&tmp, path)
}

/// Makes a finished temp file durable and gives it its real name: fsync the data, rename,
/// fsync the directory so the rename itself survives a power cut.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    fsync(tmp)?;
    std::fs::rename(tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Not every filesystem can fsync a directory; the rename is done either way.
        let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Held (an OS file lock) by the process training in a run directory, for as long as it
/// trains: the kernel drops it when the process dies, even by SIGKILL, so "running" cannot
/// outlive the process and two processes never train into one directory.
const LOCK: &str = ".ezflt-job.lock";

/// Takes the run directory's lock; `None` when a live process holds it.
pub fn try_lock(dir: &Path) -> Result<Option<std::fs::File>> {
    let path = dir.join(LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Flushes a written file's data to disk.
pub fn fsync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flushing {} to disk", path.display()))
}

/// Removes temp files a killed process left in `dir` (`x.tmp`, `x.tmp.bpk`, `x.bpk.123.tmp`):
/// none of them is ever read, and a run that starts or resumes here writes its own.
pub fn clean_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let is_temp = name.ends_with(".tmp") || name.contains(".tmp.");
        if is_temp && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Job-specific fields Hydra sets when a job starts.
pub fn set_job_runtime(cfg: &mut Node, dir: &Path, mode: &str, num: Option<usize>) {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    cfg.set_path_create(
        "hydra.runtime.output_dir",
        Node::str(abs.display().to_string()),
    );
    cfg.set_path_create("hydra.mode", Node::str(mode));
    if let Some(n) = num {
        cfg.set_path_create("hydra.job.num", Node::bare(Value::Int(n as i64)));
        cfg.set_path_create("hydra.job.id", Node::str(n.to_string()));
    }
}

/// Writes `.hydra/{config,hydra,overrides}.yaml` (unless `hydra.output_subdir` is null)
/// and the job's log file.
pub fn write_job_records(
    cfg: &Node,
    dir: &Path,
    overrides: &[String],
    log_lines: &str,
) -> Result<()> {
    if let Some(sub) = cfg.get_path("hydra.output_subdir").and_then(|n| n.as_str()) {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        write_atomic(&d.join("config.yaml"), &yaml::dump(&job_config(cfg)))?;
        write_atomic(&d.join("hydra.yaml"), &yaml::dump(&hydra_config(cfg)))?;
        // Like Hydra, overrides.yaml holds the task overrides only (no hydra.* ones).
        let task = overrides
            .iter()
            .filter(|l| !crate::config::overrides::parse(l).is_ok_and(|o| o.is_hydra()));
        let ov = Node::bare(Value::List(task.map(|s| Node::str(s.clone())).collect()));
        write_atomic(&d.join("overrides.yaml"), &yaml::dump(&ov))?;
    }
    let name = cfg
        .get_path("hydra.job.name")
        .and_then(|n| n.as_str())
        .unwrap_or("train");
    let log_enabled = !matches!(
        cfg.get_path("hydra.job_logging.file").map(|n| &n.v),
        Some(Value::Null)
    );
    if log_enabled {
        std::fs::write(dir.join(format!("{name}.log")), log_lines)
            .with_context(|| format!("writing the log in {}", dir.display()))?;
    }
    Ok(())
}

/// The task overrides a job directory's `.hydra/overrides.yaml` records (empty if none).
pub fn read_task_overrides(dir: &Path) -> Vec<String> {
    let p = dir.join(".hydra").join("overrides.yaml");
    let Ok(text) = std::fs::read_to_string(&p) else {
        return vec![];
    };
    match yaml::load(&text, &p.display().to_string()) {
        Ok(Node {
            v: Value::List(items),
            ..
        }) => items
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}
