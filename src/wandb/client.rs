//! HTTP to the W&B API with wandb-core's retry rules (spec §2, §7): Basic auth only on the
//! API host, exponential backoff with jitter, `Retry-After` honoured, fatal statuses not retried.

use super::settings::{ApiKey, Timing};
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why a request did not succeed.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Retrying will not help (bad key, unknown project, malformed request).
    Fatal {
        status: Option<u16>,
        message: String,
    },
    /// Still failing when the deadline, the retry budget or a stop request came.
    GaveUp(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::Fatal { message, .. } | Failure::GaveUp(message) => message,
        }
    }
}

/// One attempt's result, before the retry loop decides.
enum Attempt<T> {
    Done(T),
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Fatal {
        status: Option<u16>,
        message: String,
    },
}

/// Which requests a retry loop is for (their non-retried statuses differ).
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Graphql,
    /// UpsertBucket also retries 409 (a concurrent update).
    Upsert,
    FileStream,
    Upload,
}

fn fatal_status(kind: Kind, status: u16) -> bool {
    match kind {
        Kind::Upload => (400..500).contains(&status) && status != 429 || status == 501,
        Kind::Upsert => matches!(status, 400 | 401 | 403 | 404 | 410 | 413 | 422 | 501),
        Kind::Graphql | Kind::FileStream => {
            matches!(status, 400 | 401 | 403 | 404 | 409 | 410 | 413 | 422 | 501)
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let now = chrono::Utc::now();
    Some(
        (when.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// An error and its sources on one line ("error sending request: ...: Connection refused").
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

pub struct Client {
    http: reqwest::blocking::Client,
    base: String,
    key: Option<ApiKey>,
    pub timing: Timing,
    jitter: std::cell::Cell<u64>,
}

impl Client {
    pub fn new(base: &str, key: Option<ApiKey>, timing: Timing) -> anyhow::Result<Client> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timing.request)
            .connect_timeout(timing.request.min(Duration::from_secs(10)))
            .user_agent(concat!("ezflt/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ ((std::process::id() as u64) << 32);
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
            timing,
            jitter: std::cell::Cell::new(seed | 1),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A uniform number in [0, 1) for backoff jitter (xorshift; quality is not the point).
    fn unit(&self) -> f64 {
        let mut x = self.jitter.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// wandb-core's wait before retry `n`: min(max, min * 2^n * (1 + 0.25 U)).
    pub fn backoff(&self, n: u32) -> Duration {
        let t = &self.timing;
        let w =
            t.retry_min.as_secs_f64() * 2f64.powi(n.min(30) as i32) * (1.0 + 0.25 * self.unit());
        Duration::from_secs_f64(w.min(t.retry_max.as_secs_f64()))
    }

    fn authed(&self, rb: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match &self.key {
            Some(k) => rb.basic_auth("api", Some(k.expose())),
            None => rb,
        }
    }

    /// Runs `attempt` until it succeeds, fails fatally, or retrying must stop (retry budget,
    /// `deadline`, or `stop()`); sleeps in short slices so a stop request is seen quickly.
    fn retrying<T>(
        &self,
        retries: Option<u32>,
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
        mut attempt: impl FnMut() -> Attempt<T>,
    ) -> Result<T, Failure> {
        let mut n = 0u32;
        loop {
            match attempt() {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fatal { status, message } => {
                    return Err(Failure::Fatal { status, message })
                }
                Attempt::Retry { why, after } => {
                    if retries.is_some_and(|r| n >= r) {
                        return Err(Failure::GaveUp(format!(
                            "{why} (gave up after {n} retries)"
                        )));
                    }
                    let wait = after.unwrap_or_else(|| self.backoff(n));
                    let until = Instant::now() + wait;
                    if deadline.is_some_and(|d| until > d) {
                        return Err(Failure::GaveUp(why));
                    }
                    while Instant::now() < until {
                        if stop() {
                            return Err(Failure::GaveUp(why));
                        }
                        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(20)));
                    }
                    n += 1;
                }
            }
        }
    }

    fn classify(
        kind: Kind,
        what: &str,
        r: reqwest::Result<reqwest::blocking::Response>,
    ) -> Attempt<(u16, Vec<u8>)> {
        let resp = match r {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    why: format!("{what}: {}", causes(&e.without_url())),
                    after: None,
                }
            }
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let body = match resp.bytes() {
            Ok(b) => b.to_vec(),
            Err(e) => {
                return Attempt::Retry {
                    why: format!("{what}: reading the response: {}", e.without_url()),
                    after,
                }
            }
        };
        if (200..300).contains(&status) {
            return Attempt::Done((status, body));
        }
        let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        if fatal_status(kind, status) {
            Attempt::Fatal {
                status: Some(status),
                message: format!("{what}: HTTP {status} {}", text.trim()),
            }
        } else {
            Attempt::Retry {
                why: format!("{what}: HTTP {status}"),
                after,
            }
        }
    }

    /// `POST {base}/graphql`; a 200 with `errors` is fatal (the server understood and refused).
    pub fn graphql(
        &self,
        kind: Kind,
        operation: &str,
        query: &str,
        variables: Value,
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Value, Failure> {
        let body = json!({"query": query, "variables": variables, "operationName": operation});
        let url = format!("{}/graphql", self.base);
        let what = format!("W&B {operation}");
        let (_, bytes) = self.retrying(Some(self.timing.retries), deadline, stop, || {
            let r = self
                .authed(self.http.post(&url))
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send();
            Self::classify(kind, &what, r)
        })?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| Failure::Fatal {
            status: None,
            message: format!("{what}: the server's answer is not JSON ({e})"),
        })?;
        let errors: Vec<String> = v
            .get("errors")
            .and_then(|e| e.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("message").and_then(|m| m.as_str()))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(Failure::Fatal {
                status: None,
                message: format!("{what}: {}", errors.join("; ")),
            });
        }
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    }

    /// One file_stream post of `body`, retried as is until accepted.
    pub fn file_stream(
        &self,
        path: &str,
        body: &Value,
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
    ) -> Result<Value, Failure> {
        let url = format!("{}/files/{path}/file_stream", self.base);
        let text = body.to_string();
        let (_, bytes) = self.retrying(None, deadline, stop, || {
            let r = self
                .authed(self.http.post(&url))
                .header("Content-Type", "application/json")
                .body(text.clone())
                .send();
            Self::classify(Kind::FileStream, "W&B file_stream", r)
        })?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// `PUT` to a pre-signed upload URL: never with the API key, only the server's headers.
    pub fn put(
        &self,
        url: &str,
        headers: &[(String, String)],
        bytes: &[u8],
        deadline: Option<Instant>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), Failure> {
        let what = format!(
            "W&B upload of {}",
            url.split('?')
                .next()
                .unwrap_or(url)
                .rsplit('/')
                .next()
                .unwrap_or("")
        );
        self.retrying(Some(self.timing.retries), deadline, stop, || {
            let mut rb = self.http.put(url).body(bytes.to_vec());
            for (k, v) in headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            Self::classify(Kind::Upload, &what, rb.send())
        })
        .map(|_| ())
    }
}

/// The UpsertBucket document (our reduced form of the SDK's, spec §3).
pub const UPSERT_BUCKET: &str = "mutation UpsertBucket($id: String, $name: String, $project: String, $entity: String, \
$groupName: String, $displayName: String, $notes: String, $config: JSONString, $host: String, $program: String, \
$jobType: String, $tags: [String!]) { upsertBucket(input: {id: $id, name: $name, modelName: $project, \
entityName: $entity, groupName: $groupName, displayName: $displayName, notes: $notes, config: $config, host: $host, \
jobProgram: $program, jobType: $jobType, tags: $tags}) { bucket { id name displayName sweepName historyLineCount \
project { id name entity { id name } } } inserted } }";

pub const CREATE_RUN_FILES: &str = "mutation CreateRunFiles($entity: String!, $project: String!, $run: String!, \
$files: [String!]!) { createRunFiles(input: {entityName: $entity, projectName: $project, runName: $run, \
files: $files}) { runID uploadHeaders files { name uploadUrl } } }";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let t = Timing {
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_millis(1000),
            ..Default::default()
        };
        let c = Client::new("http://127.0.0.1:9", None, t).unwrap();
        for n in 0..3 {
            let w = c.backoff(n).as_secs_f64();
            let base = 0.1 * 2f64.powi(n as i32);
            assert!(w >= base && w <= base * 1.25, "{n}: {w}");
        }
        assert_eq!(c.backoff(10), Duration::from_millis(1000));
    }

    #[test]
    fn statuses_that_are_not_retried() {
        assert!(fatal_status(Kind::Graphql, 401));
        assert!(fatal_status(Kind::Graphql, 409));
        assert!(!fatal_status(Kind::Upsert, 409));
        assert!(!fatal_status(Kind::FileStream, 429));
        assert!(!fatal_status(Kind::FileStream, 503));
        assert!(fatal_status(Kind::Upload, 403));
        assert!(!fatal_status(Kind::Upload, 500));
    }
}
