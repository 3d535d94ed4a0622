//! `ezflt plot <run|sweep>`: (re)renders a run's figures from its archive and metrics, or a
//! sweep's summaries, into `<dir>/plots/` (or `--out`).

use crate::plot::{self, PlotSpec};
use anyhow::Result;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::path::{Path, PathBuf};

pub fn cli() -> Command {
    Command::new("plot")
        .about("Render a run's plots (curves, feature evolution, heatmaps, alignment) or a sweep's summaries")
        .arg(Arg::new("dir").required(true).value_name("RUN_OR_SWEEP_DIR"))
        .arg(Arg::new("what").long("what").value_name("KINDS").value_delimiter(',').action(ArgAction::Append).value_parser(plot::KINDS.to_vec()).help("Figures to draw (default: all that apply)"))
        .arg(Arg::new("tensor").long("tensor").value_name("NAME").help("Tracked tensor (default: the first tracked)"))
        .arg(Arg::new("step").long("step").value_name("STEP").value_parser(clap::value_parser!(i64)).conflicts_with("epoch").help("Snapshot at this step (default: the last)"))
        .arg(Arg::new("epoch").long("epoch").value_name("EPOCH").value_parser(clap::value_parser!(i64)).help("Snapshot at the end of this epoch (0-based)"))
        .arg(Arg::new("epochs").long("epochs").value_name("E,E,...").value_delimiter(',').action(ArgAction::Append).value_parser(clap::value_parser!(i64)).help("comparison: these epochs side by side (0-based; default: start, thirds, end)"))
        .arg(Arg::new("metric").long("metric").value_name("NAME").help("evolution: norm|mean|std|max_abs; sweeps: a summary metric (test_acc, test_loss, ...)"))
        .arg(Arg::new("out").long("out").value_name("DIR").help("Output folder (default: <dir>/plots)"))
        .arg(Arg::new("format").long("format").value_name("FMT").value_parser(["png", "svg"]).default_value("png"))
        .arg(Arg::new("log-x").long("log-x").action(ArgAction::SetTrue).help("Logarithmic step axis"))
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let dir = Path::new(m.get_one::<String>("dir").expect("required"));
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
    for f in plot::plot(dir, &spec)? {
        statusln!("{}", f.display());
    }
    Ok(0)
}
