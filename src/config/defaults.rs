//! The defaults list: which config files are merged, in what order and at which package.
//! A port of Hydra 1.3's `defaults_list.py` (depth-first, reversed expansion; overrides).

use super::node::{Node, Value};
use super::overrides::{Elem, Kind, Override};
use super::sources::SearchPath;
use super::{suggest, yaml};
use anyhow::{anyhow, bail, Result};
use indexmap::IndexMap;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum GroupValue {
    Name(Option<String>),
    Options(Vec<String>),
}

#[derive(Clone, Debug)]
pub enum DKind {
    Config { path: String },
    Group { group: String, value: GroupValue },
}

/// One entry of a defaults list (Hydra's `InputDefault`).
#[derive(Clone, Debug)]
pub struct InputDefault {
    pub kind: DKind,
    pub package: Option<String>,
    pub optional: bool,
    pub is_override: bool,
    pub external_append: bool,
    pub parent_base_dir: Option<String>,
    pub parent_package: Option<String>,
    pub package_header: Option<String>,
    pub primary: bool,
    pub deleted: bool,
    pub virtual_root: bool,
    pub src: Option<Arc<str>>,
}

impl InputDefault {
    pub fn config(path: &str, package: Option<String>) -> Self {
        let package = package.map(|p| if p == "_here_" { String::new() } else { p });
        InputDefault {
            kind: DKind::Config {
                path: path.to_string(),
            },
            package,
            optional: false,
            is_override: false,
            external_append: false,
            parent_base_dir: None,
            parent_package: None,
            package_header: None,
            primary: false,
            deleted: false,
            virtual_root: false,
            src: None,
        }
    }
    pub fn group(group: &str, value: GroupValue, package: Option<String>) -> Self {
        let mut d = InputDefault::config("", package);
        d.kind = DKind::Group {
            group: group.to_string(),
            value,
        };
        d
    }
    pub fn is_group(&self) -> bool {
        matches!(self.kind, DKind::Group { .. })
    }
    pub fn is_self(&self) -> bool {
        match &self.kind {
            DKind::Config { path } => path == "_self_",
            DKind::Group { value, .. } => *value == GroupValue::Name(Some("_self_".into())),
        }
    }
    fn base(&self) -> &str {
        self.parent_base_dir.as_deref().unwrap_or("")
    }
    pub fn group_path(&self) -> String {
        match &self.kind {
            DKind::Config { path } => {
                let (p, abs) = match path.strip_prefix('/') {
                    Some(p) => (p, true),
                    None => (path.as_str(), false),
                };
                let group = p.rfind('/').map(|i| &p[..i]).unwrap_or("");
                if abs || self.base().is_empty() {
                    group.to_string()
                } else if group.is_empty() {
                    self.base().to_string()
                } else {
                    format!("{}/{group}", self.base())
                }
            }
            DKind::Group { group, .. } => match group.strip_prefix('/') {
                Some(g) => g.to_string(),
                None if self.base().is_empty() => group.clone(),
                None => format!("{}/{group}", self.base()),
            },
        }
    }
    pub fn name(&self) -> Option<String> {
        match &self.kind {
            DKind::Config { path } => Some(path.rsplit('/').next().unwrap_or(path).to_string()),
            DKind::Group {
                value: GroupValue::Name(n),
                ..
            } => n.clone(),
            DKind::Group { .. } => None,
        }
    }
    pub fn config_path(&self) -> String {
        match &self.kind {
            DKind::Config { path } => {
                if self.virtual_root {
                    return "<root>".into();
                }
                match path.strip_prefix('/') {
                    Some(p) => p.to_string(),
                    None if self.base().is_empty() => path.clone(),
                    None => format!("{}/{path}", self.base()),
                }
            }
            DKind::Group { .. } => format!(
                "{}/{}",
                self.group_path(),
                self.name().unwrap_or_else(|| "None".into())
            ),
        }
    }
    fn default_package(&self) -> String {
        self.group_path().replace('/', ".")
    }
    fn relative_group_path(&self) -> String {
        match &self.kind {
            DKind::Config { path } => {
                let p = path.strip_prefix('/').unwrap_or(path);
                p.rfind('/').map(|i| p[..i].to_string()).unwrap_or_default()
            }
            DKind::Group { group, .. } => group.strip_prefix('/').unwrap_or(group).to_string(),
        }
    }
    fn get_package(&self, default_to_header: bool) -> Option<String> {
        if self.package.is_none() && default_to_header {
            self.package_header.clone()
        } else {
            self.package.clone()
        }
    }
    pub fn final_package(&self, default_to_header: bool) -> String {
        let parent = self.parent_package.clone().unwrap_or_default();
        let package = self
            .get_package(default_to_header)
            .unwrap_or_else(|| self.relative_group_path().replace('/', "."));
        let ret = if parent.is_empty() {
            package
        } else if package.is_empty() {
            parent
        } else {
            format!("{parent}.{package}")
        };
        match ret.rfind("_global_") {
            None => ret,
            Some(i) => ret
                .get(i + "_global_".len() + 1..)
                .unwrap_or("")
                .to_string(),
        }
    }
    pub fn override_key(&self) -> String {
        let dp = self.default_package();
        let mut fp = self.final_package(false);
        let key = self.group_path();
        if dp != fp {
            if fp.is_empty() {
                fp = "_global_".into();
            }
            return format!("{key}@{fp}");
        }
        key
    }
    fn relative_override_key(&self) -> String {
        let DKind::Group { group, .. } = &self.kind else {
            return String::new();
        };
        match &self.package {
            Some(p) if *p != self.default_package() => format!("{group}@{p}"),
            _ => group.clone(),
        }
    }
    pub fn update_parent(&mut self, base: &str, package: &str) {
        self.parent_base_dir = Some(base.to_string());
        self.parent_package = Some(package.to_string());
        if let Some(p) = &self.package {
            if p.contains("_group_") {
                let resolved = p.replace("_group_", &self.default_package());
                self.package = Some(format!("_global_.{resolved}"));
            }
        }
    }
    fn set_package_header(&mut self, header: Option<String>) {
        let Some(h) = header else { return };
        let h = if h == "_global_" || h.starts_with("_global_.") {
            h
        } else if h.is_empty() {
            "_global_".into()
        } else {
            format!("_global_.{h}")
        };
        self.package_header = Some(h);
    }
    pub fn is_missing(&self) -> bool {
        self.name().as_deref() == Some("???")
    }
    fn is_interpolation(&self) -> bool {
        match &self.kind {
            DKind::Group {
                value: GroupValue::Name(Some(n)),
                ..
            } => n.contains("${"),
            DKind::Config { .. } => self.config_path().contains("${"),
            _ => false,
        }
    }
}

/// A loaded config file: its content (without `defaults`), its defaults list and header.
#[derive(Debug)]
pub struct Loaded {
    pub config: Node,
    pub defaults: Option<Vec<InputDefault>>,
    pub header_package: Option<String>,
    pub display: String,
}

/// Caches parsed configs by path; one composition reads each file once.
pub struct Repo<'a> {
    pub sp: &'a SearchPath,
    cache: RefCell<HashMap<String, Option<Rc<Loaded>>>>,
}

impl<'a> Repo<'a> {
    pub fn new(sp: &'a SearchPath) -> Self {
        Repo {
            sp,
            cache: RefCell::new(HashMap::new()),
        }
    }
    pub fn load(&self, path: &str) -> Result<Option<Rc<Loaded>>> {
        if let Some(c) = self.cache.borrow().get(path) {
            return Ok(c.clone());
        }
        let loaded = match self.sp.load(path) {
            None => None,
            Some((text, display)) => Some(Rc::new(parse_config(&text, &display)?)),
        };
        self.cache
            .borrow_mut()
            .insert(path.to_string(), loaded.clone());
        Ok(loaded)
    }
    pub fn exists(&self, path: &str) -> bool {
        self.sp.load(path).is_some()
    }
}

/// Hydra's header parser: leading `# @package x` lines, stopping at the first other line.
fn header_package(text: &str, display: &str) -> Result<Option<String>> {
    let mut pkg = None;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let Some(rest) = l.strip_prefix('#') else {
            break;
        };
        let rest = rest.trim_start();
        let Some(body) = rest.strip_prefix('@') else {
            break;
        };
        let parts: Vec<&str> = body.split(' ').filter(|s| !s.is_empty()).collect();
        if parts.len() != 2 {
            bail!("{display}: expected header format '# @KEY VALUE', got '{l}'");
        }
        if parts[0] == "package" {
            pkg = Some(parts[1].to_string());
        }
    }
    Ok(pkg)
}

pub fn parse_config(text: &str, display: &str) -> Result<Loaded> {
    let header = header_package(text, display)?;
    let mut node = yaml::load(text, display)?;
    if matches!(node.v, Value::Null) {
        node = Node::map();
    }
    if !matches!(node.v, Value::Map(_)) {
        bail!(
            "{display}: a config file must hold a mapping at the top level, found a {}",
            node.type_name()
        );
    }
    let mut defaults = None;
    if let Some(m) = node.as_map_mut() {
        if let Some(d) = m.shift_remove("defaults") {
            defaults = Some(parse_defaults(&d, display)?);
        }
    }
    Ok(Loaded {
        config: node,
        defaults,
        header_package: header,
        display: display.to_string(),
    })
}

fn split_group(key: &str) -> (String, Option<String>) {
    match key.split_once('@') {
        Some((g, p)) => (
            g.to_string(),
            Some(p.split(':').next().unwrap_or(p).to_string()),
        ),
        None => (key.to_string(), None),
    }
}

fn parse_defaults(d: &Node, display: &str) -> Result<Vec<InputDefault>> {
    let here = |n: &Node| n.src.as_deref().unwrap_or(display).to_string();
    let Value::List(items) = &d.v else {
        bail!(
            "{}: 'defaults' must be a list, found a {}",
            here(d),
            d.type_name()
        );
    };
    let mut res = Vec::new();
    for item in items {
        let mut def = match &item.v {
            Value::Map(m) => {
                if m.len() != 1 {
                    bail!(
                        "{}: too many keys in defaults entry (each entry is one `group: option`)",
                        here(item)
                    );
                }
                let (key, val) = m.iter().next().expect("one key");
                let words: Vec<&str> = key.split(' ').filter(|w| !w.is_empty()).collect();
                let (kw, group_key) = words.split_at(words.len().saturating_sub(1));
                let mut optional = false;
                let mut is_override = false;
                for w in kw {
                    match *w {
                        "optional" => optional = true,
                        "override" => is_override = true,
                        other => bail!(
                            "{}: unknown keyword '{other}' in defaults entry '{key}' (allowed: optional, override)",
                            here(val)
                        ),
                    }
                }
                let (group, package) = split_group(group_key.first().copied().unwrap_or(""));
                let value = match &val.v {
                    Value::Null => GroupValue::Name(None),
                    Value::Str(s) => GroupValue::Name(Some(s.clone())),
                    Value::Missing => GroupValue::Name(Some("???".into())),
                    Value::List(l) => GroupValue::Options(
                        l.iter()
                            .map(|x| match &x.v {
                                Value::Str(s) => Ok(s.clone()),
                                _ => Err(anyhow!("{}: options in a defaults list must be strings", here(x))),
                            })
                            .collect::<Result<_>>()?,
                    ),
                    _ => bail!(
                        "{}: unsupported value in defaults entry '{key}': {}. Supported: a config name (string), a list of names, or null",
                        here(val),
                        val.type_name()
                    ),
                };
                let mut g = InputDefault::group(&group, value, package);
                g.optional = optional;
                g.is_override = is_override;
                g.src = val.src.clone();
                g
            }
            Value::Str(s) => {
                let (path, package) = split_group(s);
                if path == "_self_" && package.is_some() {
                    bail!("{}: _self_@PACKAGE is not supported", here(item));
                }
                let mut c = InputDefault::config(&path, package);
                c.src = item.src.clone();
                c
            }
            _ => bail!(
                "{}: unsupported defaults entry of type {}",
                here(item),
                item.type_name()
            ),
        };
        if def.is_group() && def.group_path_raw().is_empty() {
            bail!("{}: missing group name in defaults entry", here(item));
        }
        def.primary = false;
        res.push(def);
    }
    Ok(res)
}

impl InputDefault {
    fn group_path_raw(&self) -> String {
        match &self.kind {
            DKind::Group { group, .. } => group.clone(),
            _ => "x".into(),
        }
    }
}

#[derive(Clone, Debug)]
struct OverrideMeta {
    external: bool,
    containing: Option<String>,
    relative_key: String,
    used: bool,
}

/// Command-line group choices, appends and deletions, plus `override` entries met on the way.
pub struct Overrides {
    pub choices: IndexMap<String, GroupValue>,
    meta: HashMap<String, OverrideMeta>,
    append: Vec<InputDefault>,
    /// Overrides that change config values rather than pick files.
    pub config_overrides: Vec<Override>,
    pub known_choices: IndexMap<String, Option<String>>,
    known_per_group: HashMap<String, BTreeSet<String>>,
    deletions: IndexMap<String, (Option<String>, bool)>,
}

impl Overrides {
    pub fn new(sp: &SearchPath, overrides: &[Override]) -> Result<Overrides> {
        let mut o = Overrides {
            choices: IndexMap::new(),
            meta: HashMap::new(),
            append: vec![],
            config_overrides: vec![],
            known_choices: IndexMap::new(),
            known_per_group: HashMap::new(),
            deletions: IndexMap::new(),
        };
        for ov in overrides {
            if ov.is_sweep() {
                continue;
            }
            let is_group = sp.group_exists(&ov.key);
            let elem = ov.elem();
            let is_dict = matches!(elem, Some(Elem::Dict(_)));
            if is_dict || !is_group {
                o.config_overrides.push(ov.clone());
                continue;
            }
            let as_group_value = || -> Result<GroupValue> {
                match elem {
                    Some(Elem::Str(s)) | Some(Elem::Quoted(s, _)) => Ok(GroupValue::Name(Some(s.clone()))),
                    Some(Elem::List(l)) => Ok(GroupValue::Options(
                        l.iter()
                            .map(|e| match e {
                                Elem::Str(s) | Elem::Quoted(s, _) => Ok(s.clone()),
                                _ => Err(anyhow!("'{}': options of a config group must be names", ov.input_line)),
                            })
                            .collect::<Result<_>>()?,
                    )),
                    Some(Elem::Null) => bail!(
                        "'{}': a config group cannot be set to null from the command line.\n  To remove it from the defaults list use ~{}",
                        ov.input_line,
                        ov.key
                    ),
                    _ => bail!(
                        "'{}': config group override must be a config name or a list of names. Options in '{}': {}",
                        ov.input_line,
                        ov.key,
                        sp.options(&ov.key).join(", ")
                    ),
                }
            };
            match ov.kind {
                Kind::ForceAdd => bail!(
                    "force-add of config groups is not supported: '{}'\n  Use {}=... to change the option, or +{}=... to add the group.",
                    ov.input_line,
                    &ov.input_line[2..].split('=').next().unwrap_or(""),
                    &ov.input_line[2..].split('=').next().unwrap_or("")
                ),
                Kind::Delete => {
                    let key = ov.key_element()[1..].to_string();
                    let name = match elem {
                        None | Some(Elem::Null) => None,
                        Some(Elem::Str(s)) | Some(Elem::Quoted(s, _)) => Some(s.clone()),
                        _ => bail!("'{}': config group deletion value must be a config name", ov.input_line),
                    };
                    o.deletions.insert(key, (name, false));
                }
                Kind::Add => {
                    let mut g = InputDefault::group(&ov.key, as_group_value()?, ov.package.clone());
                    g.external_append = true;
                    g.src = Some(Arc::from(format!("command-line override '{}'", ov.input_line)));
                    o.append.push(g);
                }
                Kind::Change => {
                    let key = ov.key_element();
                    o.choices.insert(key.clone(), as_group_value()?);
                    o.meta.insert(key.clone(), OverrideMeta { external: true, containing: None, relative_key: key, used: false });
                }
            }
        }
        Ok(o)
    }

    fn add_override(&mut self, parent_path: &str, d: &InputDefault) {
        let key = d.override_key();
        if !self.choices.contains_key(&key) {
            if let DKind::Group { value, .. } = &d.kind {
                self.choices.insert(key.clone(), value.clone());
            }
            self.meta.insert(
                key,
                OverrideMeta {
                    external: false,
                    containing: Some(parent_path.to_string()),
                    relative_key: d.relative_override_key(),
                    used: false,
                },
            );
        }
    }
    fn is_overridden(&self, d: &InputDefault) -> bool {
        d.is_group() && self.choices.contains_key(&d.override_key())
    }
    fn override_default_option(&mut self, d: &mut InputDefault) {
        let key = d.override_key();
        if let Some(v) = self.choices.get(&key).cloned() {
            if let DKind::Group { value, .. } = &mut d.kind {
                *value = v;
            }
            if let Some(m) = self.meta.get_mut(&key) {
                m.used = true;
            }
        }
    }
    fn ensure_used(&self, sp: &SearchPath) -> Result<()> {
        for (key, meta) in &self.meta {
            if meta.used {
                continue;
            }
            let group = key.split('@').next().unwrap_or(key);
            let choices = self.known_per_group.get(group).cloned().unwrap_or_default();
            let mut msg = match choices.len() {
                0 => format!("Could not override '{key}'. No match in the defaults list."),
                1 => format!(
                    "Could not override '{key}'.\nDid you mean to override {}?",
                    choices.iter().next().expect("one")
                ),
                _ => format!(
                    "Could not override '{key}'.\nDid you mean to override one of {}?",
                    choices.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            if let Some(c) = &meta.containing {
                msg = format!("In '{c}': {msg}");
                if choices.is_empty() && !key.starts_with('/') {
                    msg.push_str("\n  Inside a config (e.g. an experiment with '# @package _global_'), write the group as an absolute path: 'override /GROUP: OPTION'.");
                }
            }
            if meta.external {
                let v = match &self.choices[key] {
                    GroupValue::Name(n) => n.clone().unwrap_or_else(|| "null".into()),
                    GroupValue::Options(o) => format!("[{}]", o.join(",")),
                };
                msg.push_str(&format!(
                    "\nTo append to your default list use +{}={v}",
                    meta.relative_key
                ));
                if !sp.options(group).is_empty() && choices.is_empty() {
                    msg.push_str(&format!(
                        "\n  ('{group}' is a config group with options: {})",
                        sp.options(group).join(", ")
                    ));
                }
            }
            bail!(msg);
        }
        for (key, (name, used)) in &self.deletions {
            if !used {
                let desc = match name {
                    Some(n) => format!("{key}={n}"),
                    None => key.clone(),
                };
                bail!("Could not delete '{desc}'. No match in the defaults list");
            }
        }
        Ok(())
    }
    fn set_known_choice(&mut self, d: &InputDefault) -> Result<()> {
        if !d.is_group() {
            return Ok(());
        }
        let key = d.override_key();
        match self.known_choices.get(&key) {
            None => {
                self.known_choices.insert(key.clone(), d.name());
            }
            Some(prev) => {
                if *prev != d.name() {
                    bail!(
                        "Multiple values for {key}. To override a value use 'override {key}: {}'",
                        prev.clone().unwrap_or_else(|| "null".into())
                    );
                }
            }
        }
        self.known_per_group
            .entry(d.group_path())
            .or_default()
            .insert(key);
        Ok(())
    }
    fn is_deleted(&self, d: &InputDefault) -> bool {
        if !d.is_group() {
            return false;
        }
        match self.deletions.get(&d.override_key()) {
            None => false,
            Some((None, _)) => true,
            Some((Some(n), _)) => Some(n.clone()) == d.name(),
        }
    }
    fn delete(&mut self, d: &mut InputDefault) {
        d.deleted = true;
        if let Some(e) = self.deletions.get_mut(&d.override_key()) {
            e.1 = true;
        }
    }
}

#[derive(Clone, Debug)]
pub struct TreeNode {
    pub node: InputDefault,
    pub children: Option<Vec<Child>>,
}

#[derive(Clone, Debug)]
pub enum Child {
    Leaf(InputDefault),
    Tree(TreeNode),
}

/// One config to merge, in order (Hydra's `ResultDefault`).
#[derive(Clone, Debug)]
pub struct ResultDefault {
    pub config_path: String,
    pub parent: Option<String>,
    pub package: String,
    pub is_self: bool,
    pub primary: bool,
    pub override_key: Option<String>,
}

pub struct DefaultsList {
    pub defaults: Vec<ResultDefault>,
    pub tree: TreeNode,
    pub overrides: Overrides,
}

struct Builder<'r, 'a> {
    repo: &'r Repo<'a>,
    ov: Overrides,
    skip_missing: bool,
}

/// Builds the defaults tree and list for `config_name` with the parsed overrides.
pub fn create(
    repo: &Repo,
    config_name: &str,
    overrides: &[Override],
    skip_missing: bool,
) -> Result<DefaultsList> {
    let ov = Overrides::new(repo.sp, overrides)?;
    let mut b = Builder {
        repo,
        ov,
        skip_missing,
    };
    let mut hydra = InputDefault::config("hydra/config", None);
    hydra.src = Some(Arc::from("ezflt"));
    let mut primary = InputDefault::config(config_name, None);
    primary.primary = true;
    let mut vroot = InputDefault::config("", None);
    vroot.virtual_root = true;
    let mut root = TreeNode {
        node: vroot,
        children: Some(vec![Child::Leaf(hydra), Child::Leaf(primary)]),
    };
    // _expand_virtual_root
    let kids = root.children.take().unwrap_or_default();
    let mut out = Vec::new();
    for c in kids.into_iter().rev() {
        let Child::Leaf(mut d) = c else { continue };
        d.update_parent("", "");
        let is_primary = d.primary;
        let sub = b.expand(
            TreeNode {
                node: d,
                children: None,
            },
            is_primary,
            false,
            None,
        )?;
        out.push(if sub.children.is_none() {
            Child::Leaf(sub.node)
        } else {
            Child::Tree(sub)
        });
    }
    out.reverse();
    root.children = Some(out);

    let mut list = Vec::new();
    walk(&root, None, &mut list);
    let mut seen = BTreeSet::new();
    for r in &list {
        if !r.is_self {
            if let Some(k) = &r.override_key {
                if !seen.insert(k.clone()) {
                    bail!("{k} appears more than once in the final defaults list\n  To change the option of a group already in the defaults list use {k}=OPTION, without +.");
                }
            }
        }
    }
    b.ov.ensure_used(repo.sp)?;
    Ok(DefaultsList {
        defaults: list,
        tree: root,
        overrides: b.ov,
    })
}

impl Builder<'_, '_> {
    fn not_found(&self, node: &InputDefault, parent: Option<&InputDefault>) -> anyhow::Error {
        let sp = self.repo.sp;
        let mut msg = if node.primary {
            format!(
                "Cannot find primary config '{}'. Check that it's in your config search path.\n  Use --config-path/-cp to point at your conf/ directory and --config-name/-cn to pick the file.\n",
                node.config_path()
            )
        } else if node.is_group() {
            let group = node.group_path();
            let options = sp.options(&group);
            let mut m = format!("Could not find '{}'\n", node.config_path());
            if let Some(s) = node
                .name()
                .and_then(|n| suggest::did_you_mean(&n, options.iter().map(|s| s.as_str())))
            {
                m.push_str(&format!("Did you mean '{group}={s}'?\n"));
            }
            if !options.is_empty() {
                m.push_str(&format!(
                    "\nAvailable options in '{group}':\n{}\n",
                    options
                        .iter()
                        .map(|o| format!("\t{o}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
            m
        } else {
            format!("Could not load '{}'.\n", node.config_path())
        };
        if let Some(p) = parent {
            if !p.virtual_root {
                let at = node
                    .src
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                msg = format!("In '{}'{at}: {msg}", p.config_path());
            }
        }
        anyhow!("{msg}Config search path:\n{}", sp.describe())
    }

    fn expand(
        &mut self,
        mut root: TreeNode,
        is_root_config: bool,
        interpolated: bool,
        parent_node: Option<&InputDefault>,
    ) -> Result<TreeNode> {
        if is_root_config {
            root.node.update_parent("", "");
            if !self.repo.exists(&root.node.config_path()) {
                return Err(self.not_found(&root.node, None));
            }
        }
        // update_package_header
        if !root.node.is_missing() && root.node.name().is_some() {
            if let Some(l) = self.repo.load(&root.node.config_path())? {
                if root.node.package_header.is_none() {
                    root.node.set_package_header(l.header_package.clone());
                }
            }
        }
        if self.ov.is_deleted(&root.node) {
            self.ov.delete(&mut root.node);
            return Ok(root);
        }
        self.ov.set_known_choice(&root.node)?;
        if root.node.name().is_none() {
            return Ok(root);
        }
        if root.node.is_missing() {
            if self.skip_missing {
                return Ok(root);
            }
            let key = root.node.override_key();
            let opts = self.repo.sp.options(&root.node.group_path());
            bail!(
                "You must specify '{key}', e.g, {key}=<OPTION>\nAvailable options:\n{}",
                opts.iter()
                    .map(|o| format!("\t{o}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let path = root.node.config_path();
        let loaded = match self.repo.load(&path)? {
            Some(l) => l,
            None => {
                if root.node.optional {
                    root.node.deleted = true;
                    return Ok(root);
                }
                return Err(self.not_found(&root.node, parent_node));
            }
        };
        let mut defaults = loaded.defaults.clone().unwrap_or_default();
        let mut self_added = false;
        if !defaults.is_empty() || (is_root_config && !self.ov.append.is_empty()) {
            self_added = validate_self(&root.node, &mut defaults, &loaded)?;
        }
        if is_root_config {
            defaults.extend(self.ov.append.clone());
        }
        // _update_overrides
        let parent_group = root.node.group_path();
        let parent_pkg = root.node.final_package(true);
        let mut last_override: Option<InputDefault> = None;
        for d in defaults.iter_mut() {
            if d.is_self() {
                continue;
            }
            d.update_parent(&parent_group, &parent_pkg);
            if let Some(lo) = &last_override {
                if !(d.is_override || d.external_append) {
                    bail!(
                        "In {}: Override '{} : {}' is defined before '{}: {}'.\nOverrides must be at the end of the defaults list",
                        path,
                        lo.override_key(),
                        lo.name().unwrap_or_default(),
                        if d.is_group() { d.override_key() } else { d.config_path() },
                        d.name().unwrap_or_default()
                    );
                }
            }
            if d.is_group() && d.is_override {
                last_override = Some(d.clone());
                if interpolated {
                    bail!(
                        "{path}: Default List Overrides are not allowed in the subtree of an interpolated config group (override {}={}).",
                        d.override_key(),
                        d.name().unwrap_or_default()
                    );
                }
                self.ov.add_override(&path, d);
            }
        }

        let mut children: Vec<Child> = Vec::new();
        let root_base = root.node.parent_base_dir.clone().unwrap_or_default();
        let root_pkg = root.node.get_package(true).unwrap_or_default();
        for d in defaults.iter().rev() {
            let mut d = d.clone();
            if d.is_self() {
                d.update_parent(&root_base, &root_pkg);
                children.push(Child::Leaf(d));
                continue;
            }
            if d.is_override {
                continue;
            }
            d.update_parent(&parent_group, &parent_pkg);
            if self.ov.is_overridden(&d) {
                self.ov.override_default_option(&mut d);
            }
            if let DKind::Group {
                group,
                value: GroupValue::Options(opts),
            } = &d.kind
            {
                for item in opts.iter().rev() {
                    if item.contains("${") {
                        bail!("In '{path}': Defaults List interpolation is not supported in options list items");
                    }
                    let mut node =
                        InputDefault::config(&format!("{group}/{item}"), d.package.clone());
                    node.optional = d.optional;
                    node.src = d.src.clone();
                    node.update_parent(&parent_group, &parent_pkg);
                    let sub = self.expand(
                        TreeNode {
                            node,
                            children: None,
                        },
                        false,
                        interpolated,
                        Some(&root.node),
                    )?;
                    children.push(if sub.children.is_none() {
                        Child::Leaf(sub.node)
                    } else {
                        Child::Tree(sub)
                    });
                }
            } else {
                if d.is_interpolation() {
                    children.push(Child::Leaf(d));
                    continue;
                }
                let sub = self.expand(
                    TreeNode {
                        node: d,
                        children: None,
                    },
                    false,
                    interpolated,
                    Some(&root.node),
                )?;
                children.push(if sub.children.is_none() {
                    Child::Leaf(sub.node)
                } else {
                    Child::Tree(sub)
                });
            }
        }
        // deferred interpolations in the defaults list: `- db: ${model}_${size}`
        let known = self.interpolation_map(&defaults, self_added);
        for c in children.iter_mut() {
            if let Child::Leaf(d) = c {
                if d.is_interpolation() && !d.is_self() {
                    let mut d2 = d.clone();
                    resolve_default_interpolation(&mut d2, &known)?;
                    d2.update_parent(&parent_group, &parent_pkg);
                    let sub = self.expand(
                        TreeNode {
                            node: d2,
                            children: None,
                        },
                        false,
                        true,
                        Some(&root.node),
                    )?;
                    *c = if sub.children.is_none() {
                        Child::Leaf(sub.node)
                    } else {
                        Child::Tree(sub)
                    };
                }
            }
        }
        if !children.is_empty() {
            children.reverse();
            root.children = Some(children);
        }
        Ok(root)
    }

    fn interpolation_map(
        &self,
        defaults: &[InputDefault],
        self_added: bool,
    ) -> HashMap<String, Option<String>> {
        let mut m: HashMap<String, Option<String>> = self
            .ov
            .known_choices
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for d in defaults {
            if self_added && d.is_self() {
                continue;
            }
            if let DKind::Group {
                value: GroupValue::Name(n),
                ..
            } = &d.kind
            {
                m.entry(d.override_key()).or_insert(n.clone());
            }
        }
        m
    }
}

fn resolve_default_interpolation(
    d: &mut InputDefault,
    known: &HashMap<String, Option<String>>,
) -> Result<()> {
    let text = match &d.kind {
        DKind::Group {
            value: GroupValue::Name(Some(n)),
            ..
        } => n.clone(),
        DKind::Config { path } => path.clone(),
        _ => return Ok(()),
    };
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            bail!("unterminated interpolation in defaults entry '{text}'")
        };
        let key = rest[i + 2..i + j].trim();
        match known.get(key) {
            Some(Some(v)) => out.push_str(v),
            _ => {
                let mut keys: Vec<&String> = known.keys().collect();
                keys.sort();
                bail!(
                    "Error resolving interpolation '{text}', possible interpolation keys: {}",
                    keys.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    match &mut d.kind {
        DKind::Group { value, .. } => *value = GroupValue::Name(Some(out)),
        DKind::Config { path } => *path = out,
    }
    Ok(())
}

/// Ensures one `_self_`; adds it last when missing (warning for the primary config).
fn validate_self(
    node: &InputDefault,
    defaults: &mut Vec<InputDefault>,
    loaded: &Loaded,
) -> Result<bool> {
    let mut has_self = false;
    let mut has_non_override = false;
    for d in defaults.iter() {
        if !d.is_override {
            has_non_override = true;
        }
        if d.is_self() {
            if has_self {
                bail!("Duplicate _self_ defined in {}", node.config_path());
            }
            has_self = true;
        }
    }
    if (!has_self && has_non_override) || defaults.is_empty() {
        let has_content = loaded
            .config
            .as_map()
            .is_some_and(|m| m.values().any(|v| !matches!(v.v, Value::Missing)));
        if node.primary && has_content && has_non_override {
            warnln!(
                "In '{}': Defaults list is missing `_self_`; the file's own values are merged last. Add `- _self_` to the defaults list to choose.",
                node.config_path()
            );
        }
        defaults.push(InputDefault::config("_self_", None));
    }
    Ok(!has_self)
}

fn walk(tree: &TreeNode, parent: Option<&TreeNode>, out: &mut Vec<ResultDefault>) {
    match &tree.children {
        None => collect(parent, None, &tree.node, out),
        Some(c) if c.is_empty() => collect(parent, None, &tree.node, out),
        Some(children) => {
            for c in children {
                match c {
                    Child::Leaf(d) => collect(Some(tree), parent, d, out),
                    Child::Tree(t) => walk(t, Some(tree), out),
                }
            }
        }
    }
}

fn collect(
    tree: Option<&TreeNode>,
    tree_parent: Option<&TreeNode>,
    node: &InputDefault,
    out: &mut Vec<ResultDefault>,
) {
    if node.deleted || node.is_missing() || node.virtual_root || node.name().is_none() {
        return;
    }
    let r = if node.is_self() {
        let Some(t) = tree else { return };
        ResultDefault {
            config_path: t.node.config_path(),
            parent: tree_parent
                .filter(|p| !p.node.virtual_root)
                .map(|p| p.node.config_path()),
            package: t.node.final_package(true),
            is_self: true,
            primary: t.node.primary,
            override_key: None,
        }
    } else {
        ResultDefault {
            config_path: node.config_path(),
            parent: tree
                .filter(|t| !t.node.virtual_root)
                .map(|t| t.node.config_path()),
            package: node.final_package(true),
            is_self: false,
            primary: node.primary,
            override_key: if node.is_group() {
                Some(node.override_key())
            } else {
                None
            },
        }
    };
    out.push(r);
}

/// Text of the defaults tree for `--info defaults-tree`.
pub fn tree_text(t: &TreeNode) -> String {
    let mut s = String::new();
    fn go(t: &TreeNode, depth: usize, s: &mut String) {
        let head = if t.node.virtual_root {
            "<root>".to_string()
        } else {
            label(&t.node)
        };
        // As Hydra prints it: a node with children ends in ':', one without does not.
        let colon = if t.children.as_ref().is_some_and(|c| !c.is_empty()) {
            ":"
        } else {
            ""
        };
        s.push_str(&format!("{}{head}{colon}\n", "  ".repeat(depth)));
        for c in t.children.iter().flatten() {
            match c {
                Child::Leaf(d) => s.push_str(&format!("{}{}\n", "  ".repeat(depth + 1), label(d))),
                Child::Tree(sub) => go(sub, depth + 1, s),
            }
        }
    }
    fn label(d: &InputDefault) -> String {
        // Hydra shows neither `optional` nor deletion in the tree.
        if d.is_self() {
            "_self_".to_string()
        } else if d.is_group() {
            format!(
                "{}: {}",
                d.override_key(),
                d.name().unwrap_or_else(|| "null".into())
            )
        } else {
            d.config_path()
        }
    }
    go(t, 0, &mut s);
    s
}
