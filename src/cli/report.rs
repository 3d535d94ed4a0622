//! `ezflt report <run|sweep|folder>`: one self-contained `report.html` with the
//! configurations, a sortable metrics table, every figure and each run's config.

use anyhow::Result;
use clap::{Arg, ArgMatches, Command};
use std::path::{Path, PathBuf};

pub fn cli() -> Command {
    Command::new("report")
        .about("Write report.html: configurations, sortable metrics, every figure, each run's config and status")
        .arg(Arg::new("dir").required(true).value_name("RUN_OR_SWEEP_DIR"))
        .arg(Arg::new("out").long("out").value_name("DIR").help("Folder for report.html (default: the directory itself)"))
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let dir = Path::new(m.get_one::<String>("dir").expect("required"));
    let out = m.get_one::<String>("out").map(PathBuf::from);
    let page = crate::report::write(dir, out.as_deref())?;
    outln!("{}", page.display());
    Ok(0)
}
