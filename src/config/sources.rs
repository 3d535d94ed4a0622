//! The config search path: where `group/option` names are looked up, in order.
//! Sources are directories or trees embedded in the binary (Hydra's `file://` and `pkg://`).

use include_dir::{include_dir, Dir};
use std::path::{Path, PathBuf};

/// Hydra's own configs (`hydra/launcher`, `hydra/output`, ...), always first.
static BUILTIN_HYDRA: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/src/config/builtin");
/// ezflt's `conf/` and `experiments/`, so an installed binary works from any directory.
/// A `./conf` or `--config-path` replaces them whole, so a user's tree is never mixed with ours.
static BUILTIN_CONF: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/conf");
static BUILTIN_EXPERIMENTS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/experiments");

/// One search-path entry. `mounts` graft an extra directory in as a group
/// (`experiments/` becomes the `experiment` group).
#[derive(Clone, Debug)]
pub struct Source {
    pub provider: String,
    pub kind: SourceKind,
}

#[derive(Clone, Debug)]
pub enum SourceKind {
    Embedded {
        name: &'static str,
        dir: &'static Dir<'static>,
        mounts: Vec<(&'static str, &'static Dir<'static>)>,
    },
    Files {
        root: PathBuf,
        mounts: Vec<(String, PathBuf)>,
    },
    /// Configs an `App` registered with its models and datasets (`model/my_net.yaml`):
    /// searched after the files, so a user's own `conf/model/my_net.yaml` overrides them.
    Memory { files: Vec<(String, String)> },
}

impl Source {
    pub fn hydra() -> Source {
        Source {
            provider: "hydra".into(),
            kind: SourceKind::Embedded {
                name: "ezflt.hydra",
                dir: &BUILTIN_HYDRA,
                mounts: vec![],
            },
        }
    }
    pub fn builtin(provider: &str) -> Source {
        Source {
            provider: provider.into(),
            kind: SourceKind::Embedded {
                name: "ezflt.conf",
                dir: &BUILTIN_CONF,
                mounts: vec![("experiment", &BUILTIN_EXPERIMENTS)],
            },
        }
    }
    pub fn files(provider: &str, root: PathBuf, mounts: Vec<(String, PathBuf)>) -> Source {
        Source {
            provider: provider.into(),
            kind: SourceKind::Files { root, mounts },
        }
    }

    /// The configs an `App` registered with its models and datasets.
    pub fn app(files: Vec<(String, String)>) -> Source {
        Source {
            provider: "app".into(),
            kind: SourceKind::Memory { files },
        }
    }

    /// `pkg://...` or `file://...` as Hydra prints it.
    pub fn url(&self) -> String {
        let (scheme, path) = self.scheme_and_path();
        format!("{scheme}://{path}")
    }
    pub fn scheme_and_path(&self) -> (&'static str, String) {
        match &self.kind {
            SourceKind::Embedded { name, .. } => ("pkg", name.to_string()),
            SourceKind::Files { root, .. } => ("file", root.display().to_string()),
            SourceKind::Memory { .. } => ("pkg", "ezflt.app".to_string()),
        }
    }

    /// Text and display path of `config_path` (`model/mlp`), if this source has it.
    pub fn load(&self, config_path: &str) -> Option<(String, String)> {
        for ext in [".yaml", ".yml"] {
            let rel = if config_path.ends_with(".yaml") || config_path.ends_with(".yml") {
                config_path.to_string()
            } else {
                format!("{config_path}{ext}")
            };
            match &self.kind {
                SourceKind::Embedded { name, dir, mounts } => {
                    let (d, r, label) = route_embedded(dir, mounts, &rel, name);
                    if let Some(f) = d.get_file(&r) {
                        return f
                            .contents_utf8()
                            .map(|t| (t.to_string(), format!("{label}/{r}")));
                    }
                }
                SourceKind::Files { root, mounts } => {
                    let p = route_files(root, mounts, &rel);
                    if p.is_file() {
                        let shown = display_path(&p);
                        return std::fs::read_to_string(&p).ok().map(|t| (t, shown));
                    }
                }
                SourceKind::Memory { files } => {
                    if let Some((_, text)) = files.iter().find(|(p, _)| *p == rel) {
                        return Some((text.clone(), format!("pkg://ezflt.app/{rel}")));
                    }
                }
            }
        }
        None
    }

    pub fn is_group(&self, group: &str) -> bool {
        if group.is_empty() {
            return true;
        }
        match &self.kind {
            SourceKind::Embedded { dir, mounts, .. } => {
                let (d, r, _) = route_embedded(dir, mounts, group, "");
                r.is_empty() || d.get_dir(&r).is_some()
            }
            SourceKind::Files { root, mounts } => route_files(root, mounts, group).is_dir(),
            SourceKind::Memory { files } => files
                .iter()
                .any(|(p, _)| p.starts_with(&format!("{group}/"))),
        }
    }

    /// Config names (without extension) and subgroup names directly under `group`.
    pub fn list(&self, group: &str) -> (Vec<String>, Vec<String>) {
        let mut configs = Vec::new();
        let mut groups = Vec::new();
        let strip = |n: &str| {
            n.strip_suffix(".yaml")
                .or_else(|| n.strip_suffix(".yml"))
                .map(|s| s.to_string())
        };
        match &self.kind {
            SourceKind::Embedded { dir, mounts, .. } => {
                let (d, r, _) = route_embedded(dir, mounts, group, "");
                let target = if r.is_empty() { Some(d) } else { d.get_dir(&r) };
                if let Some(t) = target {
                    for f in t.files() {
                        if let Some(n) = f
                            .path()
                            .file_name()
                            .and_then(|n| n.to_str())
                            .and_then(strip)
                        {
                            configs.push(n);
                        }
                    }
                    for sd in t.dirs() {
                        if let Some(n) = sd.path().file_name().and_then(|n| n.to_str()) {
                            groups.push(n.to_string());
                        }
                    }
                }
                if group.is_empty() {
                    groups.extend(mounts.iter().map(|(g, _)| g.to_string()));
                }
            }
            SourceKind::Files { root, mounts } => {
                let p = route_files(root, mounts, group);
                if let Ok(rd) = std::fs::read_dir(&p) {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().to_string();
                        if e.path().is_dir() {
                            groups.push(name);
                        } else if let Some(n) = strip(&name) {
                            configs.push(n);
                        }
                    }
                }
                if group.is_empty() {
                    groups.extend(
                        mounts
                            .iter()
                            .filter(|(_, d)| d.is_dir())
                            .map(|(g, _)| g.clone()),
                    );
                }
            }
            SourceKind::Memory { files } => {
                let prefix = if group.is_empty() {
                    String::new()
                } else {
                    format!("{group}/")
                };
                for (p, _) in files {
                    let Some(rest) = p.strip_prefix(&prefix) else {
                        continue;
                    };
                    match rest.split_once('/') {
                        Some((g, _)) => groups.push(g.to_string()),
                        None => configs.extend(strip(rest)),
                    }
                }
            }
        }
        (configs, groups)
    }
}

fn route_embedded<'a>(
    dir: &'a Dir<'static>,
    mounts: &'a [(&'static str, &'static Dir<'static>)],
    rel: &str,
    name: &str,
) -> (&'a Dir<'static>, String, String) {
    for (g, d) in mounts {
        if rel == *g {
            return (d, String::new(), format!("pkg://{name}/{g}"));
        }
        if let Some(r) = rel.strip_prefix(&format!("{g}/")) {
            return (d, r.to_string(), format!("pkg://{name}/{g}"));
        }
    }
    (dir, rel.to_string(), format!("pkg://{name}"))
}

fn route_files(root: &Path, mounts: &[(String, PathBuf)], rel: &str) -> PathBuf {
    for (g, d) in mounts {
        if rel == g {
            return d.clone();
        }
        if let Some(r) = rel.strip_prefix(&format!("{g}/")) {
            return d.join(r);
        }
    }
    root.join(rel)
}

/// Paths under the working directory are shown relative, the rest absolute.
pub fn display_path(p: &Path) -> String {
    if let Ok(cwd) = std::env::current_dir() {
        if let Ok(r) = p.strip_prefix(&cwd) {
            return r.display().to_string();
        }
    }
    p.display().to_string()
}

/// The ordered search path.
#[derive(Clone, Debug)]
pub struct SearchPath {
    pub sources: Vec<Source>,
}

impl SearchPath {
    /// Builds the search path from the CLI flags and the working directory.
    pub fn new(config_path: Option<&Path>, config_dirs: &[PathBuf]) -> anyhow::Result<SearchPath> {
        let cwd = std::env::current_dir()?;
        let mut sources = vec![Source::hydra()];
        match config_path {
            Some(p) => {
                let abs = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    cwd.join(p)
                };
                if !abs.is_dir() {
                    anyhow::bail!(
                        "Primary config directory not found: {}\n  --config-path must name a directory holding your configs (e.g. conf/).",
                        abs.display()
                    );
                }
                sources.push(Source::files("main", abs, vec![]));
            }
            None => {
                let local = cwd.join("conf");
                if local.is_dir() {
                    let mut mounts = vec![];
                    if cwd.join("experiments").is_dir() {
                        mounts.push(("experiment".to_string(), cwd.join("experiments")));
                    }
                    sources.push(Source::files("main", local, mounts));
                } else {
                    sources.push(Source::builtin("main"));
                }
            }
        }
        for d in config_dirs {
            let abs = if d.is_absolute() {
                d.clone()
            } else {
                cwd.join(d)
            };
            if !abs.is_dir() {
                anyhow::bail!("Additional config directory '{}' not found\n  Check the path given to --config-dir.", abs.display());
            }
            sources.push(Source::files("command-line", abs, vec![]));
        }
        let registered = crate::app::registry().config_files();
        if !registered.is_empty() {
            sources.push(Source::app(registered));
        }
        Ok(SearchPath { sources })
    }

    /// Adds `hydra.searchpath` entries (from the primary config or the command line).
    pub fn add_user_paths(&mut self, entries: &[String]) -> anyhow::Result<()> {
        let at = self.sources.len();
        for (i, e) in entries.iter().enumerate() {
            let src = if let Some(p) = e.strip_prefix("file://") {
                Source::files("hydra.searchpath", PathBuf::from(p), vec![])
            } else if e.starts_with("pkg://") {
                Source::builtin("hydra.searchpath")
            } else {
                Source::files("hydra.searchpath", PathBuf::from(e), vec![])
            };
            self.sources.insert(at + i, src);
        }
        Ok(())
    }

    pub fn load(&self, config_path: &str) -> Option<(String, String)> {
        self.sources.iter().find_map(|s| s.load(config_path))
    }
    pub fn group_exists(&self, group: &str) -> bool {
        !group.is_empty() && self.sources.iter().any(|s| s.is_group(group))
    }
    /// Sorted, de-duplicated options of a group.
    pub fn options(&self, group: &str) -> Vec<String> {
        let mut v: Vec<String> = self.sources.iter().flat_map(|s| s.list(group).0).collect();
        v.sort();
        v.dedup();
        v
    }
    pub fn subgroups(&self, group: &str) -> Vec<String> {
        let mut v: Vec<String> = self.sources.iter().flat_map(|s| s.list(group).1).collect();
        v.sort();
        v.dedup();
        v
    }
    /// All groups (recursively), for `--help`.
    pub fn all_groups(&self, include_hydra: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack: Vec<String> = self.subgroups("").into_iter().rev().collect();
        while let Some(g) = stack.pop() {
            if !include_hydra && (g == "hydra" || g.starts_with("hydra/")) {
                continue;
            }
            if !self.options(&g).is_empty() {
                out.push(g.clone());
            }
            for sg in self.subgroups(&g).into_iter().rev() {
                stack.push(format!("{g}/{sg}"));
            }
        }
        out.sort();
        out
    }
    pub fn describe(&self) -> String {
        self.sources
            .iter()
            .map(|s| format!("\tprovider={}, path={}", s.provider, s.url()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
