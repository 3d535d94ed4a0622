//! `ezflt plot <run|sweep>...`: (re)renders a run's figures from its archive and metrics, a
//! sweep's summaries and its configurations overlaid, or several runs overlaid.

use crate::plot::{self, PlotSpec};
use anyhow::{bail, Result};
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::path::{Path, PathBuf};

pub fn cli() -> Command {
    Command::new("plot")
        .about("Render a run's plots (curves, feature evolution, heatmaps, alignment) or a sweep's summaries")
        .arg(Arg::new("dirs").required(true).num_args(1..).value_name("RUN_OR_SWEEP_DIR"))
        .arg(Arg::new("what").long("what").value_name("KINDS").value_delimiter(',').action(ArgAction::Append).value_parser(plot::KINDS.to_vec()).help("Figures to draw (default: all that apply)"))
        .arg(Arg::new("tensor").long("tensor").value_name("NAME").help("Tracked tensor (default: the first tracked)"))
        .arg(Arg::new("step").long("step").value_name("STEP").value_parser(clap::value_parser!(i64)).conflicts_with("epoch").help("Snapshot at this step (default: the last)"))
        .arg(Arg::new("epoch").long("epoch").value_name("EPOCH").value_parser(clap::value_parser!(i64)).help("Snapshot at the end of this epoch (0-based)"))
        .arg(Arg::new("epochs").long("epochs").value_name("E,E,...").value_delimiter(',').action(ArgAction::Append).value_parser(clap::value_parser!(i64)).help("comparison: these epochs side by side (0-based; default: start, thirds, end)"))
        .arg(Arg::new("metric").long("metric").value_name("NAME").help("evolution: norm|mean|std|max_abs; sweeps: a summary metric (test_acc, test_loss, ...)"))
        .arg(Arg::new("out").long("out").value_name("DIR").help("Output folder (default: <dir>/plots)"))
        .arg(Arg::new("format").long("format").value_name("FMT").value_parser(["png", "svg"]).default_value("png"))
        .arg(Arg::new("log-x").long("log-x").action(ArgAction::SetTrue).help("Logarithmic step axis"))
        .arg(Arg::new("by").long("by").value_name("KEYS").value_delimiter(',').action(ArgAction::Append).help("Overlays: one curve per value of these config keys (default: the overrides that differ, except seed)"))
        .arg(Arg::new("filter").long("filter").value_name("KEY=VALUE").action(ArgAction::Append).help("Overlays: only runs where KEY has VALUE (repeatable)"))
        .arg(Arg::new("band").long("band").value_name("BAND").value_parser(["std", "minmax", "none"]).default_value("std").help("Overlays: the band over seeds around each mean"))
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let dirs: Vec<PathBuf> = m
        .get_many::<String>("dirs")
        .expect("required")
        .map(PathBuf::from)
        .collect();
    let spec = PlotSpec {
        what: m
            .get_many::<String>("what")
            .map(|v| v.cloned().collect())
            .unwrap_or_default(),
        tensor: m.get_one::<String>("tensor").cloned(),
        step: m.get_one::<i64>("step").copied(),
        epoch: m.get_one::<i64>("epoch").copied(),
        epochs: m
            .get_many::<i64>("epochs")
            .map(|v| v.copied().collect())
            .unwrap_or_default(),
        metric: m.get_one::<String>("metric").cloned(),
        out: m.get_one::<String>("out").map(PathBuf::from),
        svg: m.get_one::<String>("format").map(|s| s.as_str()) == Some("svg"),
        log_x: m.get_flag("log-x"),
    };
    let overlay = plot::Overlay {
        by: m
            .get_many::<String>("by")
            .map(|v| v.filter(|s| !s.is_empty()).cloned().collect())
            .unwrap_or_default(),
        filters: m
            .get_many::<String>("filter")
            .into_iter()
            .flatten()
            .map(|f| crate::artifacts::compare::parse_filter(f))
            .collect::<Result<Vec<_>>>()?,
        band: m
            .get_one::<String>("band")
            .and_then(|b| plot::Band::parse(b))
            .unwrap_or_default(),
    };
    let sweep = dirs.len() == 1 && dirs[0].join("multirun.yaml").exists();
    let files = if dirs.len() > 1 {
        let out = spec
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("comparison"));
        let mut files = plot::summary_table(&dirs, &spec, &overlay, &out)?;
        files.extend(plot::overlay(&dirs, &spec, &overlay, &out)?);
        files
    } else if sweep {
        let dir = &dirs[0];
        let out = spec.out.clone().unwrap_or_else(|| dir.join("plots"));
        // Summaries against the swept keys (none for a seed-only sweep), then the overlays.
        let mut files = plot::plot(dir, &spec)?;
        match plot::overlay(&dirs, &spec, &overlay, &out) {
            Ok(f) => files.extend(f),
            // A large grid is read from its summaries; overlays are for a few configurations.
            Err(e) if e.is::<plot::TooMany>() && !files.is_empty() => {
                noteln!("no overlays: {e}")
            }
            Err(e) => return Err(e),
        }
        files
    } else {
        if !overlay.by.is_empty() || !overlay.filters.is_empty() {
            bail!(
                "--by and --filter group several runs: pass a sweep or more than one run directory"
            );
        }
        plot::plot(Path::new(&dirs[0]), &spec)?
    };
    for f in files {
        statusln!("{}", f.display());
    }
    Ok(0)
}
