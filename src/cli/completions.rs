//! `ezflt completions <shell>`: prints a shell completion script (clap_complete), plus, for
//! bash and fish, completion of `group=option` overrides from the config search path.

use crate::config::sources::SearchPath;
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

/// `group=option` for every option of every group the search path has (registered models
/// and datasets included), as a user types them on the command line.
fn group_options() -> Vec<String> {
    let Ok(sp) = SearchPath::new(None, &[]) else {
        return vec![];
    };
    let mut out = vec![];
    for g in sp.all_groups(false) {
        for o in sp.options(&g) {
            out.push(format!("{g}={o}"));
        }
    }
    for o in sp.options("hydra/launcher") {
        out.push(format!("hydra/launcher={o}"));
    }
    out
}

/// The program's name as invoked (`ezflt`, or a user's own App binary).
fn bin_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "ezflt".into())
}

/// Bash: after clap's own completion, `group=` completes options and a bare word completes
/// `group=option` (bash splits words at `=`, so both halves are handled).
fn bash_overrides(bin: &str, fun: &str, words: &[String]) -> String {
    let var = format!("_{}_overrides", fun.trim_start_matches('_'));
    format!(
        r#"
{var}='{list}'
{fun}_with_overrides() {{
    {fun} "$@"
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}" key="" w
    if [[ "$cur" == "=" ]]; then
        key="$prev"; cur=""
    elif [[ "$prev" == "=" && $COMP_CWORD -ge 2 ]]; then
        key="${{COMP_WORDS[COMP_CWORD-2]}}"
    fi
    if [[ -n "$key" ]]; then
        for w in ${var}; do
            if [[ "$w" == "$key="* && "${{w#*=}}" == "$cur"* ]]; then COMPREPLY+=("${{w#*=}}"); fi
        done
    elif [[ "$cur" != -* ]]; then
        COMPREPLY+=( $(compgen -W "${var}" -- "$cur") )
    fi
}}
complete -F {fun}_with_overrides -o nosort -o bashdefault -o default {bin}
"#,
        list = words.join(" "),
    )
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let shell = *m.get_one::<Shell>("shell").expect("required");
    let bin = bin_name();
    let mut app = super::app().bin_name(bin.clone());
    // Into a buffer first: clap_complete panics when stdout is a closed pipe.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut app, &bin, &mut script);
    let mut text = String::from_utf8_lossy(&script).to_string();
    let words = group_options();
    match shell {
        Shell::Bash => {
            let fun = format!("_{}", bin.replace(['-', '.'], "__"));
            text.push_str(&bash_overrides(&bin, &fun, &words));
        }
        Shell::Fish => {
            text.push_str(&format!(
                "complete -c {bin} -f -a '{}' -d 'config group option'\n",
                words.join(" ")
            ));
        }
        _ => {}
    }
    out!("{text}");
    Ok(0)
}
