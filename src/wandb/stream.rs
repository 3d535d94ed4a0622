//! Replays a run's record log to the W&B API: UpsertBucket, paced file_stream posts with
//! contiguous offsets, media uploads, the final `complete`. Tails a growing log (online runs)
//! or reads a finished one (`ezflt sync`); the log on disk is the only queue.

use super::client::{Client, Failure, Kind, CREATE_RUN_FILES, UPSERT_BUCKET};
use super::records::{self, Damage, RecordType, RunRecord};
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A file_stream post stays well under the server's 10 MiB limit.
const MAX_POST_BYTES: usize = 4 << 20;
const MAX_POST_LINES: usize = 10_000;
/// How much of the log one poll reads.
const MAX_READ: usize = 8 << 20;

/// Sidecar next to the log: where this log's history starts in the W&B run (a resumed run's
/// second log continues the first).
pub const STATE_FILE: &str = "ezflt-wandb.json";

/// The run on the server, as the first successful UpsertBucket named it.
#[derive(Clone, Debug)]
pub struct Target {
    pub entity: String,
    pub project: String,
    pub name: String,
    /// The server's opaque id (UpsertBucket's `id` on later updates; kept for them).
    #[allow(dead_code)]
    pub storage_id: Option<String>,
    /// History lines the server already holds for this run.
    pub history_lines: usize,
}

impl Target {
    /// The run's page: the app lives on the API host without its `api.` prefix.
    pub fn url(&self, base: &str) -> String {
        let app = base.replace("://api.", "://");
        format!("{app}/{}/{}/runs/{}", self.entity, self.project, self.name)
    }
}

/// What `ezflt sync` may change about the recorded run.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub entity: Option<String>,
    pub project: Option<String>,
}

fn nonempty(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::String(s.to_string())
    }
}

/// `{"key": {"value": <json>}, ...}` as a JSON string: the config encoding the W&B UI turns
/// into columns (spec §3).
pub fn config_json(run: &RunRecord) -> String {
    let items = run.config.iter().flat_map(|c| &c.update);
    raw_object(items.map(|it| (it.name(), format!("{{\"value\":{}}}", it.value_json))))
}

/// `{"key": <value>, ...}` from values that are already JSON text (W&B's dialect, bare NaN
/// included), so they are passed through, not re-encoded.
/// History or summary items as top-level `(key, raw JSON)` pairs. Plain keys keep their
/// value's text as written; nested keys (`["plots/curves", "path"]`, as the official client
/// writes media) are gathered into one object per top-level key, as `wandb sync` sends them.
fn top_level(items: Vec<records::Item>) -> Vec<(String, String)> {
    let mut out: Vec<(String, Option<String>)> = vec![];
    let mut nested: Vec<(String, Value)> = vec![];
    for it in items {
        match it.nested_key.split_first() {
            Some((first, rest)) if it.key.is_empty() && !rest.is_empty() => {
                let v = serde_json::from_str(&it.value_json).unwrap_or(Value::Null);
                if !nested.iter().any(|(k, _)| k == first) {
                    nested.push((first.clone(), json!({})));
                    out.push((first.clone(), None));
                }
                let slot = &mut nested.iter_mut().find(|(k, _)| k == first).unwrap().1;
                let mut cur = slot;
                for (i, k) in rest.iter().enumerate() {
                    if !cur.is_object() {
                        *cur = json!({});
                    }
                    let map = cur.as_object_mut().unwrap();
                    if i + 1 == rest.len() {
                        map.insert(k.clone(), v.clone());
                        break;
                    }
                    cur = map.entry(k.clone()).or_insert_with(|| json!({}));
                }
            }
            _ => out.push((it.name(), Some(it.value_json))),
        }
    }
    out.into_iter()
        .map(|(k, v)| {
            let v = v.unwrap_or_else(|| {
                nested
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map_or_else(String::new, |(_, v)| v.to_string())
            });
            (k, v)
        })
        .collect()
}

fn raw_object(pairs: impl IntoIterator<Item = (String, String)>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k).to_string());
        out.push(':');
        out.push_str(&v);
    }
    out.push('}');
    out
}

/// UpsertBucket for the run record (entity/project possibly overridden); returns the target.
pub fn upsert(
    client: &Client,
    run: &RunRecord,
    ov: &Overrides,
    deadline: Option<Instant>,
    stop: &dyn Fn() -> bool,
) -> Result<Target, Failure> {
    let entity = ov.entity.clone().unwrap_or_else(|| run.entity.clone());
    let project = ov.project.clone().unwrap_or_else(|| run.project.clone());
    let vars = json!({
        "id": null,
        "name": run.run_id,
        "project": nonempty(&project),
        "entity": nonempty(&entity),
        "groupName": nonempty(&run.run_group),
        "displayName": nonempty(&run.display_name),
        "notes": nonempty(&run.notes),
        "config": config_json(run),
        "host": nonempty(&run.host),
        "program": "ezflt",
        "jobType": nonempty(&run.job_type),
        "tags": if run.tags.is_empty() { Value::Null } else { json!(run.tags) },
    });
    let data = client.graphql(
        Kind::Upsert,
        "UpsertBucket",
        UPSERT_BUCKET,
        vars,
        deadline,
        stop,
    )?;
    let b = &data["upsertBucket"]["bucket"];
    let s = |v: &Value| v.as_str().map(String::from);
    match (s(&b["project"]["entity"]["name"]), s(&b["project"]["name"])) {
        (Some(entity), Some(project)) => Ok(Target {
            entity,
            project,
            name: s(&b["name"]).unwrap_or_else(|| run.run_id.clone()),
            storage_id: s(&b["id"]),
            history_lines: b["historyLineCount"].as_u64().unwrap_or(0) as usize,
        }),
        _ => Err(Failure::Fatal {
            status: None,
            message:
                "W&B UpsertBucket: the server's answer has no run (upsertBucket.bucket is empty)"
                    .into(),
        }),
    }
}

/// A one-line explanation of a fatal upsert, with what to try.
pub fn explain(f: &Failure, entity: &str, project: &str) -> String {
    let hint = match f {
        Failure::Fatal {
            status: Some(401), ..
        } => "the API key was rejected: check WANDB_API_KEY (or ~/.netrc); get a key at https://wandb.ai/authorize",
        Failure::Fatal {
            status: Some(403), ..
        } => "the key may not write there: check logger.wandb.entity / WANDB_ENTITY and the key's team membership",
        Failure::Fatal {
            status: Some(404), ..
        }
        | Failure::Fatal { status: None, .. } => {
            "check that the entity and project exist (logger.wandb.entity / logger.wandb.project, or WANDB_ENTITY / WANDB_PROJECT)"
        }
        _ => "the server could not be reached; rows stay in the run's W&B log for `ezflt sync`",
    };
    let ent = if entity.is_empty() {
        "<default entity>"
    } else {
        entity
    };
    format!(
        "{} (entity '{ent}', project '{project}'): {hint}",
        f.message()
    )
}

/// How a replay ended.
#[derive(Debug)]
pub struct Report {
    /// The server accepted `complete` and every file: the log is marked synced.
    pub synced: bool,
    pub rows_sent: usize,
    pub exit_code: Option<i32>,
    pub url: Option<String>,
    pub problem: Option<String>,
}

/// The log-to-server engine. `stop()` ends it early (leaving the rest for `ezflt sync`).
pub struct Stream<'a> {
    client: Client,
    log: PathBuf,
    files_dir: PathBuf,
    ov: Overrides,
    target: Option<Target>,
    run: Option<RunRecord>,
    read_pos: usize,
    /// Bytes after `read_pos` read but not yet a complete record.
    unread: Vec<u8>,
    /// History lines of this log before `offset` (already on the server) are skipped.
    history_start: usize,
    seen: usize,
    offset: usize,
    pending: Vec<String>,
    pending_bytes: usize,
    summary: Map<String, Value>,
    /// Raw JSON of summary values (NaN stays `NaN`), in first-seen order.
    summary_raw: Vec<(String, String)>,
    summary_dirty: bool,
    media: Vec<String>,
    uploaded: Vec<String>,
    exit: Option<(i32, i32)>,
    damaged: Option<Damage>,
    last_post: Option<Instant>,
    pub rows_sent: usize,
    fatal: Option<String>,
    stop: &'a dyn Fn() -> bool,
    /// Called (once) when the server answers `"stopped": true`.
    pub remote_stop: Vec<Box<dyn FnOnce() + Send>>,
}

impl<'a> Stream<'a> {
    pub fn new(
        client: Client,
        log: &Path,
        ov: Overrides,
        target: Option<Target>,
        stop: &'a dyn Fn() -> bool,
    ) -> Stream<'a> {
        let dir = log.parent().unwrap_or(Path::new(".")).to_path_buf();
        let history_start = std::fs::read_to_string(dir.join(STATE_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["history_start"].as_u64())
            .unwrap_or(0) as usize;
        let mut s = Stream {
            client,
            log: log.to_path_buf(),
            files_dir: dir.join("files"),
            ov,
            target: None,
            run: None,
            read_pos: 0,
            unread: vec![],
            history_start,
            seen: 0,
            offset: history_start,
            pending: vec![],
            pending_bytes: 0,
            summary: Map::new(),
            summary_raw: vec![],
            summary_dirty: false,
            media: vec![],
            uploaded: vec![],
            exit: None,
            damaged: None,
            last_post: None,
            rows_sent: 0,
            fatal: None,
            stop,
            remote_stop: vec![],
        };
        if let Some(t) = target {
            s.set_target(t);
        }
        s
    }

    fn set_target(&mut self, t: Target) {
        self.offset = self.history_start.max(t.history_lines);
        self.target = Some(t);
    }

    /// Reads records appended since the last call, a bounded amount at a time and none while
    /// enough lines wait (a long outage stays on disk, not in memory). Returns whether it read
    /// any bytes.
    fn poll(&mut self) -> Result<bool> {
        if self.pending_bytes >= 2 * MAX_POST_BYTES {
            return Ok(false);
        }
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&self.log)
            .with_context(|| format!("reading {}", self.log.display()))?;
        if self.read_pos == 0 {
            let mut head = [0u8; records::FILE_HEADER.len()];
            if f.read_exact(&mut head).is_err() {
                return Ok(false);
            }
            if head != records::FILE_HEADER {
                anyhow::bail!("{}: not a W&B record log", self.log.display());
            }
            self.read_pos = head.len();
            self.unread.clear();
        }
        // Only the bytes appended since the last call are read.
        f.seek(SeekFrom::Start((self.read_pos + self.unread.len()) as u64))?;
        let before = self.unread.len();
        f.take(MAX_READ as u64).read_to_end(&mut self.unread)?;
        let read = self.unread.len() > before;
        let parsed = records::parse_tail(&self.unread, self.read_pos);
        self.unread.drain(..parsed.end - self.read_pos);
        self.read_pos = parsed.end;
        self.damaged = parsed.damage;
        for r in parsed.records {
            match r.record_type {
                Some(RecordType::Run(run)) if self.run.is_none() => self.run = Some(run),
                Some(RecordType::History(h)) => {
                    let pairs = top_level(h.item);
                    for (k, v) in &pairs {
                        self.note_summary(k.clone(), v);
                    }
                    let line = raw_object(pairs);
                    self.seen += 1;
                    // Lines the server already holds (a resumed upload) are not sent again.
                    if self.history_start + self.seen > self.offset + self.pending.len() {
                        self.pending_bytes += line.len();
                        self.pending.push(line);
                    }
                }
                Some(RecordType::Summary(s)) => {
                    for (k, v) in top_level(s.update) {
                        self.note_summary(k, &v);
                    }
                }
                Some(RecordType::Files(f)) => {
                    for it in f.files {
                        if !self.media.contains(&it.path) {
                            self.media.push(it.path);
                        }
                    }
                }
                Some(RecordType::Exit(e)) => self.exit = Some((e.exit_code, e.runtime)),
                // Later run records (config updates) and records ezflt does not use.
                _ => {}
            }
        }
        Ok(read)
    }

    fn note_summary(&mut self, key: String, raw: &str) {
        self.summary_dirty = true;
        if let Ok(v) = serde_json::from_str::<Value>(raw) {
            self.summary.insert(key.clone(), v);
        }
        match self.summary_raw.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = raw.to_string(),
            None => self.summary_raw.push((key, raw.to_string())),
        }
    }

    fn summary_line(&self, runtime: Option<i32>) -> String {
        let wandb = runtime.map(|rt| ("_wandb".to_string(), format!("{{\"runtime\":{rt}}}")));
        raw_object(self.summary_raw.iter().cloned().chain(wandb))
    }

    fn path(&self) -> Option<String> {
        self.target
            .as_ref()
            .map(|t| format!("{}/{}/{}", t.entity, t.project, t.name))
    }

    /// UpsertBucket if not done yet. Fatal errors end the stream.
    fn ensure_target(&mut self, deadline: Option<Instant>) -> bool {
        if self.target.is_some() {
            return true;
        }
        let Some(run) = self.run.clone() else {
            return false;
        };
        match upsert(&self.client, &run, &self.ov, deadline, self.stop) {
            Ok(t) => {
                self.set_target(t);
                // Lines read before the target was known may already be on the server.
                let skip = self.offset.saturating_sub(self.history_start);
                let drop = skip.min(self.pending.len());
                let gone: usize = self.pending.drain(..drop).map(|l| l.len()).sum();
                self.pending_bytes -= gone;
                true
            }
            Err(f) => {
                if matches!(f, Failure::Fatal { .. }) {
                    self.fatal = Some(explain(&f, &run.entity, &run.project));
                }
                false
            }
        }
    }

    /// One file_stream post with up to the size limit of pending lines (+ summary, uploaded,
    /// and the completion when `complete` is given and nothing else remains).
    fn post(&mut self, complete: Option<i32>, deadline: Option<Instant>) -> bool {
        let Some(path) = self.path() else {
            return false;
        };
        let mut n = 0;
        let mut bytes = 0;
        while n < self.pending.len() && n < MAX_POST_LINES {
            if n > 0 && bytes + self.pending[n].len() > MAX_POST_BYTES {
                break;
            }
            bytes += self.pending[n].len();
            n += 1;
        }
        let mut files = Map::new();
        if n > 0 {
            files.insert(
                "wandb-history.jsonl".into(),
                json!({"offset": self.offset, "content": self.pending[..n]}),
            );
        }
        let last = n == self.pending.len();
        let runtime = complete.and(self.exit.map(|e| e.1));
        if self.summary_dirty && last {
            files.insert(
                "wandb-summary.json".into(),
                json!({"offset": 0, "content": [self.summary_line(runtime)]}),
            );
        }
        let mut body = Map::new();
        if !files.is_empty() {
            body.insert("files".into(), Value::Object(files));
        }
        if !self.uploaded.is_empty() {
            body.insert("uploaded".into(), json!(self.uploaded));
        }
        if let Some(code) = complete.filter(|_| last) {
            body.insert("complete".into(), json!(true));
            body.insert("exitcode".into(), json!(code));
        }
        match self
            .client
            .file_stream(&path, &Value::Object(body), deadline, self.stop)
        {
            Ok(answer) => {
                if answer["stopped"] == true && !self.remote_stop.is_empty() {
                    // Stop pressed in the W&B UI: ask training to end, once.
                    if let Some(f) = self.remote_stop.pop() {
                        f();
                    }
                }
                self.offset += n;
                self.rows_sent += n;
                let gone: usize = self.pending.drain(..n).map(|l| l.len()).sum();
                self.pending_bytes -= gone;
                if last {
                    self.summary_dirty = false;
                }
                self.uploaded.clear();
                self.last_post = Some(Instant::now());
                true
            }
            Err(f) => {
                if matches!(f, Failure::Fatal { .. }) {
                    self.fatal = Some(format!(
                        "{}; the rest of this run stays in {} for `ezflt sync`",
                        f.message(),
                        self.log.display()
                    ));
                }
                false
            }
        }
    }

    /// Writes `config.yaml` and `wandb-summary.json` (as the SDK uploads them), then uploads
    /// them and every media file. Returns false if any upload failed.
    fn upload_files(&mut self, deadline: Option<Instant>) -> bool {
        let Some(t) = self.target.clone() else {
            return false;
        };
        let _ = std::fs::create_dir_all(&self.files_dir);
        // JSON is valid YAML; the shape is the SDK's {key: {value: ...}}.
        let cfg = self.run.as_ref().map(config_json).unwrap_or("{}".into());
        let runtime = self.exit.map(|e| e.1);
        let wrote = std::fs::write(self.files_dir.join("config.yaml"), cfg + "\n").is_ok()
            && std::fs::write(
                self.files_dir.join("wandb-summary.json"),
                self.summary_line(runtime) + "\n",
            )
            .is_ok();
        let mut names: Vec<String> = vec![];
        if wrote {
            names.push("config.yaml".into());
            names.push("wandb-summary.json".into());
        }
        names.extend(self.media.iter().cloned());
        let data = match self.client.graphql(
            Kind::Graphql,
            "CreateRunFiles",
            CREATE_RUN_FILES,
            json!({"entity": t.entity, "project": t.project, "run": t.name, "files": names}),
            deadline,
            self.stop,
        ) {
            Ok(d) => d,
            Err(f) => {
                warnln!("wandb: {}", f.message());
                return false;
            }
        };
        let headers: Vec<(String, String)> = data["createRunFiles"]["uploadHeaders"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str())
                    .filter_map(|h| h.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let mut ok = true;
        for f in data["createRunFiles"]["files"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let (Some(name), Some(url)) = (f["name"].as_str(), f["uploadUrl"].as_str()) else {
                continue;
            };
            let bytes = match std::fs::read(self.files_dir.join(name)) {
                Ok(b) => b,
                Err(e) => {
                    warnln!("wandb: cannot read {name} for upload: {e}");
                    ok = false;
                    continue;
                }
            };
            match self.client.put(url, &headers, &bytes, deadline, self.stop) {
                Ok(()) => self.uploaded.push(name.to_string()),
                Err(f) => {
                    warnln!("wandb: {}", f.message());
                    ok = false;
                }
            }
        }
        ok
    }

    /// Online: follow the log as training appends to it, reading it at most every 200 ms;
    /// `wake` closes when the run ended. Returns at the Exit record or on stop.
    pub fn tail(&mut self, wake: &std::sync::mpsc::Receiver<()>) -> Report {
        let timing = self.client.timing.clone();
        let started = Instant::now();
        loop {
            if (self.stop)() {
                return self.report(false, Some("stopped before the upload finished".into()));
            }
            // Lines already wait for the next post: new ones can be read when it is due.
            let waiting = !self.pending.is_empty()
                && self.last_post.is_some_and(|t| t.elapsed() < timing.pacing);
            if !waiting {
                if let Err(e) = self.poll() {
                    return self.report(false, Some(format!("{e:#}")));
                }
            }
            if self.fatal.is_some() {
                return self.report(false, None);
            }
            if self.exit.is_some() {
                return self.drain(None);
            }
            if self.ensure_target(None) {
                let since = self.last_post.map(|t| t.elapsed());
                let due = since.is_none_or(|s| s >= timing.pacing);
                // Silence counts from the last post, or from the start when none was made.
                let quiet = since.unwrap_or_else(|| started.elapsed());
                if due && (!self.pending.is_empty() || self.summary_dirty) {
                    self.post(None, None);
                } else if quiet >= timing.heartbeat {
                    // Heartbeat: an empty post keeps the run from being marked crashed.
                    self.post(None, None);
                }
            }
            if self.fatal.is_some() {
                return self.report(false, None);
            }
            let wait = timing
                .pacing
                .min(timing.heartbeat)
                .min(Duration::from_millis(200));
            match wake.recv_timeout(wait) {
                Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    // The run ended: read what is left and finish with whatever it says.
                    let _ = self.poll();
                    return self.drain(None);
                }
            }
        }
    }

    /// `ezflt sync`: read the whole log and deliver it.
    pub fn replay(&mut self, deadline: Option<Instant>) -> Report {
        // The run record comes first; the rest is read as it is sent.
        if let Err(e) = self.poll() {
            return self.report(false, Some(format!("{e:#}")));
        }
        self.drain(deadline)
    }

    /// Sends every remaining line, uploads files, and completes the run.
    fn drain(&mut self, deadline: Option<Instant>) -> Report {
        if self.run.is_none() {
            return self.report(false, Some("the log has no run record".into()));
        }
        if !self.ensure_target(deadline) {
            return self.unreached();
        }
        // As wandb-core at finish: flush the lines at once, upload the files, then complete.
        loop {
            let read = match self.poll() {
                Ok(r) => r,
                Err(e) => return self.report(false, Some(format!("{e:#}"))),
            };
            if self.pending.is_empty() {
                if !read {
                    break;
                }
            } else if !self.post(None, deadline) {
                return self.unreached();
            }
        }
        let files_ok = self.upload_files(deadline);
        // No Exit record (a crash, or a damaged log): the run failed, as `wandb sync` reports it.
        let code = self.exit.map(|e| e.0).unwrap_or(1);
        self.summary_dirty = true;
        if !self.post(Some(code), deadline) {
            return self.unreached();
        }
        let damage = self.damaged.clone().map(|d| match d {
            Damage::Truncated => "the log ends with an incomplete record".to_string(),
            Damage::Corrupt(at) => format!("the log is damaged at byte {at}"),
        });
        let synced = files_ok && damage.is_none() && self.exit.is_some();
        if synced {
            let mut marker = self.log.clone().into_os_string();
            marker.push(".synced");
            let _ = std::fs::write(PathBuf::from(marker), "");
        }
        let problem = if !files_ok {
            Some("some files could not be uploaded".into())
        } else {
            damage.or_else(|| {
                self.exit
                    .is_none()
                    .then(|| "the log has no exit record (the run was cut short)".into())
            })
        };
        self.report(synced, problem)
    }

    /// Gave up: the fatal error if there was one, else the server did not answer in time.
    fn unreached(&self) -> Report {
        let why = self
            .fatal
            .clone()
            .unwrap_or_else(|| "the server could not be reached".into());
        self.report(false, Some(why))
    }

    fn report(&self, synced: bool, problem: Option<String>) -> Report {
        Report {
            synced,
            rows_sent: self.rows_sent,
            exit_code: self.exit.map(|e| e.0),
            url: self.target.as_ref().map(|t| t.url(self.client.base())),
            problem: problem.or_else(|| self.fatal.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wandb::records::{LogWriter, RunExitRecord, RunRecord};
    use crate::wandb::settings::Timing;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};

    /// Answers every request with 200 and keeps the file_stream bodies.
    fn server() -> (String, Arc<Mutex<Vec<Value>>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(vec![]));
        let b2 = bodies.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                if line.contains("file_stream") {
                    b2.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                }
                let answer = br#"{"data":{}}"#;
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = w.write_all(answer);
            }
        });
        (url, bodies)
    }

    #[test]
    fn an_idle_run_sends_heartbeats_and_completes() {
        let (url, bodies) = server();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run-abc.wandb");
        let mut w = LogWriter::create(&log).unwrap();
        w.write(RecordType::Run(RunRecord {
            run_id: "abc".into(),
            project: "p".into(),
            ..Default::default()
        }))
        .unwrap();
        let timing = Timing {
            pacing: Duration::from_millis(10),
            heartbeat: Duration::from_millis(50),
            ..Default::default()
        };
        let client = Client::new(&url, None, timing).unwrap();
        let target = Target {
            entity: "e".into(),
            project: "p".into(),
            name: "abc".into(),
            storage_id: None,
            history_lines: 0,
        };
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let log2 = log.clone();
        let t = std::thread::spawn(move || {
            let never = || false;
            let mut s = Stream::new(client, &log2, Overrides::default(), Some(target), &never);
            s.tail(&rx)
        });
        // Idle long enough for several heartbeats, then end the run.
        std::thread::sleep(Duration::from_millis(600));
        w.write(RecordType::Exit(RunExitRecord {
            exit_code: 0,
            runtime: 1,
        }))
        .unwrap();
        drop(tx);
        let report = t.join().unwrap();
        assert!(report.problem.is_none(), "{:?}", report.problem);
        let bodies = bodies.lock().unwrap();
        let beats = bodies.iter().filter(|b| *b == &json!({})).count();
        assert!(beats >= 2, "heartbeats: {beats} in {bodies:?}");
        assert_eq!(bodies.last().unwrap()["complete"], true);
    }
}
