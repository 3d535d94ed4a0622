//! Weights & Biases over HTTP, no Python: every run is journalled to a `.wandb` record log
//! (the SDK's own format) that a background thread streams to the server; `ezflt sync` replays it.

pub mod callback;
pub mod client;
pub mod records;
pub mod settings;
pub mod stream;

use anyhow::{Context, Result};
use records::{
    ConfigRecord, FilesItem, FilesRecord, HistoryRecord, HistoryStep, Item, LogWriter, RecordType,
    RunExitRecord, RunRecord, SummaryRecord, Timestamp,
};
use serde_json::Value;
use settings::{Mode, Settings};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Who the run is in W&B beyond the settings: a sweep's jobs share a group and carry their
/// overrides as tags.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub group: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
}

/// Group, name and tags of a run directory: jobs of a sweep (`<sweep>/<num>/`) are grouped by
/// the sweep directory and named by their overrides; every run is tagged with its overrides.
pub fn identity(dir: &Path) -> Identity {
    let overrides = crate::plan::rundir::read_task_overrides(dir);
    let tags: Vec<String> = overrides
        .iter()
        .filter(|o| !o.starts_with("hydra.") && !o.contains("logger"))
        .map(|o| o.trim_start_matches(['+', '~']).chars().take(64).collect())
        .collect();
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let sweep = abs.parent().filter(|p| p.join("multirun.yaml").exists());
    let group = sweep.map(|s| {
        let name = s.file_name().map(|n| n.to_string_lossy().to_string());
        let parent = s
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().to_string());
        match (parent, name) {
            // Hydra's default sweep dir is multirun/<date>/<time>: keep the date.
            (Some(p), Some(n)) if p.len() == 10 && p.as_bytes()[4] == b'-' => format!("{p}/{n}"),
            (_, Some(n)) => n,
            _ => "sweep".into(),
        }
    });
    let name = sweep.map(|_| {
        let num = abs
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if tags.is_empty() {
            format!("job-{num}")
        } else {
            format!("{num}:{}", tags.join(","))
        }
    });
    Identity { group, name, tags }
}

/// A config tree as plain JSON (what UpsertBucket and the record log carry).
pub fn node_json(n: &crate::config::Node) -> Value {
    use crate::config::Value as V;
    match &n.v {
        V::Null | V::Missing => Value::Null,
        V::Bool(b) => Value::Bool(*b),
        V::Int(i) => Value::from(*i),
        V::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        V::Str(s) => Value::String(s.clone()),
        V::List(l) => Value::Array(l.iter().map(node_json).collect()),
        V::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), node_json(v))).collect()),
    }
}

/// A number as W&B's JSON dialect writes it (bare NaN / Infinity, which serde cannot).
pub fn number_json(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        serde_json::Number::from_f64(v)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "NaN".into())
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// 8 characters of `[a-z0-9]`, as the SDK generates run ids.
fn new_run_id() -> String {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        ^ ((std::process::id() as u64).rotate_left(40))
        | 1;
    const ABC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ABC[(x % ABC.len() as u64) as usize] as char
        })
        .collect()
}

/// The history row being filled: values logged for the same step merge into one row.
struct Journal {
    writer: LogWriter,
    row_step: Option<i64>,
    row: Vec<(String, String)>,
    last_step: Option<i64>,
    started: Instant,
    /// Run time before a resume, so `_runtime` keeps growing.
    offset_s: f64,
    warned_order: bool,
    /// Writing the log failed (disk full): logging stops, training goes on.
    broken: bool,
    /// Dropped when the log is complete: the uploader (which polls the log on a timer, so
    /// logging never signals or waits for it) then drains and finishes.
    ended: Option<SyncSender<()>>,
}

impl Journal {
    fn runtime(&self) -> f64 {
        self.offset_s + self.started.elapsed().as_secs_f64()
    }

    fn flush_row(&mut self) -> Result<()> {
        let Some(step) = self.row_step.take() else {
            return Ok(());
        };
        let mut item: Vec<Item> = std::mem::take(&mut self.row)
            .into_iter()
            .map(|(k, v)| Item::new(&k, v))
            .collect();
        item.push(Item::new("_step", step.to_string()));
        item.push(Item::new("_runtime", number_json(self.runtime())));
        item.push(Item::new("_timestamp", number_json(unix_now())));
        self.writer.write(RecordType::History(HistoryRecord {
            item,
            step: Some(HistoryStep { num: step }),
        }))?;
        self.last_step = Some(step);
        Ok(())
    }

    fn log(&mut self, step: i64, key: &str, raw: String) -> Result<()> {
        if self.row_step.is_some_and(|s| step > s) {
            self.flush_row()?;
        }
        if self.row_step.is_some_and(|s| step < s) || self.last_step.is_some_and(|s| step <= s) {
            if !self.warned_order {
                warnln!("wandb: a value for step {step} came after a later step; W&B keeps steps increasing, so it is not sent");
                self.warned_order = true;
            }
            return Ok(());
        }
        self.row_step = Some(step);
        match self.row.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = raw,
            None => self.row.push((key.to_string(), raw)),
        }
        Ok(())
    }
}

/// What became of the W&B side of a run, for summary.json and the user.
pub struct Outcome {
    pub mode: Mode,
    pub run_id: String,
    pub log: PathBuf,
    pub synced: bool,
    pub url: Option<String>,
}

/// One run's W&B logger: journal on disk, uploader thread, finish.
pub struct Logger {
    settings: Settings,
    journal: Mutex<Journal>,
    run_id: String,
    log: PathBuf,
    files: PathBuf,
    run_dir: PathBuf,
    uploader: Mutex<Option<Uploader>>,
    stop: Arc<AtomicBool>,
}

/// What a resumed run continues from its previous session's log: the run id, the history
/// lines that log ends at (its start + its rows), and its last `_runtime`.
fn previous_run(log: &Path) -> Option<(String, usize, f64)> {
    let id = log_run_id(log)?;
    let start = std::fs::read_to_string(log.with_file_name(stream::STATE_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["history_start"].as_u64())
        .unwrap_or(0) as usize;
    let mut lines = 0;
    let mut runtime = 0.0f64;
    for r in records::read(log).ok()?.records {
        if let Some(RecordType::History(h)) = r.record_type {
            lines += 1;
            for it in h.item.iter().filter(|i| i.key == "_runtime") {
                runtime = runtime.max(it.value_json.parse().unwrap_or(0.0));
            }
        }
    }
    Some((id, start + lines, runtime))
}

/// `run-<id>.wandb` -> `<id>`.
pub fn log_run_id(p: &Path) -> Option<String> {
    let n = p.file_name()?.to_str()?;
    Some(n.strip_prefix("run-")?.strip_suffix(".wandb")?.to_string())
}

/// Where a run directory keeps its W&B logs (`WANDB_DIR` moves them, as in the SDK).
pub fn wandb_root(settings_dir: Option<&Path>, run_dir: &Path) -> PathBuf {
    settings_dir.unwrap_or(run_dir).join("wandb")
}

/// The uploader thread and where it sends its report when done.
type Uploader = (std::thread::JoinHandle<()>, Receiver<stream::Report>);

/// A new directory per session under `root`, even two in the same second (a quick resume):
/// `run-<stamp>-<id>` or `offline-run-<stamp>-<id>`, as the SDK names them.
fn session_dir(root: &Path, mode: Mode, run_id: &str) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S");
    let prefix = if mode == Mode::Offline {
        "offline-run"
    } else {
        "run"
    };
    let mut dir = root.join(format!("{prefix}-{stamp}-{run_id}"));
    let mut n = 1;
    while dir.exists() {
        dir = root.join(format!("{prefix}-{stamp}_{n}-{run_id}"));
        n += 1;
    }
    dir
}

/// The run record the log starts with: config, names and tags (the settings first, then
/// what the run itself is called in its sweep), host and start time.
fn run_record(settings: &Settings, config: &Value, who: &Identity, run_id: &str) -> RunRecord {
    let now = unix_now();
    let config_items = config
        .as_object()
        .map(|m| m.iter().map(|(k, v)| Item::new(k, v.to_string())).collect())
        .unwrap_or_default();
    let mut tags = settings.tags.clone();
    if tags.is_empty() {
        tags = who.tags.clone();
    }
    RunRecord {
        run_id: run_id.to_string(),
        entity: settings.entity.clone().unwrap_or_default(),
        project: settings.project.clone(),
        config: Some(ConfigRecord {
            update: config_items,
        }),
        run_group: settings
            .group
            .clone()
            .or(who.group.clone())
            .unwrap_or_default(),
        job_type: settings.job_type.clone().unwrap_or_else(|| "train".into()),
        display_name: settings
            .name
            .clone()
            .or(who.name.clone())
            .unwrap_or_default(),
        notes: settings.notes.clone().unwrap_or_default(),
        tags,
        host: hostname(),
        start_time: Some(Timestamp {
            seconds: now as i64,
            nanos: ((now.fract()) * 1e9) as i32,
        }),
    }
}

/// The first UpsertBucket, once, before training: a bad key or an unknown project stops the
/// run (unless `required=false`); an unreachable server does not wait, the uploader retries.
fn connect(
    client: &client::Client,
    settings: &Settings,
    run: &RunRecord,
    log: &Path,
) -> Result<Option<stream::Target>> {
    match stream::upsert(
        client,
        run,
        &stream::Overrides::default(),
        Some(Instant::now() + settings.timing.init.min(settings.timing.request)),
        // One attempt: a transient failure is retried by the uploader, not here.
        &|| true,
    ) {
        Ok(t) => {
            noteln!("wandb: logging to {}", t.url(&settings.base_url));
            Ok(Some(t))
        }
        Err(f @ client::Failure::Fatal { .. }) => {
            let msg = stream::explain(&f, &run.entity, &run.project);
            if settings.required {
                anyhow::bail!("W&B: {msg}. To train without W&B, set logger.wandb.required=false (rows are then kept for `ezflt sync`) or logger=none");
            }
            warnln!(
                "wandb: {msg}; logging to {} only (logger.wandb.required=false)",
                log.display()
            );
            Ok(None)
        }
        Err(f) => {
            warnln!(
                "wandb: the W&B server at {} did not answer ({}); training goes on, rows are kept in {} and sent when it answers",
                settings.base_url,
                f.message(),
                log.display()
            );
            Ok(None)
        }
    }
}

/// The thread that tails the log to the server until `wake` says the run ended; a stop from
/// the W&B UI sets `stop_training`.
fn spawn_uploader(
    client: client::Client,
    log: PathBuf,
    target: Option<stream::Target>,
    wake: std::sync::mpsc::Receiver<()>,
    stop: Arc<AtomicBool>,
    stop_training: Arc<AtomicBool>,
) -> Result<Uploader> {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("wandb-uploader".into())
        .spawn(move || {
            let stopped = move || stop.load(Ordering::SeqCst);
            let mut s =
                stream::Stream::new(client, &log, stream::Overrides::default(), target, &stopped);
            s.remote_stop.push(Box::new(move || {
                warnln!("wandb: the run was stopped from the W&B UI; stopping after this batch");
                stop_training.store(true, Ordering::SeqCst);
            }));
            let report = s.tail(&wake);
            let _ = done_tx.send(report);
        })?;
    Ok((handle, done_rx))
}

impl Logger {
    /// The W&B run id (`<entity>/<project>/runs/<id>`).
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Starts the W&B side of a run: checks the key and the project with the server (online),
    /// opens the record log, starts the uploader. `Ok(None)` when disabled.
    pub fn start(
        settings: &Settings,
        config: &Value,
        run_dir: &Path,
        who: &Identity,
        resumed_s: f64,
        previous_log: Option<&Path>,
        stop_training: Arc<AtomicBool>,
    ) -> Result<Option<Logger>> {
        let mut settings = settings.clone();
        if settings.mode == Mode::Disabled {
            return Ok(None);
        }
        settings.settle_key()?;
        let root = wandb_root(settings.dir.as_deref(), run_dir);
        // Absolute, so summary.json points at the log from anywhere.
        let root = std::path::absolute(&root).unwrap_or(root);
        // Only a resumed run continues a W&B run (WANDB_DIR may hold other runs' logs).
        let previous = previous_log.and_then(previous_run);
        let run_id = settings
            .id
            .clone()
            .or_else(|| previous.as_ref().map(|p| p.0.clone()))
            .unwrap_or_else(new_run_id);
        let same = previous.as_ref().filter(|p| p.0 == run_id);
        let history_start = same.map(|p| p.1).unwrap_or(0);
        // `_runtime` keeps growing across a resume (the last rows came after training ended).
        let resumed_s = same.map(|p| p.2.max(resumed_s)).unwrap_or(resumed_s);
        let dir = session_dir(&root, settings.mode, &run_id);
        let files = dir.join("files");
        std::fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
        std::fs::write(
            dir.join(stream::STATE_FILE),
            serde_json::json!({"run_id": run_id, "history_start": history_start}).to_string(),
        )?;
        let log = dir.join(format!("run-{run_id}.wandb"));
        let mut writer = LogWriter::create(&log)?;
        let run = run_record(&settings, config, who, &run_id);
        writer.write(RecordType::Run(run.clone()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut journal = Journal {
            writer,
            row_step: None,
            row: vec![],
            last_step: None,
            started: Instant::now(),
            offset_s: resumed_s,
            warned_order: false,
            broken: false,
            ended: None,
        };
        let mut uploader = None;
        if settings.mode == Mode::Online {
            let client = client::Client::new(
                &settings.base_url,
                settings.api_key.clone(),
                settings.timing.clone(),
            )?;
            let target = connect(&client, &settings, &run, &log)?;
            let (wake_tx, wake_rx) = std::sync::mpsc::sync_channel::<()>(1);
            uploader = Some(spawn_uploader(
                client,
                log.clone(),
                target,
                wake_rx,
                stop.clone(),
                stop_training,
            )?);
            journal.ended = Some(wake_tx);
        }
        Ok(Some(Logger {
            settings,
            journal: Mutex::new(journal),
            run_id,
            log,
            files,
            run_dir: run_dir.to_path_buf(),
            uploader: Mutex::new(uploader),
            stop,
        }))
    }

    /// Adds numbers to the row of `step` (rows are written when a later step arrives).
    pub fn log(&self, step: usize, items: &[(String, f64)]) {
        let mut j = match self.journal.lock() {
            Ok(j) => j,
            Err(p) => p.into_inner(),
        };
        if j.broken {
            return;
        }
        for (k, v) in items {
            if let Err(e) = j.log(step as i64, k, number_json(*v)) {
                // Once: a full disk must not flood the training output.
                warnln!("wandb: cannot write the W&B log, W&B logging stops here: {e:#}");
                j.broken = true;
                return;
            }
        }
    }

    /// Ends the run: `plots` (PNG files) as images, the summary, the exit code; then waits (up to
    /// `finish` timing) for the uploader. Never fails the run it describes.
    pub fn finish(&self, exit_code: i32, summary: &[(String, f64)], plots: &[PathBuf]) -> Outcome {
        if let Err(e) = self.write_end(exit_code, summary, plots) {
            warnln!("wandb: could not finish the W&B log: {e:#}");
        }
        let mut out = Outcome {
            mode: self.settings.mode,
            run_id: self.run_id.clone(),
            log: self.log.clone(),
            synced: false,
            url: None,
        };
        let sync_hint = format!("ezflt sync {}", self.run_dir.display());
        let taken = match self.uploader.lock() {
            Ok(mut u) => u.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some((handle, done)) = taken else {
            if self.settings.mode == Mode::Offline {
                noteln!(
                    "wandb: offline run saved in {}; upload it with `{sync_hint}`",
                    self.log.parent().unwrap_or(&self.log).display()
                );
            }
            return out;
        };
        let deadline = Instant::now() + self.settings.timing.finish;
        let mut first =
            done.recv_timeout(std::time::Duration::from_secs(2).min(self.settings.timing.finish));
        if first.is_err() && Instant::now() < deadline {
            noteln!(
                "wandb: uploading the rest of the run (up to {:.0} s; Ctrl-C twice leaves it for `{sync_hint}`)",
                self.settings.timing.finish.as_secs_f64()
            );
            first = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        match first {
            Ok(r) => {
                let _ = handle.join();
                out.synced = r.synced;
                out.url = r.url.clone();
                match (&r.problem, r.synced) {
                    (None, true) => {
                        if let Some(u) = &r.url {
                            noteln!("wandb: run synced: {u}");
                        }
                    }
                    (p, _) => warnln!(
                        "wandb: the run is not fully uploaded ({}); everything is kept in {}: upload it with `{sync_hint}`",
                        p.clone().unwrap_or_else(|| "unknown reason".into()),
                        self.log.display()
                    ),
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => warnln!(
                "wandb: the upload stopped unexpectedly; everything is kept in {}: upload it with `{sync_hint}`",
                self.log.display()
            ),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                self.stop.store(true, Ordering::SeqCst);
                warnln!(
                    "wandb: the upload did not finish within logger.wandb.finish_timeout_s ({:.0} s); everything is kept in {}: upload it with `{sync_hint}`",
                    self.settings.timing.finish.as_secs_f64(),
                    self.log.display()
                );
            }
        }
        out
    }

    fn write_end(
        &self,
        exit_code: i32,
        summary: &[(String, f64)],
        plots: &[PathBuf],
    ) -> Result<()> {
        let mut j = match self.journal.lock() {
            Ok(j) => j,
            Err(p) => p.into_inner(),
        };
        if self.settings.upload_plots {
            // Images join the open row (the last step), or a new one after it.
            let step = match (j.row_step, j.last_step) {
                (Some(s), _) => s,
                (None, Some(last)) => last + 1,
                (None, None) => 0,
            };
            let mut media = vec![];
            for p in plots {
                let Ok(bytes) = std::fs::read(p) else {
                    continue;
                };
                let sha = format!("{:x}", sha2::Sha256::digest(&bytes));
                let stem = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                let rel = format!("media/images/plots/{stem}_{step}_{}.png", &sha[..20]);
                let dest = self.files.join(&rel);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&dest, &bytes)?;
                let (w, h) = png_size(&bytes).unwrap_or((0, 0));
                let value = serde_json::json!({"_type": "image-file", "path": rel, "sha256": sha,
                    "size": bytes.len(), "width": w, "height": h, "format": "png"});
                j.log(step, &format!("plots/{stem}"), value.to_string())?;
                media.push(FilesItem {
                    path: rel,
                    policy: 0,
                    r#type: records::FILE_TYPE_MEDIA,
                });
            }
            if !media.is_empty() {
                j.writer
                    .write(RecordType::Files(FilesRecord { files: media }))?;
            }
        }
        j.flush_row()?;
        if !summary.is_empty() {
            j.writer.write(RecordType::Summary(SummaryRecord {
                update: summary
                    .iter()
                    .map(|(k, v)| Item::new(k, number_json(*v)))
                    .collect(),
            }))?;
        }
        let runtime = j.runtime() as i32;
        j.writer
            .write(RecordType::Exit(RunExitRecord { exit_code, runtime }))?;
        j.ended = None;
        Ok(())
    }
}

/// Width and height from a PNG's IHDR.
fn png_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.len() < 24 || &b[..8] != b"\x89PNG\r\n\x1a\n" {
        return None;
    }
    let w = u32::from_be_bytes(b[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(b[20..24].try_into().ok()?);
    Some((w, h))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_wandb_json() {
        assert_eq!(number_json(f64::NAN), "NaN");
        assert_eq!(number_json(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(number_json(3.0), "3");
        assert_eq!(number_json(0.25), "0.25");
    }

    #[test]
    fn run_ids_look_like_the_sdks() {
        let id = new_run_id();
        assert_eq!(id.len(), 8);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn rows_merge_per_step_and_never_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run-x.wandb");
        let mut j = Journal {
            writer: LogWriter::create(&log).unwrap(),
            row_step: None,
            row: vec![],
            last_step: None,
            started: Instant::now(),
            offset_s: 0.0,
            warned_order: false,
            broken: false,
            ended: None,
        };
        j.log(1, "a", "1".into()).unwrap();
        j.log(1, "b", "2".into()).unwrap();
        j.log(2, "a", "3".into()).unwrap();
        j.log(1, "a", "4".into()).unwrap(); // dropped: step 1 is written
        j.flush_row().unwrap();
        let steps: Vec<Vec<String>> = records::read(&log)
            .unwrap()
            .records
            .into_iter()
            .filter_map(|r| match r.record_type {
                Some(RecordType::History(h)) => {
                    Some(h.item.iter().map(|i| i.key.clone()).collect())
                }
                _ => None,
            })
            .collect();
        assert_eq!(steps.len(), 2);
        assert_eq!(&steps[0][..3], ["a", "b", "_step"]);
        assert_eq!(&steps[1][..2], ["a", "_step"]);
    }
}
