//! A local stand-in for the W&B API on 127.0.0.1 (the endpoints the official client uses):
//! GraphQL (UpsertBucket, CreateRunFiles, Viewer...), file_stream, uploads on a second port.
//! Records every request, rebuilds each run's files by offset, and injects faults on demand.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub enum Action {
    Status(u16),
    /// 429 (or any status) with a Retry-After header, in seconds.
    RetryAfter(u16, u64),
    /// Answer normally, but only after this long.
    Delay(Duration),
    /// Close the connection without answering.
    Close,
    /// file_stream answers `{"stopped": true}` (Stop pressed in the W&B UI).
    StopRun,
    /// HTTP 200 with a GraphQL `errors` list (how a GraphQL server refuses, e.g. an unknown entity).
    GraphqlError(String),
}

#[derive(Clone, Debug)]
pub struct Req {
    pub t: f64,
    pub method: String,
    pub path: String,
    /// graphql | file_stream | upload | other
    pub kind: String,
    /// GraphQL operationName.
    pub op: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub json: Option<Value>,
    pub status: u16,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default, Debug, Clone)]
pub struct RunState {
    pub upserts: Vec<Value>,
    /// Lines per file name, placed by offset.
    pub files: HashMap<String, Vec<Option<String>>>,
    /// Lines that were written over an existing one (a duplicate delivery).
    pub overwrites: usize,
    pub complete: Vec<i64>,
    pub uploaded: Vec<String>,
}

impl RunState {
    pub fn history(&self) -> Vec<Value> {
        self.files
            .get("wandb-history.jsonl")
            .map(|v| {
                v.iter()
                    .map(|l| {
                        // W&B's JSON dialect has bare NaN/Infinity; serde reads them as null.
                        let l = l
                            .as_deref()
                            .expect("no gap in history")
                            .replace(":NaN", ":null")
                            .replace(":-Infinity", ":null")
                            .replace(":Infinity", ":null");
                        serde_json::from_str(&l).expect("history line is JSON")
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
    pub fn summary(&self) -> Option<Value> {
        self.files
            .get("wandb-summary.json")
            .and_then(|v| v.last().cloned().flatten())
            .map(|l| serde_json::from_str(&l).expect("summary is JSON"))
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Req>,
    runs: HashMap<String, RunState>,
    faults: Vec<(String, Action)>,
    /// Every request of this kind gets this status (e.g. 401 for a bad key).
    always: Vec<(String, u16)>,
    uploads: HashMap<String, Vec<u8>>,
}

pub struct Stub {
    pub port: u16,
    pub upload_port: u16,
    state: Arc<Mutex<State>>,
    t0: Instant,
}

pub const DEFAULT_ENTITY: &str = "default-entity";

/// A URL where nothing listens (a server that is down).
pub fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

impl Stub {
    pub fn start() -> Stub {
        let api = TcpListener::bind("127.0.0.1:0").expect("bind");
        let up = TcpListener::bind("127.0.0.1:0").expect("bind");
        let state = Arc::new(Mutex::new(State::default()));
        let t0 = Instant::now();
        let stub = Stub {
            port: api.local_addr().unwrap().port(),
            upload_port: up.local_addr().unwrap().port(),
            state: state.clone(),
            t0,
        };
        let upload_port = stub.upload_port;
        for l in [api, up] {
            let st = state.clone();
            std::thread::spawn(move || {
                for conn in l.incoming().flatten() {
                    let st = st.clone();
                    std::thread::spawn(move || {
                        let _ = handle(conn, &st, t0, upload_port);
                    });
                }
            });
        }
        stub
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Queue a fault for the next request of `kind` (`graphql`, `UpsertBucket`, `file_stream`, `upload`).
    pub fn fault(&self, kind: &str, a: Action) {
        self.state.lock().unwrap().faults.push((kind.into(), a));
    }

    pub fn always(&self, kind: &str, status: u16) {
        self.state
            .lock()
            .unwrap()
            .always
            .push((kind.into(), status));
    }

    pub fn requests(&self) -> Vec<Req> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The file_stream posts, in arrival order.
    pub fn posts(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.kind == "file_stream")
            .collect()
    }

    pub fn runs(&self) -> HashMap<String, RunState> {
        self.state.lock().unwrap().runs.clone()
    }

    pub fn only_run(&self) -> (String, RunState) {
        let runs = self.runs();
        assert_eq!(runs.len(), 1, "expected one run, got {:?}", runs.keys());
        runs.into_iter().next().unwrap()
    }

    pub fn upload(&self, name: &str) -> Option<Vec<u8>> {
        self.state.lock().unwrap().uploads.get(name).cloned()
    }
}

/// Method, path, headers, body.
type RawRequest = (String, String, Vec<(String, String)>, Vec<u8>);

fn read_request(conn: &mut BufReader<TcpStream>) -> std::io::Result<Option<RawRequest>> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        conn.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = vec![];
    if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        conn.read_exact(&mut body)?;
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            conn.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            conn.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    if get("content-encoding").is_some_and(|v| v.contains("gzip")) {
        let mut out = vec![];
        flate2::read::GzDecoder::new(body.as_slice()).read_to_end(&mut out)?;
        body = out;
    }
    Ok(Some((method, path, headers, body)))
}

fn respond(conn: &mut TcpStream, status: u16, extra: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let _ = conn.flush();
}

fn handle(
    stream: TcpStream,
    st: &Arc<Mutex<State>>,
    t0: Instant,
    upload_port: u16,
) -> std::io::Result<()> {
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let Some((method, path, headers, body)) = read_request(&mut r)? else {
        return Ok(());
    };
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    let kind = if method == "PUT" && path.starts_with("/upload/") {
        "upload"
    } else if path.starts_with("/graphql") {
        "graphql"
    } else if path.starts_with("/files/") && path.ends_with("/file_stream") {
        "file_stream"
    } else {
        "other"
    };
    let op = json
        .as_ref()
        .and_then(|j| j["operationName"].as_str())
        .map(String::from);
    let mut req = Req {
        t: t0.elapsed().as_secs_f64(),
        method: method.clone(),
        path: path.clone(),
        kind: kind.into(),
        op: op.clone(),
        headers,
        body: body.clone(),
        json: json.clone(),
        status: 200,
    };
    let matches = |k: &str| k == kind || Some(k) == op.as_deref();
    let (fault, always) = {
        let mut s = st.lock().unwrap();
        let i = s.faults.iter().position(|(k, _)| matches(k));
        let f = i.map(|i| s.faults.remove(i).1);
        let a = s.always.iter().find(|(k, _)| matches(k)).map(|(_, c)| *c);
        (f, a)
    };
    let fail = |st: &Arc<Mutex<State>>,
                req: &mut Req,
                w: &mut TcpStream,
                status: u16,
                retry: Option<u64>| {
        req.status = status;
        st.lock().unwrap().requests.push(req.clone());
        let hdr: Vec<(&str, String)> = retry
            .map(|s| vec![("Retry-After", s.to_string())])
            .unwrap_or_default();
        let body = if kind == "graphql" {
            json!({"errors": [{"message": format!("injected {status}")}]})
        } else {
            json!({"error": format!("injected {status}")})
        };
        respond(w, status, &hdr, body.to_string().as_bytes());
    };
    if let Some(code) = always {
        fail(st, &mut req, &mut w, code, None);
        return Ok(());
    }
    let stop_run = matches!(fault, Some(Action::StopRun));
    match fault {
        Some(Action::Status(c)) => {
            fail(st, &mut req, &mut w, c, None);
            return Ok(());
        }
        Some(Action::RetryAfter(c, s)) => {
            fail(st, &mut req, &mut w, c, Some(s));
            return Ok(());
        }
        Some(Action::Close) => {
            req.status = 0;
            st.lock().unwrap().requests.push(req);
            let _ = w.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        Some(Action::GraphqlError(m)) => {
            st.lock().unwrap().requests.push(req);
            let body = json!({"errors": [{"message": m}], "data": {"upsertBucket": null}});
            respond(&mut w, 200, &[], body.to_string().as_bytes());
            return Ok(());
        }
        Some(Action::Delay(d)) => std::thread::sleep(d),
        Some(Action::StopRun) | None => {}
    }
    let answer: Value = match kind {
        "upload" => {
            let name = path.trim_start_matches("/upload/").to_string();
            let mut s = st.lock().unwrap();
            s.uploads.insert(name, body.clone());
            Value::Null
        }
        "file_stream" => {
            let parts: Vec<&str> = path.split('/').collect();
            let key = format!("{}/{}/{}", parts[2], parts[3], parts[4]);
            let mut s = st.lock().unwrap();
            let run = s.runs.entry(key).or_default();
            let b = json.clone().unwrap_or(Value::Null);
            if let Some(files) = b["files"].as_object() {
                for (name, f) in files {
                    let off = f["offset"].as_u64().unwrap_or(0) as usize;
                    let lines: Vec<String> = f["content"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|l| l.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    let file = run.files.entry(name.clone()).or_default();
                    for (i, l) in lines.into_iter().enumerate() {
                        let at = off + i;
                        if file.len() <= at {
                            file.resize(at + 1, None);
                        } else if file[at].is_some() && name != "wandb-summary.json" {
                            run.overwrites += 1;
                        }
                        file[at] = Some(l);
                    }
                }
            }
            if let Some(u) = b["uploaded"].as_array() {
                run.uploaded
                    .extend(u.iter().filter_map(|x| x.as_str().map(String::from)));
            }
            if b["complete"].as_bool() == Some(true) {
                run.complete.push(b["exitcode"].as_i64().unwrap_or(-1));
            }
            if stop_run {
                json!({"exitcode": null, "limits": {}, "stopped": true})
            } else {
                json!({"exitcode": null, "limits": {}})
            }
        }
        "graphql" => {
            let v = json
                .as_ref()
                .map(|j| j["variables"].clone())
                .unwrap_or(Value::Null);
            match op.as_deref() {
                Some("UpsertBucket") => {
                    let ent = v["entity"].as_str().unwrap_or(DEFAULT_ENTITY).to_string();
                    let proj = v["project"].as_str().unwrap_or("uncategorized").to_string();
                    let name = v["name"].as_str().unwrap_or("stubrun1").to_string();
                    let mut s = st.lock().unwrap();
                    let run = s.runs.entry(format!("{ent}/{proj}/{name}")).or_default();
                    let inserted = run.upserts.is_empty();
                    run.upserts.push(v.clone());
                    let lines = run
                        .files
                        .get("wandb-history.jsonl")
                        .map(|f| f.len())
                        .unwrap_or(0);
                    json!({"data": {"upsertBucket": {"bucket": {
                        "id": format!("UnVuOnYx{name}"), "name": name,
                        "displayName": v["displayName"].as_str().unwrap_or("stub-run"),
                        "description": null, "config": v["config"], "sweepName": null,
                        "project": {"id": "UHJvamVjdDox", "name": proj, "entity": {"id": "RW50aXR5OjE=", "name": ent}},
                        "historyLineCount": lines}, "inserted": inserted}}})
                }
                Some("CreateRunFiles") => {
                    let files: Vec<Value> = v["files"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|f| f.as_str())
                        .map(|f| json!({"name": f, "uploadUrl": format!("http://127.0.0.1:{upload_port}/upload/{f}")}))
                        .collect();
                    json!({"data": {"createRunFiles": {"runID": "UnVuOnYxOjE=", "uploadHeaders": ["X-Test-Upload:1"], "files": files}}})
                }
                Some("Viewer") => {
                    json!({"data": {"viewer": {"id": "VXNlcjox", "entity": DEFAULT_ENTITY, "username": "stub-user",
                        "email": "stub@example.invalid", "flags": "{}", "teams": {"edges": []}, "admin": false}}})
                }
                Some("ServerFeaturesQuery") => json!({"data": {"serverInfo": {"features": []}}}),
                Some("OrganizationCoreWeaveOrganizationID") => {
                    json!({"data": {"entity": {"organization": null}}})
                }
                _ => json!({"data": {}}),
            }
        }
        _ => json!({}),
    };
    st.lock().unwrap().requests.push(req);
    let text = if answer.is_null() {
        String::new()
    } else {
        answer.to_string()
    };
    respond(&mut w, 200, &[], text.as_bytes());
    Ok(())
}
