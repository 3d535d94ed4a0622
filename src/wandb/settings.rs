//! W&B settings: the `logger.wandb` config values over the `WANDB_*` environment variables
//! W&B users already set (config wins, as in the SDK), plus the API key from env or netrc.

use anyhow::{bail, Result};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Journal to disk and stream to the server in the background.
    Online,
    /// Journal only; `ezflt sync` uploads it later.
    Offline,
    Disabled,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "online" | "run" => Some(Mode::Online),
            "offline" | "dryrun" => Some(Mode::Offline),
            "disabled" => Some(Mode::Disabled),
            _ => None,
        }
    }
}

/// An API key that never prints: `Debug` and `Display` show only its length.
#[derive(Clone, PartialEq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(k: &str) -> ApiKey {
        ApiKey(k.trim().to_string())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey(<{} chars, hidden>)", self.0.len())
    }
}

/// Every wait and limit of the protocol (spec §5, §7), injectable so tests run in
/// milliseconds; the defaults are wandb-core's.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Per-request timeout for GraphQL and file_stream posts.
    pub request: Duration,
    /// How long the first UpsertBucket may take before training starts anyway.
    pub init: Duration,
    /// How long the end of a run waits for the upload backlog before leaving it to `ezflt sync`.
    pub finish: Duration,
    /// Minimum gap between two file_stream posts.
    pub pacing: Duration,
    /// An empty post after this long without one keeps the run alive on the server.
    pub heartbeat: Duration,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// GraphQL and upload retries (file_stream retries until the finish deadline).
    pub retries: u32,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            request: Duration::from_secs(30),
            init: Duration::from_secs(90),
            finish: Duration::from_secs(600),
            pacing: Duration::from_secs(15),
            heartbeat: Duration::from_secs(30),
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(60),
            retries: 20,
        }
    }
}

/// What the `logger.wandb` config node says; `None` = not set there.
#[derive(Clone, Debug, Default)]
pub struct FromConfig {
    pub mode: Option<String>,
    pub base_url: Option<String>,
    pub entity: Option<String>,
    pub project: Option<String>,
    pub group: Option<String>,
    pub name: Option<String>,
    pub notes: Option<String>,
    pub job_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub id: Option<String>,
    pub dir: Option<String>,
    pub required: bool,
    pub upload_plots: bool,
    pub timing: Timing,
}

/// Resolved settings for one run.
#[derive(Clone, Debug)]
pub struct Settings {
    pub mode: Mode,
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub entity: Option<String>,
    pub project: String,
    pub group: Option<String>,
    pub name: Option<String>,
    pub notes: Option<String>,
    pub job_type: Option<String>,
    pub tags: Vec<String>,
    pub id: Option<String>,
    /// `WANDB_DIR`: journals go to `<dir>/wandb/...` instead of `<run>/wandb/...`.
    pub dir: Option<PathBuf>,
    pub required: bool,
    pub upload_plots: bool,
    pub timing: Timing,
}

pub const DEFAULT_BASE_URL: &str = "https://api.wandb.ai";

/// Config first, then the environment (`env` is `std::env::var` outside tests).
pub fn resolve(c: &FromConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
    let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let pick = |cfg: &Option<String>, var: &str| cfg.clone().or_else(|| env(var));
    let mode_text = pick(&c.mode, "WANDB_MODE").unwrap_or_else(|| "online".into());
    let Some(mode) = Mode::parse(&mode_text) else {
        bail!(
            "W&B mode '{mode_text}' (logger.wandb.mode or WANDB_MODE) is not one of online, offline, disabled"
        );
    };
    let base_url = pick(&c.base_url, "WANDB_BASE_URL")
        .unwrap_or_else(|| DEFAULT_BASE_URL.into())
        .trim_end_matches('/')
        .to_string();
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        bail!("W&B base URL '{base_url}' (logger.wandb.base_url or WANDB_BASE_URL) must start with http:// or https://");
    }
    let tags = match &c.tags {
        Some(t) => t.clone(),
        None => env("WANDB_TAGS")
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let api_key = env("WANDB_API_KEY")
        .map(|k| ApiKey::new(&k))
        .or_else(|| netrc_key(&base_url, &env).map(|k| ApiKey::new(&k)));
    if let Some(id) = pick(&c.id, "WANDB_RUN_ID") {
        if id.is_empty()
            || !id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            bail!("W&B run id '{id}' (logger.wandb.id or WANDB_RUN_ID) may only hold letters, digits, '-' and '_'");
        }
    }
    Ok(Settings {
        mode,
        base_url,
        api_key,
        entity: pick(&c.entity, "WANDB_ENTITY"),
        project: pick(&c.project, "WANDB_PROJECT").unwrap_or_else(|| "uncategorized".into()),
        group: pick(&c.group, "WANDB_RUN_GROUP"),
        name: pick(&c.name, "WANDB_NAME"),
        notes: pick(&c.notes, "WANDB_NOTES"),
        job_type: pick(&c.job_type, "WANDB_JOB_TYPE"),
        tags,
        id: pick(&c.id, "WANDB_RUN_ID"),
        dir: pick(&c.dir, "WANDB_DIR")
            .map(|d| PathBuf::from(crate::run::settings::expand_home(&d))),
        required: c.required,
        upload_plots: c.upload_plots,
        timing: c.timing.clone(),
    })
}

/// The netrc entry for the API host (`$NETRC`, else `~/.netrc`): the key is its password.
fn netrc_key(base_url: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let host = base_url.split("://").nth(1)?.split('/').next()?.to_string();
    let path = env("NETRC")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".netrc")))?;
    let text = std::fs::read_to_string(path).ok()?;
    netrc_password(&text, &host)
}

/// The password of `machine <host>` in netrc text (tokens may span lines, as netrc allows).
pub fn netrc_password(text: &str, host: &str) -> Option<String> {
    let tokens: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .collect();
    let mut i = 0;
    let mut in_machine = false;
    while i < tokens.len() {
        match tokens[i] {
            "machine" => {
                in_machine = tokens.get(i + 1) == Some(&host);
                i += 2;
            }
            "default" => {
                in_machine = false;
                i += 1;
            }
            "password" if in_machine => return tokens.get(i + 1).map(|s| s.to_string()),
            _ => i += 1,
        }
    }
    None
}

impl Settings {
    /// The one API-key rule, wherever a run's W&B settings are used (the preflight, the start
    /// of logging, the library's callback): online logging needs a key of the right shape;
    /// without one, a run that requires W&B (`logger.wandb.required`, the default) stops here,
    /// and one that does not logs offline for `ezflt sync` to upload later, saying so.
    pub fn settle_key(&mut self) -> Result<()> {
        if self.mode != Mode::Online {
            return Ok(());
        }
        match &self.api_key {
            Some(k) => check_key(k),
            None => {
                let msg = "W&B logging (logger=wandb) needs an API key: set WANDB_API_KEY or add the API host to ~/.netrc \
                           (`wandb login` writes it), or log offline with WANDB_MODE=offline and upload later with `ezflt sync`";
                if self.required {
                    bail!("{msg}; or set logger.wandb.required=false to fall back to offline");
                }
                warnln!("wandb: {msg}; logging offline (logger.wandb.required=false)");
                self.mode = Mode::Offline;
                Ok(())
            }
        }
    }
}

/// The SDK's key check: an optional `prefix-`, then at least 40 word characters.
pub fn check_key(key: &ApiKey) -> Result<()> {
    let k = key.expose();
    let body = k.rsplit('-').next().unwrap_or(k);
    let jwt = k.split('.').count() == 3;
    if !jwt && (body.len() < 40 || !body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
        bail!(
            "the W&B API key (from WANDB_API_KEY or ~/.netrc) does not look like one: it has {} characters, \
             W&B keys have at least 40 letters, digits or '_'. Copy it again from https://wandb.ai/authorize",
            k.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_rule() {
        let with = |key: Option<&str>, mode: &str, required: bool| {
            let key = key.map(String::from);
            let env = move |k: &str| match k {
                "WANDB_API_KEY" => key.clone(),
                "HOME" => Some("/nonexistent".into()),
                _ => None,
            };
            let c = FromConfig {
                mode: Some(mode.into()),
                required,
                ..Default::default()
            };
            let mut s = resolve(&c, &env).unwrap();
            s.settle_key().map(|_| s.mode)
        };
        let e = with(None, "online", true).unwrap_err().to_string();
        assert!(
            e.contains("WANDB_API_KEY") && e.contains("required=false"),
            "{e}"
        );
        assert_eq!(with(None, "online", false).unwrap(), Mode::Offline);
        assert_eq!(with(None, "offline", true).unwrap(), Mode::Offline);
        assert!(with(Some("short"), "online", true).is_err());
        assert_eq!(
            with(Some(&"k".repeat(40)), "online", true).unwrap(),
            Mode::Online
        );
    }

    #[test]
    fn config_wins_over_env_and_tags_split() {
        let env = |k: &str| match k {
            "WANDB_PROJECT" => Some("from-env".to_string()),
            "WANDB_ENTITY" => Some("team".to_string()),
            "WANDB_TAGS" => Some("a, b,,c".to_string()),
            "WANDB_BASE_URL" => Some("http://127.0.0.1:9/".to_string()),
            "WANDB_API_KEY" => Some("k".repeat(40)),
            _ => None,
        };
        let c = FromConfig {
            project: Some("from-config".into()),
            ..Default::default()
        };
        let s = resolve(&c, &env).unwrap();
        assert_eq!(s.project, "from-config");
        assert_eq!(s.entity.as_deref(), Some("team"));
        assert_eq!(s.tags, vec!["a", "b", "c"]);
        assert_eq!(s.base_url, "http://127.0.0.1:9");
        assert_eq!(s.mode, Mode::Online);
        assert!(!format!("{s:?}").contains(&"k".repeat(40)));
    }

    #[test]
    fn netrc_password_for_the_host() {
        let text = "machine other.host login a password nope\nmachine api.wandb.ai\n  login user\n  password SECRET\n";
        assert_eq!(
            netrc_password(text, "api.wandb.ai").as_deref(),
            Some("SECRET")
        );
        assert_eq!(netrc_password(text, "127.0.0.1:8080"), None);
    }

    #[test]
    fn bad_mode_and_short_key_are_errors() {
        let env = |_: &str| None;
        let c = FromConfig {
            mode: Some("sometimes".into()),
            ..Default::default()
        };
        assert!(resolve(&c, &env).is_err());
        assert!(check_key(&ApiKey::new("short")).is_err());
        assert!(check_key(&ApiKey::new(&"a".repeat(40))).is_ok());
        assert!(check_key(&ApiKey::new(&format!("local-{}", "a".repeat(40)))).is_ok());
    }
}
