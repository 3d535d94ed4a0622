//! `ezflt [train]`: compose the config, then print it (`--cfg`, `--info`, `--help`),
//! plan the jobs (single run or sweep), create their directories and run them.

use crate::config::compose::{hydra_config, job_config};
use crate::config::interp::Resolver;
use crate::config::node::{py_str, split_path};
use crate::config::overrides::{self, Override};
use crate::config::sources::SearchPath;
use crate::config::{compose, yaml, Composed, Mode, Node, Request, Value};
use crate::plan::{rundir, sweep};
use crate::run;
use anyhow::{bail, Context, Result};
use chrono::Local;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::path::PathBuf;

pub fn cli() -> Command {
    Command::new("train")
        .about("Compose the config and train (the default subcommand)")
        .disable_help_flag(true)
        .arg(Arg::new("help").short('h').long("help").action(ArgAction::SetTrue).help("Config groups, the composed config and the override syntax"))
        .arg(Arg::new("config-path").long("config-path").value_name("DIR").help("Primary config directory (-cp); default ./conf, else the built-in one"))
        .arg(Arg::new("config-name").long("config-name").value_name("NAME").default_value("config").help("Primary config file name without .yaml (-cn)"))
        .arg(Arg::new("config-dir").long("config-dir").value_name("DIR").action(ArgAction::Append).help("Add a directory to the config search path (-cd)"))
        .arg(Arg::new("cfg").short('c').long("cfg").value_name("WHICH").value_parser(["job", "hydra", "all"]).help("Print the composed config and exit"))
        .arg(Arg::new("resolve").long("resolve").action(ArgAction::SetTrue).help("With --cfg: resolve interpolations first"))
        .arg(Arg::new("package").short('p').long("package").value_name("PKG").help("With --cfg: print only this subtree"))
        .arg(
            Arg::new("info")
                .short('i')
                .long("info")
                .value_name("WHAT")
                .num_args(0..=1)
                .default_missing_value("all")
                .value_parser(["all", "config", "defaults", "defaults-tree", "searchpath"])
                .help("Print information about the composition and exit"),
        )
        .arg(Arg::new("multirun").short('m').long("multirun").action(ArgAction::SetTrue).help("Run a sweep: one job per combination of values"))
        .arg(Arg::new("run").short('r').long("run").action(ArgAction::SetTrue).help("Run a single job (the default)"))
        .arg(Arg::new("no-wait").long("no-wait").action(ArgAction::SetTrue).help("With hydra/launcher=slurm: submit the sweep and return at once"))
        .arg(Arg::new("fail-fast").long("fail-fast").action(ArgAction::SetTrue).help("With --multirun: launch no new job after the first failure"))
        .arg(Arg::new("zip").long("zip").value_name("KEYS").action(ArgAction::Append).help("With --multirun: pair these swept keys' values one to one instead of crossing them (e.g. --zip lr,batch_size)"))
        .arg(Arg::new("dry-run").long("dry-run").action(ArgAction::SetTrue).help("Compose every job, create its directory and .hydra/ files, list the jobs, run nothing"))
        .arg(Arg::new("overrides").value_name("OVERRIDES").num_args(0..).help("key=value, +key=value, ++key=value, ~key, group=option"))
}

struct Opts {
    fail_fast: bool,
    no_wait: bool,
    zip: Vec<Vec<String>>,
    config_name: String,
    config_path: Option<PathBuf>,
    config_dirs: Vec<PathBuf>,
    overrides: Vec<Override>,
}

impl Opts {
    fn search_path(&self) -> Result<SearchPath> {
        SearchPath::new(self.config_path.as_deref(), &self.config_dirs)
    }
    fn compose(&self, mode: Mode) -> Result<Composed> {
        compose(Request {
            search_path: self.search_path()?,
            config_name: &self.config_name,
            overrides: &self.overrides,
            mode,
        })
    }
}

pub fn exec(m: &ArgMatches) -> Result<i32> {
    let now = Local::now();
    let raw: Vec<String> = m
        .get_many::<String>("overrides")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let mut parsed = Vec::with_capacity(raw.len());
    for r in &raw {
        parsed.push(overrides::parse(r)?);
    }
    let opts = Opts {
        fail_fast: m.get_flag("fail-fast"),
        no_wait: m.get_flag("no-wait"),
        zip: m
            .get_many::<String>("zip")
            .map(|v| {
                v.map(|z| {
                    z.split(',')
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty())
                        .collect()
                })
                .collect()
            })
            .unwrap_or_default(),
        config_name: m
            .get_one::<String>("config-name")
            .cloned()
            .unwrap_or_else(|| "config".into()),
        config_path: m.get_one::<String>("config-path").map(PathBuf::from),
        config_dirs: m
            .get_many::<String>("config-dir")
            .map(|v| v.map(PathBuf::from).collect())
            .unwrap_or_default(),
        overrides: parsed,
    };
    let multirun = m.get_flag("multirun");
    if m.get_flag("help") {
        print_help(&opts)?;
        return Ok(0);
    }
    let exclusive = [
        m.get_flag("run"),
        multirun,
        m.contains_id("cfg"),
        m.contains_id("info"),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if exclusive > 1 {
        bail!("Only one of --run, --multirun, --cfg and --info can be specified");
    }
    if let Some(what) = m.get_one::<String>("info") {
        let c = opts.compose(Mode::Run)?;
        out!("{}", info(&c, what, &opts));
        return Ok(0);
    }
    if let Some(which) = m.get_one::<String>("cfg") {
        let c = opts.compose(Mode::Run)?;
        out!(
            "{}",
            print_cfg(
                &c.cfg,
                which,
                m.get_flag("resolve"),
                m.get_one::<String>("package").map(|s| s.as_str()),
                now
            )?
        );
        return Ok(0);
    }
    let dry = m.get_flag("dry-run");
    if multirun {
        return multirun_exec(&opts, dry, now);
    }
    // One composition for a single run. A config may set `hydra.mode: MULTIRUN` itself
    // (then `-m` is implied, as in Hydra); its sweeps only compose in multirun mode, so a
    // run-mode composition that fails is retried as multirun to find out.
    let single = opts.compose(Mode::Run);
    let says_multirun =
        |c: &Composed| c.cfg.get_path("hydra.mode").and_then(|n| n.as_str()) == Some("MULTIRUN");
    match single {
        Ok(c) if m.get_flag("run") || !says_multirun(&c) => single_run(c, &opts, &raw, dry, now),
        Ok(_) => multirun_exec(&opts, dry, now),
        Err(e) => match opts.compose(Mode::Multirun) {
            Ok(c) if !m.get_flag("run") && says_multirun(&c) => multirun_exec(&opts, dry, now),
            _ => Err(e),
        },
    }
}

/// The job config (no `hydra` node) with every interpolation resolved; `???` is an error.
fn resolved_job(cfg: &Node, now: chrono::DateTime<Local>) -> Result<Node> {
    let r = Resolver::new(cfg, now, false);
    let mut out = Node::map();
    if let (Some(src), Some(dst)) = (cfg.as_map(), out.as_map_mut()) {
        for k in src.keys().filter(|k| *k != "hydra") {
            dst.insert(k.clone(), r.resolve_path(std::slice::from_ref(k))?);
        }
    }
    Ok(out)
}

/// Runs the job's preflight (settings, data, model fit, tracked layers, memory) before any
/// directory exists, so a bad value creates nothing; a dry run runs exactly this too.
fn validate(cfg: &Node, now: chrono::DateTime<Local>) -> Result<run::preflight::Checked> {
    run::preflight::check(&resolved_job(cfg, now)?)
}

fn log_path(cfg: &Node, dir: &std::path::Path) -> Option<PathBuf> {
    if matches!(
        cfg.get_path("hydra.job_logging.file").map(|n| &n.v),
        Some(Value::Null)
    ) {
        return None;
    }
    let name = cfg
        .get_path("hydra.job.name")
        .and_then(|n| n.as_str())
        .unwrap_or("train");
    Some(dir.join(format!("{name}.log")))
}

/// Trains one prepared job and reports how it ended; errors are logged to its log file.
fn train_job(
    cfg: &Node,
    dir: &std::path::Path,
    now: chrono::DateTime<Local>,
    resume: Option<crate::train::trainer::ResumePoint>,
    checked: run::preflight::Checked,
) -> Result<i32> {
    // From here on a signal stops the run at a safe point (already so for a new run).
    run::stop_flag();
    let job = resolved_job(cfg, now)?;
    let r = run::run(&job, dir, log_path(cfg, dir), false, resume, Some(checked))?;
    if let Some(e) = &r.summary.error {
        crate::shell::error(format_args!("{e}"));
    }
    Ok(r.exit_code())
}

fn single_run(
    c: Composed,
    opts: &Opts,
    raw: &[String],
    dry: bool,
    now: chrono::DateTime<Local>,
) -> Result<i32> {
    let mut cfg = c.cfg;
    if let Some(dir) = cfg
        .get_path("resume")
        .and_then(|n| n.as_str())
        .map(|p| PathBuf::from(run::settings::expand_home(p)))
    {
        return resume_run(&dir, &opts.overrides, dry, now);
    }
    let want = rundir::resolve_setting(&cfg, "hydra.run.dir", now)?;
    let mut probe = cfg.clone();
    rundir::set_job_runtime(&mut probe, std::path::Path::new(&want), "RUN", None);
    // A real run stops here on a bad value, before any directory exists; a dry run writes
    // its plan first and then reports what would fail.
    let checked = match validate(&probe, now) {
        Err(e) if !dry => return Err(e),
        c => c,
    };
    if !dry {
        // Before the directory exists: once it does, a signal stops the run at a safe point.
        run::stop_flag();
    }
    let dir = rundir::create_unique_dir(&PathBuf::from(&want))?;
    rundir::set_job_runtime(&mut cfg, &dir, "RUN", None);
    let log = format!(
        "[{}] composed config '{}' with overrides {:?}{}\n",
        now.format("%Y-%m-%d %H:%M:%S"),
        opts.config_name,
        raw,
        if dry {
            "; dry run, no task was run"
        } else {
            ""
        }
    );
    rundir::write_job_records(&cfg, &dir, raw, &log)?;
    let what = if raw.is_empty() {
        "(no overrides)".to_string()
    } else {
        raw.join(" ")
    };
    if dry {
        outln!("Dry run: 1 job");
        outln!("#0 : {}  ->  {}", crate::shell::clip(&what), dir.display());
        return checked
            .map(|_| 0)
            .context("dry run: this job would fail when run");
    }
    statusln!("Run: {}  ->  {}", crate::shell::clip(&what), dir.display());
    // Held while training, so `resume=` of this directory elsewhere waits its turn.
    let _lock = rundir::try_lock(&dir)?;
    train_job(&cfg, &dir, now, None, checked?)
}

/// `resume=<run dir>`: continue that run from its last checkpoint with its saved config;
/// only `epochs` and `max_steps` may change (to train longer).
pub(crate) fn resume_run(
    dir: &std::path::Path,
    overrides: &[Override],
    dry: bool,
    now: chrono::DateTime<Local>,
) -> Result<i32> {
    let cfg_path = dir.join(".hydra").join("config.yaml");
    let text = std::fs::read_to_string(&cfg_path).with_context(|| {
        format!(
            "resume={}: not an ezflt run directory (no {})",
            dir.display(),
            cfg_path.display()
        )
    })?;
    let mut job = yaml::load(&text, &cfg_path.display().to_string())?;
    for o in overrides {
        let key = o.key_element();
        match key.as_str() {
            "resume" => {}
            "epochs" | "max_steps" => match o.value_node() {
                Some(v) => job.set_path_create(&key, v),
                None => bail!("resume: '{}' needs a value", o.input_line),
            },
            _ => bail!(
                "resume continues a run with its saved config ({}); only epochs=N and max_steps=N may change, not '{}'",
                cfg_path.display(),
                o.input_line
            ),
        }
    }
    job.set_path_create("resume", Node::bare(Value::Null));
    let checked = validate(&job, now)?;
    // Before touching its checkpoint: tidying it would pull files from under a live run.
    let Some(_lock) = rundir::try_lock(dir)? else {
        bail!(
            "resume={}: the run is still training in another process; wait for it, or stop it first",
            dir.display()
        );
    };
    let point = run::resume_point(dir)?;
    if dry {
        outln!(
            "Dry run: would resume {} at epoch {} (step {})",
            dir.display(),
            point.epoch,
            point.step
        );
        return Ok(0);
    }
    rundir::write_atomic(&cfg_path, &yaml::dump(&job))?;
    statusln!(
        "Resume: {} at epoch {} (step {})",
        dir.display(),
        point.epoch,
        point.step
    );
    let mut full = job.clone();
    full.set_path_create("hydra.job.name", Node::str("train"));
    train_job(&full, dir, now, Some(point), checked)
}

fn multirun_exec(opts: &Opts, dry: bool, now: chrono::DateTime<Local>) -> Result<i32> {
    let master = opts.compose(Mode::Multirun)?;
    let params = master.cfg.get_path("hydra.sweeper.params").cloned();
    if let Some(dir) = master
        .cfg
        .get_path("resume")
        .and_then(|n| n.as_str())
        .map(|p| PathBuf::from(run::settings::expand_home(p)))
    {
        if dir.join("multirun.yaml").exists() {
            return crate::launch::resume_sweep(&dir, opts.fail_fast);
        }
    }
    let jobs = sweep::expand(
        &opts.overrides,
        params.as_ref(),
        &master.search_path,
        &opts.zip,
    )?;
    // Compose and check every job before launching any, so a bad value launches nothing;
    // every failing job is reported, not only the first (a dry run checks exactly this).
    let mut composed = Vec::with_capacity(jobs.len());
    let mut failed = vec![];
    let mut estimates = vec![];
    for (i, lines) in jobs.iter().enumerate() {
        let parsed = lines
            .iter()
            .map(|l| overrides::parse(l))
            .collect::<Result<Vec<_>>>()?;
        let job_opts = Opts {
            fail_fast: opts.fail_fast,
            no_wait: opts.no_wait,
            zip: vec![],
            config_name: opts.config_name.clone(),
            config_path: opts.config_path.clone(),
            config_dirs: opts.config_dirs.clone(),
            overrides: parsed,
        };
        let c = job_opts
            .compose(Mode::Run)
            .with_context(|| format!("composing job #{i} ({})", lines.join(" ")))?;
        match validate(&c.cfg, now) {
            Ok(checked) => estimates.push(checked.memory),
            Err(e) => failed.push(format!(
                "job #{i} ({}): {}",
                lines.join(" "),
                crate::format_error(&e)
            )),
        }
        composed.push(c);
    }
    let failures = |what: &str| {
        anyhow::anyhow!(
            "{} of {} job(s) would fail; {what}:\n  {}",
            failed.len(),
            jobs.len(),
            failed.join("\n  ")
        )
    };
    if !failed.is_empty() && !dry {
        return Err(failures("nothing was launched"));
    }
    let launcher = crate::launch::Launcher::from_config(&master.cfg, opts.fail_fast, opts.no_wait)?;
    if let crate::launch::Launcher::Local { n_jobs, .. } = launcher {
        run::preflight::check_concurrent(&estimates, n_jobs)?;
    }
    let mut master_cfg = master.cfg;
    master_cfg.set_path_create("hydra.mode", Node::str("MULTIRUN"));
    let root_want = rundir::resolve_setting(&master_cfg, "hydra.sweep.dir", now)?;
    let root = rundir::create_unique_dir(&PathBuf::from(&root_want))?;
    rundir::write_atomic(&root.join("multirun.yaml"), &yaml::dump(&master_cfg))?;
    if dry {
        outln!("Dry run: {} job(s) in {}", jobs.len(), root.display());
    } else {
        statusln!("Sweep: {} job(s) in {}", jobs.len(), root.display());
    }
    let mut prepared = vec![];
    for (i, (lines, c)) in jobs.iter().zip(composed).enumerate() {
        let mut cfg = c.cfg;
        cfg.set_path_create("hydra.job.num", Node::bare(Value::Int(i as i64)));
        cfg.set_path_create("hydra.job.id", Node::str(i.to_string()));
        cfg.set_path_create("hydra.sweep.dir", Node::str(root.display().to_string()));
        let sub = rundir::resolve_setting(&cfg, "hydra.sweep.subdir", now)?;
        let dir = rundir::create_unique_dir(&root.join(sub))?;
        rundir::set_job_runtime(&mut cfg, &dir, "MULTIRUN", Some(i));
        let log = format!(
            "[{}] job #{i}: {}{}\n",
            now.format("%Y-%m-%d %H:%M:%S"),
            lines.join(" "),
            if dry {
                "; dry run, no task was run"
            } else {
                ""
            }
        );
        rundir::write_job_records(&cfg, &dir, lines, &log)?;
        let what = if lines.is_empty() {
            "(no overrides)".to_string()
        } else {
            crate::shell::clip(&lines.join(" "))
        };
        // A dry run's listing is its result; a real sweep's is progress.
        if dry {
            outln!("#{i} : {what}  ->  {}", dir.display());
        } else {
            statusln!("#{i} : {what}  ->  {}", dir.display());
        }
        if dry {
            continue;
        }
        crate::launch::write_resolved(&dir, &resolved_job(&cfg, now)?)?;
        prepared.push(crate::launch::Job {
            num: i,
            // The task overrides, as in .hydra/overrides.yaml (no hydra.* settings).
            lines: lines
                .iter()
                .filter(|l| !l.starts_with("hydra.") && !l.starts_with("hydra/"))
                .cloned()
                .collect(),
            dir,
        });
    }
    if dry {
        if !failed.is_empty() {
            return Err(failures("their directories hold the composed configs"));
        }
        return Ok(0);
    }
    // One failing job does not stop the others (unless --fail-fast).
    crate::launch::launch(&root, &prepared, &prepared, &launcher)
}

/// `--cfg job|hydra|all`, optionally resolved and restricted to a package.
pub fn print_cfg(
    cfg: &Node,
    which: &str,
    resolve: bool,
    package: Option<&str>,
    now: chrono::DateTime<Local>,
) -> Result<String> {
    let full = if resolve {
        let r = Resolver::new(cfg, now, true);
        r.resolve_path(&[])?
    } else {
        cfg.clone()
    };
    let view = match which {
        "job" => job_config(&full),
        "hydra" => hydra_config(&full),
        _ => full.clone(),
    };
    let Some(pkg) = package.filter(|p| !p.is_empty() && *p != "_global_") else {
        return Ok(yaml::dump(&view));
    };
    let sub = view
        .get_path(pkg)
        .filter(|n| !matches!(n.v, Value::Null | Value::Missing));
    let Some(sub) = sub else {
        bail!("package '{pkg}' not found in config\n  Check the path with --cfg {which} (without --package).");
    };
    if sub.is_container() {
        Ok(format!("# @package {pkg}\n{}", yaml::dump(sub)))
    } else {
        // Scalars print bare and resolved, as Hydra does.
        let r = Resolver::new(cfg, now, true);
        let v = r.resolve_path(&split_path(pkg))?;
        Ok(format!("{}\n", py_str(&v)))
    }
}

fn info(c: &Composed, what: &str, opts: &Opts) -> String {
    let mut s = String::new();
    let all = what == "all";
    if all || what == "searchpath" {
        s.push_str("Config search path\n******************\n");
        s.push_str(&format!("{:<16} | {}\n", "Provider", "Search path"));
        for src in &c.search_path.sources {
            s.push_str(&format!("{:<16} | {}\n", src.provider, src.url()));
        }
        s.push('\n');
    }
    if all || what == "defaults-tree" {
        // Hydra logs an empty line before this section's header.
        s.push_str("\nDefaults Tree\n*************\n");
        s.push_str(&crate::config::defaults::tree_text(&c.defaults.tree));
    }
    if all || what == "defaults" {
        s.push_str("Defaults List\n*************\n");
        s.push_str(&format!(
            "| {:<28} | {:<28} | {:<6} | {:<20} |\n",
            "Config path", "Package", "_self_", "Parent"
        ));
        for d in &c.defaults.defaults {
            s.push_str(&format!(
                "| {:<28} | {:<28} | {:<6} | {:<20} |\n",
                d.config_path,
                d.package,
                if d.is_self { "True" } else { "False" },
                d.parent.clone().unwrap_or_default()
            ));
        }
        s.push('\n');
    }
    if all || what == "config" {
        s.push_str(&format!(
            "Config\n******\nOverrides: {:?}\n",
            opts.overrides
                .iter()
                .map(|o| o.input_line.clone())
                .collect::<Vec<_>>()
        ));
        s.push_str(&yaml::dump(&job_config(&c.cfg)));
        s.push('\n');
    }
    s
}

fn print_help(opts: &Opts) -> Result<()> {
    let sp = opts.search_path()?;
    let mut out = String::new();
    out.push_str("ezflt: feature-learning experiments with Hydra-compatible configs\n\n");
    out.push_str(
        "Usage: ezflt [train] [FLAGS] [OVERRIDES...]\n       ezflt plot|inspect|status|resume <RUN_OR_SWEEP_DIR>\n       ezflt compare <RUN_OR_SWEEP_DIR>...   (metrics per configuration, mean ± std over seeds)\n       ezflt report <RUN_OR_SWEEP_DIR>   (one self-contained report.html)\n       ezflt sync <RUN_OR_SWEEP_DIR>...   (upload W&B logs)\n       ezflt completions <bash|zsh|fish>\n\n",
    );
    out.push_str("== Configuration groups ==\nCompose your configuration from those groups (group=option)\n\n");
    for g in sp.all_groups(false) {
        out.push_str(&format!("{g}: {}\n", sp.options(&g).join(", ")));
    }
    out.push_str("\n== Config ==\nOverride anything in the config (foo.bar=value)\n\n");
    match opts.compose(Mode::Run) {
        Ok(c) => out.push_str(&yaml::dump(&job_config(&c.cfg))),
        Err(e) => out.push_str(&format!("(could not compose the config: {e})\n")),
    }
    out.push_str(
        "\n== Overrides ==\n\
  key=value           change an existing value (lr=1e-3, model.widths=[64])\n\
  group=option        pick a config group option (model=mlp)\n\
  +key=value          add a new key; +group=option appends a default\n\
  ++key=value         add or change\n\
  ~key  ~key=value    delete a key (only if it equals value)\n\
  group@pkg=option    put a group option at another package\n\
  values: 1e-3 (float) 10 (int) true/false null 'quoted str' [a,b] {k:v}\n\
  interpolation: ${a.b} ${..x} run_${seed} ${oc.env:VAR,default} ${now:%H-%M}\n\
  sweeps (with -m): a,b,c  range(0,10,2)  choice(x,y)  glob(m*)  sort(..) shuffle(..) tag(t,..)\n\
  casts: int() float() str() bool()\n",
    );
    out.push_str(
        "\n== Flags ==\n\
  --cfg/-c job|hydra|all  print the composed config and exit (--resolve, --package/-p PKG)\n\
  --info/-i [all|config|defaults|defaults-tree|searchpath]\n\
  --config-path/-cp DIR   --config-name/-cn NAME   --config-dir/-cd DIR\n\
  --multirun/-m  --run/-r  --dry-run  --version\n\
  --quiet/-q  no progress or status lines    --color auto|always|never\n",
    );
    out!("{out}");
    Ok(())
}
