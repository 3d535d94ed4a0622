//! `ezflt sync <run|sweep|wandb dir|.wandb file>...`: uploads W&B record logs that were written
//! offline or could not be sent; logs already marked synced are skipped, so syncing twice is safe.

use crate::wandb::client::Client;
use crate::wandb::settings::{self, FromConfig, Settings};
use crate::wandb::stream::{Overrides, Stream};
use anyhow::{bail, Result};
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::path::{Path, PathBuf};

pub fn cli() -> Command {
    Command::new("sync")
        .about("Upload W&B logs of runs that were offline or lost the server (WANDB_API_KEY, WANDB_BASE_URL)")
        .arg(Arg::new("paths").required(true).num_args(1..).value_name("RUN_OR_SWEEP_DIR"))
        .arg(Arg::new("entity").long("entity").value_name("ENTITY").help("Upload to this entity instead of the recorded one"))
        .arg(Arg::new("project").long("project").value_name("PROJECT").help("Upload to this project instead of the recorded one"))
        .arg(Arg::new("force").long("force").action(ArgAction::SetTrue).help("Also logs already marked synced (the server keeps each row once)"))
        .arg(Arg::new("dry-run").long("dry-run").action(ArgAction::SetTrue).help("List what would be uploaded"))
}

/// Every `run-<id>.wandb` under `p` (a log, a journal dir, a run, a sweep, a `wandb/` dir),
/// plus logs a run's summary.json points to (WANDB_DIR elsewhere).
fn collect(p: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if p.is_file() {
        if crate::wandb::log_run_id(p).is_some() {
            out.push(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
        }
        return;
    }
    if let Some(log) = crate::artifacts::run::Summary::read(p).and_then(|s| s.wandb.map(|w| w.log))
    {
        if log.is_file() && !out.contains(&log) {
            out.push(log);
        }
    }
    if depth == 0 {
        return;
    }
    if let Ok(rd) = std::fs::read_dir(p) {
        let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            if e.file_name().is_some_and(|n| {
                n == ".hydra" || n == "files" || n == "features.spill" || n == "checkpoint"
            }) {
                continue;
            }
            collect(&e, depth - 1, out);
        }
    }
}

/// The run's own logger settings (timings, base URL, project) from `.hydra/config.yaml`
/// above the log, else defaults; the environment fills the rest either way.
fn settings_for(log: &Path) -> Result<Settings> {
    for dir in log.ancestors().skip(1).take(5) {
        let cfg = dir.join(".hydra").join("config.yaml");
        if let Ok(text) = std::fs::read_to_string(&cfg) {
            let node = crate::config::yaml::load(&text, &cfg.display().to_string())?;
            let logger = node
                .child("logger")
                .cloned()
                .unwrap_or_else(crate::config::Node::map);
            if let Some(s) = crate::run::specs::logger_spec(&node, &logger)? {
                return Ok(s);
            }
        }
    }
    settings::resolve(
        &FromConfig {
            required: true,
            upload_plots: true,
            ..Default::default()
        },
        &|k| std::env::var(k).ok(),
    )
}

fn synced_marker(log: &Path) -> PathBuf {
    let mut m = log.as_os_str().to_owned();
    m.push(".synced");
    PathBuf::from(m)
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let mut logs = vec![];
    for p in m.get_many::<String>("paths").into_iter().flatten() {
        let path = Path::new(p);
        if !path.exists() {
            bail!("sync: {p} does not exist; give a run or sweep directory (outputs/..., multirun/...) or a .wandb file");
        }
        collect(path, 5, &mut logs);
    }
    logs.sort();
    logs.dedup();
    if logs.is_empty() {
        bail!("sync: no W&B logs (wandb/*/run-*.wandb) found there; runs log to W&B with logger=wandb");
    }
    let force = m.get_flag("force");
    let ov = Overrides {
        entity: m.get_one::<String>("entity").cloned(),
        project: m.get_one::<String>("project").cloned(),
    };
    let mut failed = 0;
    let mut done = 0;
    for log in &logs {
        if synced_marker(log).exists() && !force {
            statusln!(
                "{}: already synced (--force to upload again)",
                log.display()
            );
            continue;
        }
        if m.get_flag("dry-run") {
            outln!("{}: would be uploaded", log.display());
            continue;
        }
        let s = settings_for(log)?;
        let Some(key) = s.api_key.clone() else {
            bail!(
                "sync: no W&B API key: set WANDB_API_KEY or add {} to ~/.netrc",
                s.base_url
            );
        };
        settings::check_key(&key)?;
        let client = Client::new(&s.base_url, Some(key), s.timing.clone())?;
        let never = || false;
        let mut stream = Stream::new(client, log, ov.clone(), None, &never);
        let r = stream.replay(None);
        match (&r.problem, r.synced) {
            (None, true) => {
                done += 1;
                statusln!(
                    "{}: synced {} rows{}",
                    log.display(),
                    r.rows_sent,
                    r.url.map(|u| format!(" to {u}")).unwrap_or_default()
                );
            }
            (p, _) => {
                failed += 1;
                errln!(
                    "{}: not fully synced: {} ({} rows sent{})",
                    log.display(),
                    p.clone().unwrap_or_else(|| "unknown reason".into()),
                    r.rows_sent,
                    r.exit_code
                        .map(|c| format!(", exit code {c}"))
                        .unwrap_or_default()
                );
            }
        }
    }
    if failed > 0 {
        errln!("sync: {done} synced, {failed} not; fix the cause and run `ezflt sync` again (rows the server has are not sent twice)");
        return Ok(1);
    }
    Ok(0)
}
