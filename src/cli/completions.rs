//! `ezflt completions <shell>`: prints a shell completion script (clap_complete).

use anyhow::Result;
use clap::{Arg, ArgMatches, Command};
use clap_complete::Shell;

pub fn cli() -> Command {
    Command::new("completions")
        .about("Print a shell completion script (bash, zsh, fish, elvish, powershell)")
        .arg(
            Arg::new("shell")
                .required(true)
                .value_parser(clap::value_parser!(Shell)),
        )
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let shell = *m.get_one::<Shell>("shell").expect("required");
    let mut app = super::app();
    // Into a buffer first: clap_complete panics when stdout is a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut app, "ezflt", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(0)
}
