//! `ezflt inspect <run>`: what a run holds (status, overrides, metrics, tracked tensors,
//! plots); `--repair` assembles the archive an interrupted run left as spill files.

use crate::artifacts::npz::Archive;
use crate::artifacts::run::{Summary, SUMMARY};
use crate::track::spill;
use anyhow::{bail, Context, Result};
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::path::Path;

pub fn cli() -> Command {
    Command::new("inspect")
        .about("Show what a run directory holds; --repair finishes an interrupted run's feature archive")
        .arg(Arg::new("run").required(true).value_name("RUN_DIR"))
        .arg(Arg::new("repair").long("repair").action(ArgAction::SetTrue).help("Assemble features.npz from the snapshot spill files a crash left behind, or rebuild a damaged one from its whole arrays"))
        .arg(Arg::new("tensor").long("tensor").value_name("NAME").help("Print statistics of one archived array"))
        .arg(Arg::new("step").long("step").value_name("INDEX").value_parser(clap::value_parser!(usize)).requires("tensor").help("With --tensor: the snapshot index (default: the last)"))
}

fn stats(v: &[f32]) -> String {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
    let norm = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let max_abs = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    format!("mean={mean:.6} norm={norm:.6} max_abs={max_abs:.6}")
}

/// `--repair` without a spill: an archive that does not open is rebuilt from its whole members.
fn repair_archive(archive: &Path) -> Result<i32> {
    if !archive.exists() || Archive::open(archive).is_ok() {
        outln!(
            "nothing to repair: {} has no snapshot spill and its archive opens",
            archive.parent().unwrap_or(archive).display()
        );
        return Ok(0);
    }
    let s = crate::artifacts::npz::salvage(archive)?;
    outln!(
        "salvaged {}: kept {} ({}){}; the damaged file is {}",
        archive.display(),
        s.kept.len(),
        s.kept.join(", "),
        s.cut
            .map(|c| format!(", lost '{c}' (cut short) and what followed it"))
            .unwrap_or_default(),
        archive.with_extension("npz.damaged").display()
    );
    Ok(0)
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let dir = Path::new(m.get_one::<String>("run").expect("required"));
    if !dir.join("summary.json").exists() && !dir.join(".hydra").exists() {
        bail!("{} is not an ezflt run directory (no summary.json or .hydra/); pass outputs/<date>/<time>", dir.display());
    }
    let archive = dir.join(spill::ARCHIVE);
    let has_spill = dir.join(spill::SPILL).join("meta.json").exists();
    if m.get_flag("repair") {
        if !has_spill {
            return repair_archive(&archive);
        }
        if crate::plan::rundir::try_lock(dir)?.is_none() {
            bail!(
                "{} is still training: its spill is in use; the run assembles its archive when it ends",
                dir.display()
            );
        }
        let t = spill::finish(dir, false)?;
        outln!("assembled {} with {t} snapshots", archive.display());
        return Ok(0);
    }
    if let Some(name) = m.get_one::<String>("tensor") {
        let mut a = Archive::open(&archive)?;
        let shape = a.shape(name)?;
        let index = match m.get_one::<usize>("step") {
            Some(i) => *i,
            None => shape.first().copied().unwrap_or(1).saturating_sub(1),
        };
        let steps = a.read_i64("step")?;
        let x = a.read_step(name, index)?;
        outln!(
            "{name} snapshot {index} (step {}): shape {:?} {}",
            steps.get(index).copied().unwrap_or(-1),
            x.shape,
            stats(&x.values)
        );
        return Ok(0);
    }

    outln!("run       {}", dir.display());
    if let Ok(text) = std::fs::read_to_string(dir.join(SUMMARY)) {
        let s: Summary = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid summary", dir.join(SUMMARY).display()))?;
        outln!(
            "status    {} ({} steps, {} epochs, {:.2} s, {} on {})",
            s.status,
            s.steps,
            s.epochs,
            s.duration_s,
            s.backend,
            s.device,
        );
        outln!("model     {} on {} (seed {})", s.model, s.data, s.seed);
        if !s.last.is_empty() {
            let items: Vec<String> = s
                .last
                .iter()
                .map(|(k, v)| format!("{k}={:.4}", v.as_f64().unwrap_or(f64::NAN)))
                .collect();
            outln!("final     {}", items.join(" "));
        }
        if let Some(w) = &s.wandb {
            let synced = Path::new(&format!("{}.synced", w.log.display())).exists();
            outln!(
                "wandb     run {} ({}): {}",
                w.run_id,
                w.mode,
                match (synced, w.url.as_deref()) {
                    (true, Some(u)) => format!("synced, {u}"),
                    (true, None) => "synced".to_string(),
                    (false, _) => format!("not synced: `ezflt sync {}`", dir.display()),
                }
            );
        }
    } else {
        outln!("status    no summary.json (not run yet, or still running)");
    }
    if dir.join(".hydra").exists() {
        let ov = crate::plan::rundir::read_task_overrides(dir);
        outln!(
            "overrides {}",
            if ov.is_empty() {
                "(none)".to_string()
            } else {
                ov.join(" ")
            }
        );
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("metrics.jsonl")) {
        outln!("metrics   metrics.jsonl: {} rows", text.lines().count());
    }
    if archive.exists() {
        let mut a = Archive::open(&archive)?;
        let steps = a.read_i64("step")?;
        let meta: serde_json::Value = a
            .read_string("metadata")
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        outln!(
            "features  {}: {} snapshots (steps {}..{}, {}){}",
            spill::ARCHIVE,
            steps.len(),
            steps.first().copied().unwrap_or(0),
            steps.last().copied().unwrap_or(0),
            meta["schedule"].as_str().unwrap_or("?"),
            if meta["complete"] == false {
                ", repaired after a crash"
            } else {
                ""
            }
        );
        for name in a.names() {
            if name == "metadata" {
                continue;
            }
            outln!("  {name:<40} {:?}", a.shape(&name)?);
        }
    } else if has_spill {
        outln!("features  incomplete: snapshot spill files from an interrupted run; `ezflt inspect --repair {}` assembles them", dir.display());
    } else {
        outln!("features  none (tracker=none)");
    }
    let plots = dir.join("plots");
    let mut pngs: Vec<String> = std::fs::read_dir(&plots)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    pngs.sort();
    outln!(
        "plots     {}",
        if pngs.is_empty() {
            "(none)".to_string()
        } else {
            pngs.join(", ")
        }
    );
    Ok(0)
}
