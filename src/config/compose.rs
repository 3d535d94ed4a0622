//! Composition: defaults list -> merged config -> command-line overrides (struct mode)
//! -> the filled `hydra` node. The result is plain data for the job plan.

use super::defaults::{self, DefaultsList, Repo};
use super::node::{split_path, Map, Node, Value};
use super::overrides::{self, Kind, Override};
use super::sources::SearchPath;
use super::suggest;
use anyhow::{anyhow, bail, Context, Result};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Run,
    Multirun,
}

/// Everything one composition needs.
pub struct Request<'a> {
    pub search_path: SearchPath,
    pub config_name: &'a str,
    pub overrides: &'a [Override],
    pub mode: Mode,
}

/// A composed config (with its `hydra` node) and how it was made, for `--info`.
pub struct Composed {
    pub cfg: Node,
    pub defaults: DefaultsList,
    pub search_path: SearchPath,
}

pub fn compose(req: Request) -> Result<Composed> {
    let mut sp = req.search_path;
    add_searchpath_entries(&mut sp, req.config_name, req.overrides)?;
    if req.mode == Mode::Run {
        overrides::ensure_no_sweeps(req.overrides)?;
    } else {
        for o in req.overrides {
            if o.is_sweep() && o.is_hydra() {
                bail!(
                    "Sweeping over Hydra's configuration is not supported: '{}'",
                    o.input_line
                );
            }
        }
    }
    let repo = Repo::new(&sp);
    let dl = defaults::create(
        &repo,
        req.config_name,
        req.overrides,
        req.mode == Mode::Multirun,
    )?;

    let mut cfg = Node::map();
    for d in &dl.defaults {
        let loaded = repo
            .load(&d.config_path)?
            .ok_or_else(|| anyhow!("config '{}' disappeared while composing", d.config_path))?;
        let mut content = loaded.config.clone();
        content.src = Some(Arc::from(loaded.display.as_str()));
        if !d.primary
            && d.config_path != "hydra/config"
            && content.get_path("hydra.searchpath").is_some()
        {
            bail!(
                "In '{}': Overriding hydra.searchpath is only supported from the primary config",
                d.config_path
            );
        }
        let mut embedded = Node::map();
        if d.package.is_empty() {
            embedded = content;
        } else {
            embedded.set_path_create(&d.package, content);
        }
        cfg.merge_from(embedded);
    }

    for o in &dl.overrides.config_overrides {
        if o.is_sweep() {
            continue;
        }
        apply_override(&mut cfg, o, &sp)?;
    }
    fill_hydra(&mut cfg, &dl, &sp, req.config_name, req.overrides)?;
    Ok(Composed {
        cfg,
        defaults: dl,
        search_path: sp,
    })
}

fn add_searchpath_entries(sp: &mut SearchPath, config_name: &str, ovs: &[Override]) -> Result<()> {
    let from_cli = ovs
        .iter()
        .find(|o| o.key == "hydra.searchpath")
        .and_then(|o| o.value_node());
    let entries = match from_cli {
        Some(n) => Some(n),
        None => match sp.load(config_name) {
            Some((text, display)) => defaults::parse_config(&text, &display)?
                .config
                .get_path("hydra.searchpath")
                .cloned(),
            None => None,
        },
    };
    let Some(n) = entries else { return Ok(()) };
    let list = match &n.v {
        Value::List(l) => l
            .iter()
            .map(|x| {
                x.as_str()
                    .map(|s| s.to_string())
                    .ok_or_else(|| anyhow!("hydra.searchpath must be a list of strings"))
            })
            .collect::<Result<Vec<_>>>()?,
        Value::Null => vec![],
        _ => bail!(
            "hydra.searchpath must be a list of strings (at {})",
            n.src.as_deref().unwrap_or("config")
        ),
    };
    sp.add_user_paths(&list)
}

fn where_defined(n: &Node) -> String {
    n.src
        .as_deref()
        .map(|s| format!(" (defined in {s})"))
        .unwrap_or_default()
}

/// A struct-mode error naming the key, the closest keys and where the parent came from.
fn not_in_struct(cfg: &Node, o: &Override, segs: &[String], depth: usize) -> anyhow::Error {
    let parent_path = segs[..depth].join(".");
    let parent = if depth == 0 {
        Some(cfg)
    } else {
        cfg.get_path(&parent_path)
    };
    let missing = &segs[depth];
    let mut msg = format!(
        "Could not override '{}'.\nKey '{}' is not in struct",
        o.key,
        segs[..=depth].join(".")
    );
    if let Some(p) = parent {
        if let Value::Map(m) = &p.v {
            msg = format!(
                "Could not override '{}': key '{missing}' is not in {}{}.",
                o.key,
                if depth == 0 {
                    "the config".to_string()
                } else {
                    format!("'{parent_path}'")
                },
                where_defined(p)
            );
            if let Some(s) = suggest::did_you_mean(missing, m.keys().map(|k| k.as_str())) {
                let mut full = segs[..depth].to_vec();
                full.push(s);
                msg.push_str(&format!("\nDid you mean '{}'?", full.join(".")));
            } else if !m.is_empty() {
                let keys: Vec<&str> = m.keys().map(|k| k.as_str()).take(12).collect();
                msg.push_str(&format!("\nExisting keys there: {}", keys.join(", ")));
            }
        }
    }
    msg.push_str(&format!(
        "\nTo append to your config use +{}",
        o.input_line.trim_start_matches('+')
    ));
    anyhow!(msg)
}

/// `OmegaConf.select` semantics: resolves interpolations; absent and null both give None.
fn select_resolved(cfg: &Node, key: &str) -> Option<Node> {
    let n = cfg.get_path(key)?;
    if matches!(n.v, Value::Null) {
        return None;
    }
    if n.is_interpolation() {
        let r = super::interp::Resolver::new(cfg, chrono::Local::now(), true);
        return r.resolve_path(&split_path(key)).ok();
    }
    Some(n.clone())
}

pub fn apply_override(cfg: &mut Node, o: &Override, sp: &SearchPath) -> Result<()> {
    if o.package.is_some() {
        let groups = sp.all_groups(true);
        let hint = suggest::did_you_mean(&o.key, groups.iter().map(|s| s.as_str()))
            .map(|g| format!("\nDid you mean the group '{g}'?"))
            .unwrap_or_default();
        bail!(
            "Override {} looks like a config group override, but config group '{}' does not exist.{hint}",
            o.input_line,
            o.key
        );
    }
    let value = o.value_node();
    let segs = split_path(&o.key);
    match o.kind {
        Kind::Delete => {
            let cur = select_resolved(cfg, &o.key);
            let Some(cur) = cur else {
                bail!("Could not delete from config. '{}' does not exist.", o.key);
            };
            if let Some(v) = &value {
                if !matches!(v.v, Value::Null) && !v.value_eq(&cur) {
                    bail!(
                        "Could not delete from config. The value of '{}' is {} and not {}.",
                        o.key,
                        super::node::py_str(&cur),
                        super::node::py_str(v)
                    );
                }
            }
            let (last, parent) = segs.split_last().expect("non-empty key");
            let p = if parent.is_empty() {
                Some(&mut *cfg)
            } else {
                cfg.get_path_mut(&parent.join("."))
            };
            match p.map(|p| &mut p.v) {
                Some(Value::Map(m)) => {
                    m.shift_remove(last);
                }
                Some(Value::List(l)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < l.len() {
                            l.remove(i);
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        }
        Kind::Add => {
            let v = value.unwrap_or(Node::bare(Value::Null));
            if select_resolved(cfg, &o.key).is_none() || v.is_container() {
                update(cfg, o, &segs, v, true)
            } else {
                let rest = &o.input_line[1..];
                bail!(
                    "Could not append to config. An item is already at '{}'.\nEither remove + prefix: '{rest}'\nOr add a second + to add or override '{}': '+{}'",
                    o.key,
                    o.key,
                    o.input_line
                );
            }
        }
        Kind::ForceAdd => update(
            cfg,
            o,
            &segs,
            value.unwrap_or(Node::bare(Value::Null)),
            true,
        ),
        Kind::Change => update(
            cfg,
            o,
            &segs,
            value.unwrap_or(Node::bare(Value::Null)),
            false,
        ),
    }
}

/// `OmegaConf.update(cfg, key, value, merge=True, force_add=...)` under struct mode.
fn update(
    cfg: &mut Node,
    o: &Override,
    segs: &[String],
    value: Node,
    force_add: bool,
) -> Result<()> {
    // Check the path first so the error can describe the tree as it is.
    {
        let mut cur: &Node = cfg;
        for (i, seg) in segs.iter().enumerate() {
            match cur.child(seg) {
                Some(c) => cur = c,
                None => {
                    if force_add {
                        if let Value::List(_) = cur.v {
                            bail!(
                                "Could not override '{}': list index {seg} is out of range",
                                o.key
                            );
                        }
                        break;
                    }
                    if let Value::List(l) = &cur.v {
                        bail!(
                            "Could not override '{}': '{}' is a list of {} items, index {seg} does not exist",
                            o.key,
                            segs[..i].join("."),
                            l.len()
                        );
                    }
                    if matches!(cur.v, Value::Map(_)) {
                        return Err(not_in_struct(cfg, o, segs, i));
                    }
                    bail!(
                        "Could not override '{}': '{}' is a {}, not a mapping",
                        o.key,
                        segs[..i].join("."),
                        cur.type_name()
                    );
                }
            }
        }
    }
    let mut cur: &mut Node = cfg;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        if !cur.is_container() {
            cur.v = Value::Map(Map::new());
        }
        if last {
            match &mut cur.v {
                Value::Map(m) => match m.get_mut(seg) {
                    Some(existing) => {
                        if let (Value::Map(_), Value::Map(_)) = (&existing.v, &value.v) {
                            if !force_add {
                                check_struct_merge(existing, &value, &segs.join("."), o)?;
                            }
                            existing.merge_from(value);
                        } else {
                            *existing = value;
                        }
                    }
                    None => {
                        m.insert(seg.clone(), value);
                    }
                },
                Value::List(l) => {
                    let idx: usize = seg
                        .parse()
                        .map_err(|_| anyhow!("'{}': '{seg}' is not a list index", o.key))?;
                    let slot = l
                        .get_mut(idx)
                        .ok_or_else(|| anyhow!("'{}': list index {idx} is out of range", o.key))?;
                    *slot = value;
                }
                _ => unreachable!("made a container above"),
            }
            return Ok(());
        }
        cur = match &mut cur.v {
            Value::Map(m) => m.entry(seg.clone()).or_insert_with(Node::map),
            Value::List(l) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| anyhow!("'{}': '{seg}' is not a list index", o.key))?;
                l.get_mut(idx)
                    .ok_or_else(|| anyhow!("'{}': list index {idx} is out of range", o.key))?
            }
            _ => unreachable!("made a container above"),
        };
    }
    Ok(())
}

fn check_struct_merge(dst: &Node, src: &Node, path: &str, o: &Override) -> Result<()> {
    if let (Value::Map(d), Value::Map(s)) = (&dst.v, &src.v) {
        for (k, sv) in s {
            match d.get(k) {
                None => {
                    let hint = suggest::did_you_mean(k, d.keys().map(|x| x.as_str()))
                        .map(|x| format!(" Did you mean '{path}.{x}'?"))
                        .unwrap_or_default();
                    bail!(
                        "Could not override '{}': key '{path}.{k}' is not in struct{}.{hint}\nTo add new keys while merging use +{}",
                        o.key,
                        where_defined(dst),
                        o.input_line.trim_start_matches('+')
                    );
                }
                Some(dv) => check_struct_merge(dv, sv, &format!("{path}.{k}"), o)?,
            }
        }
    }
    Ok(())
}

fn strs(v: &[String]) -> Node {
    Node::bare(Value::List(
        v.iter().map(|s| Node::str(s.clone())).collect(),
    ))
}

fn set(cfg: &mut Node, path: &str, v: Node) {
    cfg.set_path_create(path, v);
}

/// Fills `hydra.overrides`, `hydra.runtime.*` and `hydra.job.*` as Hydra's loader does.
fn fill_hydra(
    cfg: &mut Node,
    dl: &DefaultsList,
    sp: &SearchPath,
    config_name: &str,
    ovs: &[Override],
) -> Result<()> {
    let task: Vec<String> = ovs
        .iter()
        .filter(|o| !o.is_hydra())
        .map(|o| o.input_line.clone())
        .collect();
    let hyd: Vec<String> = ovs
        .iter()
        .filter(|o| o.is_hydra())
        .map(|o| o.input_line.clone())
        .collect();
    set(cfg, "hydra.overrides.hydra", strs(&hyd));
    set(cfg, "hydra.overrides.task", strs(&task));
    let mut choices = cfg
        .get_path("hydra.runtime.choices")
        .and_then(|n| n.as_map().cloned())
        .unwrap_or_default();
    for (k, v) in &dl.overrides.known_choices {
        choices.insert(
            k.clone(),
            v.clone().map(Node::str).unwrap_or(Node::bare(Value::Null)),
        );
    }
    set(
        cfg,
        "hydra.runtime.choices",
        Node::bare(Value::Map(choices)),
    );
    set(
        cfg,
        "hydra.runtime.version",
        Node::str(env!("CARGO_PKG_VERSION")),
    );
    set(cfg, "hydra.runtime.version_base", Node::str("1.3"));
    let cwd = std::env::current_dir().context("reading the working directory")?;
    set(
        cfg,
        "hydra.runtime.cwd",
        Node::str(cwd.display().to_string()),
    );
    let sources = sp
        .sources
        .iter()
        .map(|s| {
            let (schema, path) = s.scheme_and_path();
            let mut m = Map::new();
            m.insert("path".into(), Node::str(path));
            m.insert("schema".into(), Node::str(schema));
            m.insert("provider".into(), Node::str(s.provider.clone()));
            Node::bare(Value::Map(m))
        })
        .collect();
    set(
        cfg,
        "hydra.runtime.config_sources",
        Node::bare(Value::List(sources)),
    );
    if matches!(
        cfg.get_path("hydra.job.name").map(|n| &n.v),
        Some(Value::Missing) | None
    ) {
        set(cfg, "hydra.job.name", Node::str("train"));
    }
    let dirname = override_dirname(cfg, ovs)?;
    set(cfg, "hydra.job.override_dirname", Node::str(dirname));
    set(cfg, "hydra.job.config_name", Node::str(config_name));
    Ok(())
}

/// `hydra.job.override_dirname`: task overrides sorted as strings, with the configured separators.
pub fn override_dirname(cfg: &Node, ovs: &[Override]) -> Result<String> {
    let get = |k: &str, d: &str| -> String {
        cfg.get_path(k)
            .and_then(|n| n.as_str().map(|s| s.to_string()))
            .unwrap_or_else(|| d.to_string())
    };
    let kv = get("hydra.job.config.override_dirname.kv_sep", "=");
    let item = get("hydra.job.config.override_dirname.item_sep", ",");
    let exclude: Vec<String> = match cfg
        .get_path("hydra.job.config.override_dirname.exclude_keys")
        .map(|n| &n.v)
    {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|n| n.as_str().map(|s| s.to_string()))
            .collect(),
        _ => vec![],
    };
    let mut lines: Vec<String> = ovs
        .iter()
        .filter(|o| !o.is_hydra() && !exclude.contains(&o.key))
        .map(|o| o.input_line.clone())
        .collect();
    lines.sort();
    Ok(lines.join(&item).replace('=', &kv))
}

/// The job config without the `hydra` node.
pub fn job_config(cfg: &Node) -> Node {
    let mut c = cfg.clone();
    if let Some(m) = c.as_map_mut() {
        m.shift_remove("hydra");
    }
    c
}

/// The hydra node as `--cfg hydra` prints it (help texts dropped, as Hydra does).
pub fn hydra_config(cfg: &Node) -> Node {
    let mut h = cfg.get_path("hydra").cloned().unwrap_or_else(Node::map);
    if let Some(m) = h.as_map_mut() {
        m.shift_remove("help");
        m.shift_remove("hydra_help");
    }
    let mut root = Node::map();
    root.set_path_create("hydra", h);
    root
}
