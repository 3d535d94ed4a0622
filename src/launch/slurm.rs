//! The SLURM launcher: a sweep becomes one `sbatch` job array whose tasks run `ezflt
//! run-job <dir>...` (one job, or a batch); ezflt then follows it with `squeue`/`scontrol`
//! and the jobs' markers.

use super::{job_status, records::Records, unit_name, unit_results, units, Batch, Job};
use crate::artifacts::run::RunStatus;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `hydra.launcher` settings of `hydra/launcher=slurm`.
#[derive(Clone, Debug, Default)]
pub struct SlurmSpec {
    pub partition: Option<String>,
    /// `--time`: minutes, or SLURM's `[D-]HH:MM[:SS]` / `MM:SS` forms, checked.
    pub time: String,
    pub cpus_per_task: usize,
    pub mem: Option<String>,
    pub gpus: Option<String>,
    /// At most this many tasks at once (`--array=0-N%P`).
    pub array_parallelism: Option<usize>,
    pub extra_args: Vec<String>,
    pub poll_seconds: f64,
    pub no_wait: bool,
    /// Jobs of one shape train as one batch in one task; `auto` splits a group over
    /// `array_parallelism` tasks (one task per group when unset), at most 64 a task.
    pub batch: Batch,
}

/// `hydra.launcher.time`: whole minutes (`90`), or any of SLURM's `--time` forms (`30:00`,
/// `2:00:00`, `1-12`, `1-12:00`, `1-12:00:00`), checked here rather than by sbatch later.
pub fn time<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("minutes (60) or a SLURM time (2:00:00, 1-12:00)")
        }
        fn visit_i64<E: serde::de::Error>(self, m: i64) -> std::result::Result<String, E> {
            if m < 1 {
                return Err(E::custom(format!(
                    "expected minutes >= 1 or a SLURM time (2:00:00, 1-12:00), got {m}"
                )));
            }
            Ok(m.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, m: u64) -> std::result::Result<String, E> {
            self.visit_i64(m.min(i64::MAX as u64) as i64)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<String, E> {
            if slurm_time(s) {
                Ok(s.to_string())
            } else {
                Err(E::custom(format!(
                    "expected minutes (90) or a SLURM time: MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (e.g. 2:00:00), got '{s}'"
                )))
            }
        }
    }
    d.deserialize_any(V)
}

/// SLURM's `--time` forms: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
fn slurm_time(s: &str) -> bool {
    let num = |p: &str| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit());
    let (days, rest): (Option<&str>, &str) = match s.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, s),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if !parts.iter().all(|p| num(p)) || days.is_some_and(|d| !num(d)) {
        return false;
    }
    (1..=3).contains(&parts.len())
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| {
        format!("{what}: could not run it; is SLURM installed here (sbatch, squeue on PATH)?")
    })?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The array script: task i runs the job directories on line i of `jobs.txt` (tab-separated:
/// one job, or the members of a batch).
fn script(root: &Path, spec: &SlurmSpec, n: usize, exe: &Path) -> String {
    let dir = root.join(".slurm");
    let name = root
        .file_name()
        .map_or("sweep".into(), |n| n.to_string_lossy().into_owned());
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name=ezflt-{name}\n");
    s += &format!(
        "#SBATCH --array=0-{}{}\n",
        n - 1,
        spec.array_parallelism
            .map_or(String::new(), |p| format!("%{p}"))
    );
    s += &format!("#SBATCH --output={}/%A_%a.out\n", dir.display());
    s += &format!("#SBATCH --time={}\n", spec.time);
    s += &format!("#SBATCH --cpus-per-task={}\n", spec.cpus_per_task.max(1));
    if let Some(p) = &spec.partition {
        s += &format!("#SBATCH --partition={p}\n");
    }
    if let Some(m) = &spec.mem {
        s += &format!("#SBATCH --mem={m}\n");
    }
    if let Some(g) = &spec.gpus {
        s += &format!("#SBATCH --gpus={g}\n");
    }
    for a in &spec.extra_args {
        s += &format!("#SBATCH {a}\n");
    }
    s += &format!(
        "IFS=$'\\t' read -r -a dirs < <(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" '{}')\nexec '{}' run-job \"${{dirs[@]}}\" --threads {}\n",
        dir.join("jobs.txt").display(),
        exe.display(),
        spec.cpus_per_task.max(1)
    );
    s
}

/// State of one array task from `scontrol` (kept for MinJobAge after it ends).
fn task_state(array_id: &str, index: usize) -> Option<String> {
    let out = Command::new("scontrol")
        .args(["show", "job", &format!("{array_id}_{index}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|f| f.strip_prefix("JobState="))
        .map(|s| s.to_string())
}

/// Submits `jobs` as one array and (unless `no_wait`) follows it to the end.
pub fn launch(
    root: &Path,
    jobs: &[Job],
    rec: &mut Records,
    spec: &SlurmSpec,
) -> Result<Vec<(usize, i32)>> {
    let dir = root.join(".slurm");
    std::fs::create_dir_all(&dir)?;
    let root_abs = std::fs::canonicalize(root)?;
    let tasks = units(jobs, spec.batch, spec.array_parallelism.unwrap_or(1));
    let mut list = String::new();
    for unit in &tasks {
        let dirs = unit
            .iter()
            .map(|j| std::fs::canonicalize(&j.dir).map(|d| d.display().to_string()))
            .collect::<std::io::Result<Vec<_>>>()?;
        if let Some(d) = dirs.iter().find(|d| d.contains(['\t', '\n'])) {
            bail!("{d}: a job directory with a tab or a newline in its path cannot go to SLURM");
        }
        list += &format!("{}\n", dirs.join("\t"));
    }
    crate::plan::rundir::write_atomic(&dir.join("jobs.txt"), &list)?;
    let exe = std::env::current_exe().context("locating the ezflt binary for the array tasks")?;
    let sh = dir.join("array.sh");
    crate::plan::rundir::write_atomic(&sh, &script(&root_abs, spec, tasks.len(), &exe))?;
    let id = run(Command::new("sbatch").arg("--parsable").arg(&sh), "sbatch")?
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    if id.is_empty() {
        bail!("sbatch printed no job id");
    }
    std::fs::write(dir.join("array_id"), &id)?;
    outln!(
        "Submitted SLURM array job {id} ({} task(s) for {} job(s)); script {}",
        tasks.len(),
        jobs.len(),
        sh.display()
    );
    if spec.no_wait {
        outln!(
            "Not waiting (--no-wait); follow it with: ezflt status {}",
            root.display()
        );
        return Ok(vec![]);
    }
    let mut done: Vec<(usize, i32)> = vec![];
    loop {
        let queued = run(
            Command::new("squeue").args(["-h", "-j", &id, "-o", "%i %T"]),
            "squeue",
        )?;
        let active: Vec<usize> = queued
            .lines()
            .filter_map(|l| {
                let first = l.split_whitespace().next()?;
                let idx = first.rsplit('_').next()?;
                if idx.starts_with('[') {
                    // Pending tasks are listed as one range, e.g. 123_[2-5%2]: all active.
                    return Some(usize::MAX);
                }
                idx.parse().ok()
            })
            .collect();
        let pending_range = active.contains(&usize::MAX);
        // Array task i runs the jobs of `tasks[i]`.
        for (i, unit) in tasks.iter().enumerate() {
            for j in unit {
                if done.iter().any(|d| d.0 == j.num) {
                    continue;
                }
                let still = active.contains(&i)
                    || (pending_range && job_status(&j.dir) == RunStatus::Pending);
                if still {
                    if job_status(&j.dir) == RunStatus::Running {
                        rec.set_running(j.num);
                    }
                    continue;
                }
                let st = job_status(&j.dir);
                if st == RunStatus::Pending && pending_range {
                    continue;
                }
                let code = st.exit_code();
                rec.finish(j.num, code, 0.0);
                if code != 0 && task_state(&id, i).as_deref() == Some("TIMEOUT") {
                    rec.set_status(j.num, RunStatus::Timeout);
                }
                statusln!("#{} {}", j.num, rec.status(j.num));
                done.push((j.num, code));
                // A batch's last job done: say once why it trained one by one, if it did.
                if unit.len() > 1 && unit.iter().all(|u| done.iter().any(|d| d.0 == u.num)) {
                    if let (_, Some(why)) = unit_results(unit, code) {
                        statusln!("{} trained one by one: {why}", unit_name(unit));
                    }
                }
            }
        }
        rec.write()?;
        if done.len() == jobs.len() {
            break;
        }
        std::thread::sleep(Duration::from_secs_f64(spec.poll_seconds.max(0.2)));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slurm_time_forms() {
        for ok in ["60", "30:00", "2:00:00", "1-12", "1-12:00", "1-12:00:00"] {
            assert!(super::slurm_time(ok), "{ok}");
        }
        for bad in ["", "2h", "1-", "-5", "1:2:3:4", "1-2-3", "a:00", "1.5"] {
            assert!(!super::slurm_time(bad), "{bad}");
        }
    }
}
