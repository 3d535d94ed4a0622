//! Launchers: run a sweep's prepared jobs one after another in this process (`basic`) or
//! in a pool of worker processes (`local`), keep `sweep.csv`/`sweep.jsonl` current, and
//! report failures. Each job directory already holds its `.hydra/` records.

pub mod records;
pub mod slurm;

use crate::artifacts::run::{Marker, RunStatus, Summary};
use crate::config::{yaml, Node};
use crate::run;
use anyhow::{bail, Context, Result};
use chrono::Local;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The resolved job config a worker (or a SLURM task) runs from.
pub const RESOLVED: &str = "resolved.yaml";
/// Written by the job itself while it runs: how a sweep's state is known without a scheduler.
/// Whether some live process holds the job's lock.
fn job_locked(dir: &Path) -> bool {
    matches!(crate::plan::rundir::try_lock(dir), Ok(None))
}

/// One prepared job: its number, its override lines and its directory.
#[derive(Clone, Debug)]
pub struct Job {
    pub num: usize,
    pub lines: Vec<String>,
    pub dir: PathBuf,
}

#[derive(Clone, Debug)]
pub enum Launcher {
    /// In this process, one after another.
    Basic { fail_fast: bool, batch: Batch },
    /// `n_jobs` worker processes with `threads` CPU threads each.
    Local {
        n_jobs: usize,
        threads: usize,
        fail_fast: bool,
        batch: Batch,
    },
    /// One SLURM job array (tasks fail independently; fail-fast does not apply).
    Slurm(slurm::SlurmSpec),
}

/// `hydra/launcher=basic`, as its config node holds it (defaults: the launcher YAML files).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicNode {
    #[serde(rename = "_target_")]
    _target: String,
    fail_fast: bool,
    #[serde(default, deserialize_with = "batch_setting")]
    batch: Batch,
}

/// `hydra/launcher=local`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalNode {
    #[serde(rename = "_target_")]
    _target: String,
    n_jobs: Option<usize>,
    threads_per_job: Option<usize>,
    fail_fast: bool,
    #[serde(default, deserialize_with = "batch_setting")]
    batch: Batch,
}

/// `hydra/launcher=slurm`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SlurmNode {
    #[serde(rename = "_target_")]
    _target: String,
    partition: Option<String>,
    #[serde(deserialize_with = "slurm::time")]
    time: String,
    cpus_per_task: usize,
    #[serde(deserialize_with = "text_or_number")]
    mem: Option<String>,
    #[serde(deserialize_with = "text_or_number")]
    gpus: Option<String>,
    array_parallelism: Option<usize>,
    extra_args: Vec<String>,
    poll_seconds: f64,
    no_wait: bool,
    #[serde(default, deserialize_with = "batch_setting")]
    batch: Batch,
}

/// `hydra.launcher.batch`: whether the jobs of a sweep that share a shape train as one
/// stacked model (`run::batch`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Batch {
    /// Each job alone.
    Off,
    /// Batches of the jobs that can train together, split evenly over the workers.
    #[default]
    Auto,
    /// Batches of at most this many members.
    Max(usize),
}

/// `--fail-fast` launches nothing after the first failure, so it trains each job alone: the
/// members of a batch all start together.
fn unbatched_if(fail_fast: bool, batch: Batch) -> Batch {
    if fail_fast {
        Batch::Off
    } else {
        batch
    }
}

/// Members in one batch at most under `auto`: past this, a batch's step is long enough that
/// stacking more saves little, and a crash or Ctrl-C touches fewer runs.
const AUTO_MAX_MEMBERS: usize = 64;

/// `auto`, `off` (YAML 1.1 also reads it as false) or a whole number >= 1.
fn batch_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Batch, D::Error> {
    struct V;
    const WANT: &str = "auto, off or a whole number of members >= 1";
    impl serde::de::Visitor<'_> for V {
        type Value = Batch;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(WANT)
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Batch, E> {
            match s {
                "auto" => Ok(Batch::Auto),
                "off" => Ok(Batch::Off),
                other => Err(E::custom(format!("expected {WANT}, got '{other}'"))),
            }
        }
        fn visit_bool<E>(self, b: bool) -> Result<Batch, E> {
            Ok(if b { Batch::Auto } else { Batch::Off })
        }
        fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Batch, E> {
            match usize::try_from(i) {
                Ok(n) if n >= 1 => Ok(Batch::Max(n)),
                _ => Err(E::custom(format!("expected {WANT}, got {i}"))),
            }
        }
        fn visit_u64<E: serde::de::Error>(self, i: u64) -> Result<Batch, E> {
            self.visit_i64(i64::try_from(i).unwrap_or(i64::MAX))
        }
        fn visit_unit<E>(self) -> Result<Batch, E> {
            Ok(Batch::Auto)
        }
        fn visit_none<E>(self) -> Result<Batch, E> {
            Ok(Batch::Auto)
        }
    }
    d.deserialize_any(V)
}

/// Whether the config key at `path` never sets a shape or the loop's course, so jobs that
/// differ in it may train as one batch: the seeds, the optimizer's numbers (learning rate,
/// weight decay, momentum, dampening, betas, eps), and the numbers of `data`, `model`,
/// `schedule` and `adv` that some job of the sweep writes as a float
/// (`floats`: noise levels, SNR, init scales, gammas; `model.scale=0.1,1,10` too, where 1 and
/// 10 read as integers). Integers alone there (widths, sizes, counts) set shapes.
fn value_only(path: &str, floats: &std::collections::HashSet<String>) -> bool {
    matches!(
        path,
        "seed"
            | "data.seed"
            | "lr"
            | "optimizer.lr"
            | "optimizer.weight_decay"
            | "optimizer.momentum"
            | "optimizer.dampening"
            | "optimizer.betas"
            | "optimizer.eps"
    ) || floats.contains(path)
}

/// A job's config as `(dotted path, YAML value)` leaves, maps flattened.
fn leaves(dir: &Path) -> Option<Vec<(String, crate::config::Value)>> {
    fn walk(node: &Node, path: &str, out: &mut Vec<(String, crate::config::Value)>) {
        match &node.v {
            crate::config::Value::Map(m) => {
                for (k, child) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(child, &p, out);
                }
            }
            v => out.push((path.to_string(), v.clone())),
        }
    }
    let path = dir.join(".hydra").join(RESOLVED);
    let text = std::fs::read_to_string(&path).ok()?;
    let node = yaml::load(&text, &path.display().to_string()).ok()?;
    let mut out = vec![];
    walk(&node, "", &mut out);
    Some(out)
}

/// The models `batch: auto` stacks: those whose batched step measured faster than their
/// steps alone (`bench/batched.sh`). The two-layer CNN's and the mean-field net's steps are
/// compute-bound, and stacked they measured 0.98x and 0.77x as fast; the image CNN and the
/// CAE little faster (1.09x): they batch only when asked (`batch: N`). A `sequential` of
/// linear layers steps as the MLP does (16 seeds: 0.39 s batched, 0.52 s not; 0.54 s not
/// with dropout).
const AUTO_MODELS: [&str; 2] = ["mlp", "sequential"];

/// Each job's batch key: its config without the value-only keys; jobs with equal keys may
/// train as one batch (None: the job runs alone: its config could not be read, or `auto`
/// does not stack its model).
fn batch_keys(jobs: &[Job], batch: Batch) -> Vec<Option<String>> {
    let all: Vec<_> = jobs.iter().map(|j| leaves(&j.dir)).collect();
    let floats: std::collections::HashSet<String> = all
        .iter()
        .flatten()
        .flatten()
        .filter(|(p, v)| {
            matches!(v, crate::config::Value::Float(_))
                && ["data.", "model.", "schedule.", "adv."]
                    .iter()
                    .any(|s| p.starts_with(s))
        })
        .map(|(p, _)| p.clone())
        .collect();
    all.into_iter()
        .map(|l| {
            let l = l?;
            let model = l.iter().find(|(p, _)| p == "model.name").map(|(_, v)| v);
            if batch == Batch::Auto
                && !matches!(model, Some(crate::config::Value::Str(m)) if AUTO_MODELS.contains(&m.as_str()))
            {
                return None;
            }
            let mut key = String::new();
            for (p, v) in l {
                if !value_only(&p, &floats) {
                    key.push_str(&format!("{p}={}\n", yaml::dump(&Node::bare(v))));
                }
            }
            Some(key)
        })
        .collect()
}

/// The sweep's jobs in the units a worker runs: batches of jobs that may train together
/// (split so that every worker gets a share, each of at most the batch limit), and single
/// jobs; in the order of each unit's first job.
fn units(jobs: &[Job], batch: Batch, workers: usize) -> Vec<Vec<&Job>> {
    if batch == Batch::Off {
        return jobs.iter().map(|j| vec![j]).collect();
    }
    let mut groups: Vec<(Option<String>, Vec<&Job>)> = vec![];
    for (j, key) in jobs.iter().zip(batch_keys(jobs, batch)) {
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, g)) => g.push(j),
            None => groups.push((key, vec![j])),
        }
    }
    let mut out = vec![];
    for (_, g) in groups {
        let limit = match batch {
            Batch::Max(n) => n,
            _ => g.len().div_ceil(workers.max(1)).clamp(1, AUTO_MAX_MEMBERS),
        };
        // Even chunks: 10 jobs on 4 slots are 3+3+2+2, not 3+3+3+1.
        let chunks = g.len().div_ceil(limit);
        let (base, extra) = (g.len() / chunks, g.len() % chunks);
        let mut rest = g.as_slice();
        for c in 0..chunks {
            let take = base + usize::from(c < extra);
            out.push(rest[..take].to_vec());
            rest = &rest[take..];
        }
    }
    out
}

/// What a finished unit's members tell the sweep: each job's exit code (from its marker;
/// `code`, the worker's, when it wrote none) and why a batch trained its jobs alone.
fn unit_results(unit: &[&Job], code: i32) -> (Vec<(usize, i32)>, Option<String>) {
    let mut why = None;
    let codes = unit
        .iter()
        .map(|j| {
            let m = Marker::read(&j.dir);
            if why.is_none() {
                why = m.as_ref().and_then(|m| m.unbatched.clone());
            }
            let c = m
                .and_then(|m| m.exit_code)
                .filter(|_| unit.len() > 1)
                .unwrap_or(code);
            (j.num, c)
        })
        .collect();
    (codes, why.filter(|_| unit.len() > 1))
}

/// `#3`, or `#3-#10` for a batch of consecutive jobs, `#3,#5,#9` otherwise.
fn unit_name(unit: &[&Job]) -> String {
    let nums: Vec<usize> = unit.iter().map(|j| j.num).collect();
    match nums.as_slice() {
        [one] => format!("#{one}"),
        [a, .., b] if nums.windows(2).all(|w| w[1] == w[0] + 1) => format!("#{a}-#{b}"),
        _ => nums
            .iter()
            .map(|n| format!("#{n}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// `4G` or `4096`, `a100:1` or `1`: SLURM takes both as text.
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("text or a whole number, or null")
        }
        fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Some(s.to_string()))
        }
        fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Self::Value, E> {
            if i < 0 {
                return Err(E::custom(format!("expected a count >= 0, got {i}")));
            }
            Ok(Some(i.to_string()))
        }
        fn visit_u64<E>(self, i: u64) -> Result<Self::Value, E> {
            Ok(Some(i.to_string()))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// A count that must be at least 1 when given (`n_jobs=0` is an error, not "all cores").
fn positive(v: Option<usize>, key: &str) -> Result<Option<usize>> {
    match v {
        Some(0) => bail!(
            "config key 'hydra.launcher.{key}': expected a whole number >= 1, or null for the default, got 0"
        ),
        v => Ok(v),
    }
}

impl Launcher {
    /// From the `hydra.launcher` node, typed: a wrong type or an unknown key is an error naming
    /// it; `fail_fast` from the command line wins when set.
    pub fn from_config(cfg: &Node, fail_fast_flag: bool, no_wait_flag: bool) -> Result<Launcher> {
        let Some(l) = cfg.get_path("hydra.launcher") else {
            bail!(
                "the config has no hydra.launcher; pick one with hydra/launcher=basic|local|batched|slurm"
            );
        };
        let target = l
            .get_path("_target_")
            .and_then(|n| n.as_str())
            .unwrap_or("ezflt.launcher.local");
        let path = "hydra.launcher";
        Ok(match target {
            "ezflt.launcher.basic" => {
                let b: BasicNode = crate::config::de::from_node(l, path)?;
                let fail_fast = fail_fast_flag || b.fail_fast;
                Launcher::Basic {
                    fail_fast,
                    batch: unbatched_if(fail_fast, b.batch),
                }
            }
            "ezflt.launcher.local" => {
                let c: LocalNode = crate::config::de::from_node(l, path)?;
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let n_jobs = positive(c.n_jobs, "n_jobs")?.unwrap_or(cores);
                // Split the cores between workers so the pool does not oversubscribe the CPU.
                let threads = positive(c.threads_per_job, "threads_per_job")?
                    .unwrap_or((cores / n_jobs).max(1));
                let fail_fast = fail_fast_flag || c.fail_fast;
                Launcher::Local {
                    n_jobs,
                    threads,
                    fail_fast,
                    batch: unbatched_if(fail_fast, c.batch),
                }
            }
            "ezflt.launcher.slurm" => {
                let c: SlurmNode = crate::config::de::from_node(l, path)?;
                if c.poll_seconds.is_nan() || c.poll_seconds <= 0.0 {
                    bail!(
                        "config key 'hydra.launcher.poll_seconds': expected a number of seconds > 0, got {}",
                        c.poll_seconds
                    );
                }
                Launcher::Slurm(slurm::SlurmSpec {
                    partition: c.partition,
                    time: c.time,
                    cpus_per_task: positive(Some(c.cpus_per_task), "cpus_per_task")?.unwrap_or(1),
                    mem: c.mem,
                    gpus: c.gpus,
                    array_parallelism: positive(c.array_parallelism, "array_parallelism")?,
                    extra_args: c.extra_args,
                    poll_seconds: c.poll_seconds,
                    no_wait: no_wait_flag || c.no_wait,
                    batch: c.batch,
                })
            }
            other => bail!("hydra.launcher._target_ '{other}': this ezflt has the launchers basic, local (also as batched) and slurm (hydra/launcher=basic|local|batched|slurm)"),
        })
    }
}

/// Writes the job's resolved config next to its `.hydra/` records (the worker's input).
pub fn write_resolved(dir: &Path, resolved: &Node) -> Result<()> {
    let d = dir.join(".hydra");
    std::fs::create_dir_all(&d)?;
    crate::plan::rundir::write_atomic(&d.join(RESOLVED), &yaml::dump(resolved))
}

/// The job's number in its sweep (`hydra.job.num` in its `.hydra/hydra.yaml`).
fn job_num(dir: &Path) -> Option<usize> {
    let path = dir.join(".hydra").join("hydra.yaml");
    let text = std::fs::read_to_string(&path).ok()?;
    let node = yaml::load(&text, &path.display().to_string()).ok()?;
    match node.get_path("hydra.job.num")?.v {
        crate::config::Value::Int(n) => usize::try_from(n).ok(),
        _ => None,
    }
}

/// A prepared job a worker holds: its config, lock and number.
struct Held {
    dir: PathBuf,
    job: Node,
    num: usize,
    _lock: std::fs::File,
}

/// Runs prepared jobs in this process (what a worker process does) and returns each one's
/// exit code, each job with a marker while it runs and `summary.json` when it ends: those that
/// continue from a checkpoint one by one, the others as one batch when they can train as one
/// (`run::batch`), else one by one. Each job gets its marker and `summary.json` as alone.
pub fn run_jobs(dirs: &[PathBuf], threads: Option<usize>, quiet: bool) -> Result<Vec<i32>> {
    // A worker stops at a safe point on SIGINT/SIGTERM, like a single run.
    run::stop_flag();
    let mut held = vec![];
    for dir in dirs {
        let path = dir.join(".hydra").join(RESOLVED);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{}: not a prepared sweep job (no {})",
                dir.display(),
                path.display()
            )
        })?;
        let mut job = yaml::load(&text, &path.display().to_string())?;
        if let (Some(t), Some(crate::config::Value::Null) | None) =
            (threads, job.get_path("threads").map(|n| &n.v))
        {
            job.set_path_create("threads", Node::bare(crate::config::Value::Int(t as i64)));
        }
        let Some(lock) = crate::plan::rundir::try_lock(dir)? else {
            bail!(
                "{} is already running in another process; not starting it twice",
                dir.display()
            );
        };
        Marker {
            status: RunStatus::Running,
            pid: Some(std::process::id()),
            started: Some(Local::now().to_rfc3339()),
            ..Marker::default()
        }
        .write(dir)?;
        let num = job_num(dir).unwrap_or(0);
        held.push(Held {
            dir: dir.clone(),
            job,
            num,
            _lock: lock,
        });
    }
    let mut results: Vec<(usize, Result<run::RunResult>, Option<String>)> = vec![];
    let mut fresh = vec![];
    for (i, h) in held.iter().enumerate() {
        if let Ok(resume) = run::resume_point(&h.dir) {
            let log = Some(h.dir.join("train.log"));
            let r = run::run(&h.job, &h.dir, log, quiet, Some(resume), None);
            let why = (dirs.len() > 1).then(|| "it continues from its checkpoint".to_string());
            results.push((i, r, why));
            continue;
        }
        // A fresh start: nothing from an earlier failed attempt may mix into this one.
        for f in [
            "metrics.jsonl",
            "metrics.csv",
            "summary.json",
            "features.npz",
        ] {
            let _ = std::fs::remove_file(h.dir.join(f));
        }
        let _ = std::fs::remove_dir_all(h.dir.join("features.spill"));
        fresh.push(i);
    }
    if !fresh.is_empty() {
        let jobs: Vec<run::batch::BatchJob> = fresh
            .iter()
            .map(|&i| run::batch::BatchJob {
                job: &held[i].job,
                dir: &held[i].dir,
                num: held[i].num,
                log: Some(held[i].dir.join("train.log")),
            })
            .collect();
        let (rs, why) = run::batch::run_batch(&jobs, quiet);
        for (&i, r) in fresh.iter().zip(rs) {
            results.push((i, r, why.clone()));
        }
    }
    results.sort_by_key(|r| r.0);
    let mut codes = vec![1; held.len()];
    for (i, result, why) in results {
        let (status, code) = match &result {
            Ok(r) => (r.status(), r.exit_code()),
            Err(_) => (RunStatus::Failed, 1),
        };
        Marker {
            status,
            exit_code: Some(code),
            ended: Some(Local::now().to_rfc3339()),
            unbatched: why,
            ..Marker::default()
        }
        .write(&held[i].dir)?;
        if let (Err(e), 1) = (result, held.len()) {
            // A job alone reports its error as the worker's own.
            return Err(e);
        }
        codes[i] = code;
    }
    Ok(codes)
}

/// Last `n` lines of a job's logs, for the failure table.
fn tail(dir: &Path, n: usize) -> String {
    let mut lines: Vec<String> = vec![];
    for f in ["train.log", "stdout.log"] {
        if let Ok(t) = std::fs::read_to_string(dir.join(f)) {
            lines.extend(t.lines().map(String::from));
        }
    }
    let start = lines.len().saturating_sub(n);
    lines[start..]
        .iter()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One finished job.
struct Finished {
    num: usize,
    code: i32,
}

/// Launches `jobs` (already prepared in `root`; `all` = every job of the sweep, for the
/// records) and returns the sweep's exit code.
pub fn launch(root: &Path, all: &[Job], jobs: &[Job], launcher: &Launcher) -> Result<i32> {
    let started = Instant::now();
    let mut rec = records::Records::new(root, all);
    rec.write()?;
    let tty = std::io::stdout().is_terminal() && !crate::shell::quiet();
    let bar = tty.then(|| {
        let b = ProgressBar::new(jobs.len() as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30.green/blue} {pos}/{len} jobs [{elapsed_precise}<{eta_precise}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    if let Some(b) = &bar {
        crate::shell::attach_bar(b);
    }
    let say = |s: String| statusln!("{s}");
    let mut finished: Vec<Finished> = vec![];
    let mut stopped = false;
    match launcher {
        Launcher::Slurm(spec) => {
            if let Some(b) = &bar {
                crate::shell::detach_bar();
                b.finish_and_clear();
            }
            let done = slurm::launch(root, jobs, &mut rec, spec)?;
            if spec.no_wait {
                return Ok(0);
            }
            finished.extend(done.into_iter().map(|(num, code)| Finished { num, code }));
        }
        Launcher::Basic { fail_fast, batch } => {
            for unit in units(jobs, *batch, 1) {
                if stopped {
                    break;
                }
                for j in &unit {
                    rec.set_running(j.num);
                }
                rec.write()?;
                let t0 = Instant::now();
                let dirs: Vec<PathBuf> = unit.iter().map(|j| j.dir.clone()).collect();
                let code = match run_jobs(&dirs, None, false) {
                    Ok(codes) => codes.into_iter().max_by_key(|c| *c != 0).unwrap_or(1),
                    Err(e) => {
                        errln!("Error in job {}: {e:#}", unit_name(&unit));
                        1
                    }
                };
                let secs = t0.elapsed().as_secs_f64();
                let (codes, why) = unit_results(&unit, code);
                if let Some(why) = why {
                    say(format!("{} trained one by one: {why}", unit_name(&unit)));
                }
                for (num, code) in codes {
                    rec.finish(num, code, secs);
                    say(format!("#{num} {} ({secs:.1} s)", rec.status(num)));
                    finished.push(Finished { num, code });
                    if code == 130 || (*fail_fast && code != 0) {
                        stopped = true;
                    }
                }
                rec.write()?;
            }
        }
        Launcher::Local {
            n_jobs,
            threads,
            fail_fast,
            batch,
        } => {
            let exe =
                std::env::current_exe().context("locating the ezflt binary for the workers")?;
            let all_units = units(jobs, *batch, *n_jobs);
            let mut queue = all_units.iter();
            let mut running: Vec<(&Vec<&Job>, Child, Instant)> = vec![];
            // The records are rewritten when a job starts or ends, not on every poll.
            let mut changed = true;
            loop {
                while !stopped && running.len() < *n_jobs {
                    let Some(unit) = queue.next() else { break };
                    // A batch's worker writes its messages into the first job's stdout.log.
                    let out = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(unit[0].dir.join("stdout.log"))
                        .with_context(|| format!("opening {}/stdout.log", unit[0].dir.display()))?;
                    let mut args = vec!["run-job".to_string()];
                    args.extend(unit.iter().map(|j| j.dir.display().to_string()));
                    args.extend(["--threads".to_string(), threads.to_string()]);
                    let child = Command::new(&exe)
                        .args(&args)
                        .stdin(Stdio::null())
                        .stdout(out.try_clone()?)
                        .stderr(out)
                        .spawn()
                        .with_context(|| {
                            format!("starting a worker for job {}", unit_name(unit))
                        })?;
                    for j in unit {
                        rec.set_running(j.num);
                    }
                    running.push((unit, child, Instant::now()));
                    changed = true;
                }
                if std::mem::take(&mut changed) {
                    rec.write()?;
                }
                if running.is_empty() {
                    break;
                }
                if let Some(b) = &bar {
                    let failed = finished.iter().filter(|f| f.code != 0).count();
                    let jobs_running: usize = running.iter().map(|r| r.0.len()).sum();
                    b.set_message(format!("{jobs_running} running, {failed} failed"));
                }
                std::thread::sleep(Duration::from_millis(10));
                let mut i = 0;
                while i < running.len() {
                    match running[i].1.try_wait()? {
                        Some(st) => {
                            let (unit, _, t0) = running.remove(i);
                            let secs = t0.elapsed().as_secs_f64();
                            let (codes, why) = unit_results(unit, st.code().unwrap_or(1));
                            if let Some(why) = why {
                                say(format!("{} trained one by one: {why}", unit_name(unit)));
                            }
                            for (num, code) in codes {
                                rec.finish(num, code, secs);
                                say(format!("#{num} {} ({secs:.1} s)", rec.status(num)));
                                if let Some(b) = &bar {
                                    b.inc(1);
                                }
                                if code == 130 || (*fail_fast && code != 0) {
                                    stopped = true;
                                }
                                finished.push(Finished { num, code });
                            }
                            changed = true;
                        }
                        None => i += 1,
                    }
                }
            }
        }
    }
    if let Some(b) = bar {
        crate::shell::detach_bar();
        b.finish_and_clear();
    }
    rec.write()?;
    let failed: Vec<&Finished> = finished.iter().filter(|f| f.code != 0).collect();
    let not_run = jobs.len() - finished.len();
    statusln!(
        "Sweep done in {:.1} s: {} completed, {} failed{} ({})",
        started.elapsed().as_secs_f64(),
        finished.len() - failed.len(),
        failed.len(),
        if not_run > 0 {
            format!(", {not_run} not launched (--fail-fast or interrupt)")
        } else {
            String::new()
        },
        root.join(records::CSV).display()
    );
    if failed.is_empty() && not_run == 0 {
        return Ok(0);
    }
    for f in &failed {
        let j = jobs.iter().find(|j| j.num == f.num).expect("launched job");
        errln!(
            "  #{} {} [{}] exit {}: {}",
            f.num,
            rec.status(f.num),
            j.lines.join(" "),
            f.code,
            j.dir.display()
        );
        errln!("{}", tail(&j.dir, 5));
    }
    if !failed.is_empty() || not_run > 0 {
        errln!(
            "Re-run what did not complete with: ezflt resume {}",
            root.display()
        );
    }
    Ok(1)
}

/// The jobs of an existing sweep directory, in job order.
pub fn jobs_of(root: &Path) -> Result<Vec<Job>> {
    if !root.join("multirun.yaml").exists() {
        bail!(
            "{} is not a sweep directory (no multirun.yaml)",
            root.display()
        );
    }
    let mut jobs = vec![];
    let mut composed_only = 0;
    for e in std::fs::read_dir(root)?.filter_map(|e| e.ok()) {
        let dir = e.path();
        if !dir.join(".hydra").join(RESOLVED).exists() {
            composed_only += usize::from(dir.join(".hydra").join("config.yaml").exists());
            continue;
        }
        let hydra = std::fs::read_to_string(dir.join(".hydra/hydra.yaml")).unwrap_or_default();
        let num = hydra
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("num: ")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .unwrap_or(usize::MAX);
        let lines = crate::plan::rundir::read_task_overrides(&dir);
        jobs.push(Job { num, lines, dir });
    }
    jobs.sort_by_key(|j| j.num);
    if jobs.is_empty() && composed_only > 0 {
        bail!(
            "{} is a dry run: {composed_only} job(s) were composed and checked, none was prepared to run; \
             launch them with the same command without --dry-run",
            root.display()
        );
    }
    if jobs.is_empty() {
        bail!(
            "{} holds no prepared jobs (run it with ezflt --multirun first)",
            root.display()
        );
    }
    Ok(jobs)
}

/// Status of a job from its files: completed / failed / diverged / interrupted / running /
/// crashed (a marker says running but no process holds it) / pending.
pub fn job_status(dir: &Path) -> RunStatus {
    if let Some(s) = Summary::read(dir) {
        return s.status;
    }
    match Marker::read(dir) {
        Some(m) if m.status == RunStatus::Running => {
            if job_locked(dir) {
                RunStatus::Running
            } else {
                RunStatus::Crashed
            }
        }
        Some(m) => m.status,
        None => RunStatus::Pending,
    }
}

/// `ezflt resume <sweep>`: re-launches the jobs that did not complete.
pub fn resume_sweep(root: &Path, fail_fast: bool) -> Result<i32> {
    let jobs = jobs_of(root)?;
    // What a killed launcher was writing (sweep.csv.tmp, ...).
    crate::plan::rundir::clean_temps(root);
    let mut todo = vec![];
    for j in &jobs {
        match job_status(&j.dir) {
            RunStatus::Completed => {}
            // A worker that outlived its launcher (killed) finishes the job itself.
            RunStatus::Running => statusln!(
                "#{} : still running in another process; left to finish there",
                j.num
            ),
            _ => todo.push(j.clone()),
        }
    }
    let text = std::fs::read_to_string(root.join("multirun.yaml"))?;
    let master = yaml::load(&text, &root.join("multirun.yaml").display().to_string())?;
    let launcher = Launcher::from_config(&master, fail_fast, false)?;
    outln!(
        "Resume: {} of {} job(s) in {} did not complete",
        todo.len(),
        jobs.len(),
        root.display()
    );
    if todo.is_empty() {
        return Ok(0);
    }
    for j in &todo {
        outln!("#{} : {}", j.num, j.lines.join(" "));
    }
    launch(root, &jobs, &todo, &launcher)
}
