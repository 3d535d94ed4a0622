//! W&B logging through the real binary against a local stand-in server (tests/common/wandb_stub.rs):
//! the protocol invariants of shared/specs/wandb-protocol.md §10.2, faults, offline + sync,
//! and the official `wandb` client as the oracle (from .venv, scripts/setup-venv.sh).

#[path = "common/wandb_stub.rs"]
mod stub;

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use stub::{Action, Stub};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
/// Basic base64("api:" + KEY), from shared/specs/wandb-trace/README.md.
const AUTH: &str = "Basic YXBpOjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg==";

/// Protocol timings shrunk so a test takes milliseconds, not the real 15 s pacing.
const FAST: &[&str] = &[
    "logger=wandb",
    "logger.wandb.pacing_s=0.05",
    "logger.wandb.heartbeat_s=0.5",
    "logger.wandb.retry_min_s=0.02",
    "logger.wandb.retry_max_s=0.2",
    "logger.wandb.request_timeout_s=3",
    "logger.wandb.finish_timeout_s=60",
];

fn ezflt(dir: &Path, base_url: &str) -> Command {
    let mut c = Command::cargo_bin("ezflt").expect("binary");
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("WANDB_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", dir)
        .env("WANDB_API_KEY", KEY)
        .env("WANDB_BASE_URL", base_url);
    c
}

/// Trains a small MLP with W&B on; returns the run dir and the command's stdout+stderr.
fn train(tmp: &Path, base_url: &str, extra: &[&str], env: &[(&str, &str)]) -> (PathBuf, String, bool) {
    let mut args = vec![
        "train",
        "hydra.run.dir=run",
        "threads=1",
        "epochs=3",
        "log_every=4",
        "data.n_train=256",
        "data.n_test=128",
        "logger.wandb.project=ezflt-test",
        "tracker.schedule=per_epoch",
    ];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    let mut c = ezflt(tmp, base_url);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.args(&args).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (tmp.join("run"), text, out.status.success())
}

fn summary(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).expect("summary")).expect("json")
}

/// Every text file under `dir`, to prove the key never lands on disk.
fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }
    out
}

/// Invariants 4 and 5: contiguous offsets, each row once, steps increasing, runtimes sane.
fn check_history(stub: &Stub, run: &stub::RunState) -> Vec<Value> {
    let rows = run.history();
    assert_eq!(run.overwrites, 0, "a history line was delivered twice");
    let mut accepted = 0usize;
    for r in stub.requests().iter().filter(|r| r.kind == "file_stream" && r.status == 200) {
        if let Some(h) = r.json.as_ref().and_then(|j| j["files"].get("wandb-history.jsonl")) {
            assert_eq!(h["offset"].as_u64().unwrap() as usize, accepted, "offset gap or overlap");
            accepted += h["content"].as_array().unwrap().len();
        }
    }
    assert_eq!(accepted, rows.len());
    let mut last_step = -1i64;
    let mut last_rt = 0.0;
    for r in &rows {
        let s = r["_step"].as_i64().expect("integer _step");
        assert!(s > last_step, "steps must increase: {s} after {last_step}");
        last_step = s;
        let rt = r["_runtime"].as_f64().expect("_runtime");
        assert!(rt >= last_rt - 1e-9);
        last_rt = rt;
        assert!(r["_timestamp"].as_f64().unwrap() > 1.7e9);
    }
    rows
}

/// The `_step` of every metrics.jsonl row (training and evaluation rows may share a step).
fn metric_steps(run: &Path) -> Vec<i64> {
    let mut s: Vec<i64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["step"].as_i64().unwrap())
        .collect();
    s.dedup();
    s
}

#[test]
fn online_run_follows_the_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(tmp.path(), &stub.url(), &["logger.wandb.tags=[baseline,mlp]"], &[]);
    assert!(ok, "{out}");
    let reqs = stub.requests();
    // Auth on the API host only; never in a URL or body; the PUTs carry the upload header.
    for r in &reqs {
        match r.kind.as_str() {
            "upload" => {
                assert_eq!(r.header("Authorization"), None);
                assert_eq!(r.header("X-Test-Upload"), Some("1"));
            }
            _ => assert_eq!(r.header("Authorization"), Some(AUTH), "{} {}", r.method, r.path),
        }
        assert!(!r.path.contains(KEY));
        assert!(!String::from_utf8_lossy(&r.body).contains(KEY));
    }
    // Order: UpsertBucket first; file_stream under the entity the server chose.
    assert_eq!(reqs[0].op.as_deref(), Some("UpsertBucket"));
    let (key, state) = stub.only_run();
    assert!(key.starts_with("default-entity/ezflt-test/"), "{key}");
    let id = key.rsplit('/').next().unwrap();
    assert!(id.len() == 8 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    let fs: Vec<_> = reqs.iter().filter(|r| r.kind == "file_stream").collect();
    assert!(fs.iter().all(|r| r.path == format!("/files/{key}/file_stream")));
    // UpsertBucket variables: the composed config as {key: {value: ...}} in a string.
    let vars = &state.upserts[0];
    assert_eq!(vars["project"], "ezflt-test");
    assert_eq!(vars["entity"], Value::Null);
    assert_eq!(vars["jobType"], "train");
    assert_eq!(vars["tags"], serde_json::json!(["baseline", "mlp"]));
    let config: Value = serde_json::from_str(vars["config"].as_str().expect("config is a string")).unwrap();
    assert_eq!(config["epochs"]["value"], 3);
    assert_eq!(config["model"]["value"]["name"], "mlp");
    assert_eq!(config["data"]["value"]["n_train"], 256);
    // History: one row per logged step, the metric names W&B users expect.
    let rows = check_history(&stub, &state);
    assert_eq!(
        rows.iter().map(|r| r["_step"].as_i64().unwrap()).collect::<Vec<_>>(),
        {
            let mut s = vec![0];
            s.extend(metric_steps(&run));
            s
        },
        "W&B rows vs metrics.jsonl steps (plus the tracker's step 0)"
    );
    let keys: std::collections::BTreeSet<&str> =
        rows.iter().flat_map(|r| r.as_object().unwrap().keys().map(|k| k.as_str())).collect();
    for k in ["train/loss", "train/acc", "lr", "epoch", "test/loss", "test/acc", "track/layers.0.weight/norm", "track/layers.0.weight/std", "align/layers.0.weight/means/max_cos"] {
        assert!(keys.contains(k), "no {k} in {keys:?}");
    }
    // Finish: exactly one complete, last, exit code 0; summary holds final and best values.
    assert_eq!(state.complete, vec![0]);
    let last_fs = fs.last().unwrap().json.clone().unwrap();
    assert_eq!(last_fs["complete"], true);
    let s = state.summary().expect("summary");
    let final_acc = rows.iter().rev().find_map(|r| r["test/acc"].as_f64()).unwrap();
    assert_eq!(s["test/acc"].as_f64().unwrap(), final_acc);
    assert!(s["best/test/acc"].as_f64().unwrap() >= final_acc);
    assert!(s["_wandb"]["runtime"].is_i64());
    // Plots as images: uploaded file, the row points at it with its sha256, size and shape.
    let img_row = rows.iter().find(|r| r.get("plots/curves").is_some()).expect("curves image row");
    let img = &img_row["plots/curves"];
    assert_eq!(img["_type"], "image-file");
    assert_eq!(img["format"], "png");
    let path = img["path"].as_str().unwrap();
    let bytes = stub.upload(path).expect("image uploaded");
    assert_eq!(bytes.len() as u64, img["size"].as_u64().unwrap());
    use sha2::Digest;
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&bytes)), img["sha256"].as_str().unwrap());
    assert!(img["width"].as_u64().unwrap() > 100);
    assert!(state.uploaded.iter().any(|u| u == path));
    assert!(state.uploaded.iter().any(|u| u == "config.yaml"));
    let create = reqs.iter().find(|r| r.op.as_deref() == Some("CreateRunFiles")).unwrap();
    assert!(create.json.as_ref().unwrap()["variables"]["files"].as_array().unwrap().iter().any(|f| f == path));
    // The run records where it went; the key is nowhere on disk or in the output.
    let sm = summary(&run);
    assert_eq!(sm["wandb"]["synced"], true);
    assert!(out.contains("wandb: run synced"), "{out}");
    assert!(!out.contains(KEY));
    assert!(!all_text(&run).contains(KEY), "the API key was written under the run dir");
    let log = PathBuf::from(sm["wandb"]["log"].as_str().unwrap());
    assert!(PathBuf::from(format!("{}.synced", log.display())).exists());
}

#[test]
fn offline_run_syncs_later_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(tmp.path(), &stub.url(), &[], &[("WANDB_MODE", "offline")]);
    assert!(ok, "{out}");
    assert!(stub.requests().is_empty(), "offline mode must not touch the network");
    assert!(out.contains("ezflt sync"), "{out}");
    let dirs: Vec<_> = std::fs::read_dir(run.join("wandb")).unwrap().flatten().collect();
    assert!(dirs[0].file_name().to_string_lossy().starts_with("offline-run-"));
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", "run"];
        args.extend_from_slice(extra);
        ezflt(tmp.path(), &stub.url()).args(&args).output().unwrap()
    };
    let o = sync(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, state) = stub.only_run();
    let rows = check_history(&stub, &state);
    assert_eq!(rows.len(), metric_steps(&run).len() + 1);
    assert_eq!(state.complete, vec![0]);
    assert!(state.summary().unwrap()["best/test/acc"].is_number());
    // Again: skipped. Forced: the server's historyLineCount means no row is sent twice.
    let n = stub.requests().len();
    let o = sync(&[]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("already synced"));
    assert_eq!(stub.requests().len(), n);
    let o = sync(&["--force"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, again) = stub.only_run();
    assert_eq!(again.overwrites, 0);
    assert_eq!(again.history().len(), rows.len());
}

#[test]
fn server_down_for_the_whole_run_spools_and_sync_delivers() {
    let tmp = tempfile::tempdir().unwrap();
    let dead = stub::dead_url();
    let (run, out, ok) = train(tmp.path(), &dead, &["logger.wandb.finish_timeout_s=1"], &[]);
    assert!(ok, "training must finish with the server down: {out}");
    assert!(out.contains("ezflt sync"), "one clear warning naming the fix: {out}");
    assert_eq!(summary(&run)["status"], "completed");
    assert_eq!(summary(&run)["wandb"]["synced"], false);
    let stub = Stub::start();
    let o = ezflt(tmp.path(), &stub.url()).args(["sync", "run"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, state) = stub.only_run();
    let rows = check_history(&stub, &state);
    assert_eq!(rows.len(), metric_steps(&run).len() + 1);
    assert_eq!(state.complete, vec![0]);
}

#[test]
fn server_errors_then_recovery_lose_and_duplicate_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    for _ in 0..3 {
        stub.fault("file_stream", Action::Status(500));
    }
    stub.fault("file_stream", Action::Close);
    stub.fault("file_stream", Action::Status(503));
    stub.fault("upload", Action::Status(502));
    stub.fault("CreateRunFiles", Action::Status(500));
    let (run, out, ok) = train(tmp.path(), &stub.url(), &[], &[]);
    assert!(ok, "{out}");
    let (_, state) = stub.only_run();
    let rows = check_history(&stub, &state);
    assert_eq!(rows.len(), metric_steps(&run).len() + 1);
    assert_eq!(state.complete, vec![0]);
    // A retried post repeats the failed one's offset and first lines.
    let fs: Vec<_> = stub.requests().into_iter().filter(|r| r.kind == "file_stream").collect();
    let first_ok = fs.iter().position(|r| r.status == 200).unwrap();
    assert!(first_ok >= 5);
    let h = |r: &stub::Req| r.json.as_ref().map(|j| j["files"]["wandb-history.jsonl"].clone());
    assert_eq!(h(&fs[0]).unwrap()["offset"], h(&fs[first_ok]).unwrap()["offset"]);
    assert_eq!(h(&fs[0]).unwrap()["content"][0], h(&fs[first_ok]).unwrap()["content"][0]);
    assert_eq!(summary(&run)["wandb"]["synced"], true);
}

#[test]
fn retry_after_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    stub.fault("file_stream", Action::RetryAfter(429, 1));
    let (_, out, ok) = train(tmp.path(), &stub.url(), &[], &[]);
    assert!(ok, "{out}");
    let fs: Vec<_> = stub.requests().into_iter().filter(|r| r.kind == "file_stream").collect();
    assert_eq!(fs[0].status, 429);
    // The retry waited the server's second, not the 20 ms backoff.
    assert!(fs[1].t - fs[0].t >= 0.99, "retried after {:.3} s", fs[1].t - fs[0].t);
    let (_, state) = stub.only_run();
    check_history(&stub, &state);
    assert_eq!(state.complete, vec![0]);
}

#[test]
fn rejected_key_stops_at_start_unless_not_required() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    stub.always("graphql", 401);
    let (run, out, ok) = train(tmp.path(), &stub.url(), &[], &[]);
    assert!(!ok, "a rejected key must stop the run");
    assert!(out.contains("WANDB_API_KEY") && out.contains("401"), "{out}");
    assert!(out.contains("logger.wandb.required=false"), "{out}");
    assert!(!out.contains(KEY));
    assert!(!run.join("metrics.jsonl").exists(), "nothing may train before the check");
    assert_eq!(stub.requests().len(), 1, "401 is not retried");
    let tmp2 = tempfile::tempdir().unwrap();
    let (run2, out2, ok2) = train(tmp2.path(), &stub.url(), &["logger.wandb.required=false"], &[]);
    assert!(ok2, "{out2}");
    assert!(out2.contains("warning"), "{out2}");
    assert_eq!(summary(&run2)["status"], "completed");
    assert_eq!(summary(&run2)["wandb"]["synced"], false);
    assert!(!all_text(&run2).contains(KEY));
}

#[test]
fn slow_server_never_blocks_training_and_the_backlog_stays_for_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    // Every file_stream answer takes longer than the request timeout: nothing gets through.
    for _ in 0..200 {
        stub.fault("file_stream", Action::Delay(Duration::from_millis(1500)));
    }
    let (run, out, ok) = train(
        tmp.path(),
        &stub.url(),
        &["logger.wandb.request_timeout_s=0.5", "logger.wandb.finish_timeout_s=1"],
        &[],
    );
    assert!(ok, "{out}");
    assert_eq!(summary(&run)["status"], "completed");
    assert!(out.contains("ezflt sync"), "{out}");
    let stub2 = Stub::start();
    let o = ezflt(tmp.path(), &stub2.url()).args(["sync", "run"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, state) = stub2.only_run();
    assert_eq!(check_history(&stub2, &state).len(), metric_steps(&run).len() + 1);
}

#[test]
fn a_cut_log_syncs_what_it_holds_and_marks_the_run_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(tmp.path(), &stub.url(), &["logger.wandb.upload_plots=false"], &[("WANDB_MODE", "offline")]);
    assert!(ok, "{out}");
    let log = PathBuf::from(summary(&run)["wandb"]["log"].as_str().unwrap().to_string());
    let data = std::fs::read(&log).unwrap();
    // Drop the exit record and cut into the last history records, as a crash would.
    std::fs::write(&log, &data[..data.len() - 200]).unwrap();
    let o = ezflt(tmp.path(), &stub.url()).args(["sync", "run"]).output().unwrap();
    assert!(!o.status.success(), "a damaged log is reported");
    assert!(String::from_utf8_lossy(&o.stderr).contains("incomplete record"));
    let (_, state) = stub.only_run();
    let rows = check_history(&stub, &state);
    assert!(!rows.is_empty() && rows.len() < metric_steps(&run).len() + 1);
    assert_eq!(state.complete, vec![1]);
    assert!(!PathBuf::from(format!("{}.synced", log.display())).exists());
}

#[test]
fn sweep_jobs_share_a_group_and_carry_their_overrides() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let mut args = vec!["--multirun", "hydra.sweep.dir=sw", "seed=0,1", "epochs=1", "threads=1", "plot=none", "hydra/launcher=basic"];
    args.extend_from_slice(FAST);
    let o = ezflt(tmp.path(), &stub.url()).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs = stub.runs();
    assert_eq!(runs.len(), 2);
    let mut tags = vec![];
    for r in runs.values() {
        let v = &r.upserts[0];
        assert_eq!(v["groupName"], "sw");
        tags.push(v["tags"].clone());
        assert!(v["displayName"].as_str().unwrap().contains("seed="));
        assert_eq!(r.complete, vec![0]);
    }
    tags.sort_by_key(|t| t.to_string());
    assert_eq!(tags[0], serde_json::json!(["seed=0", "epochs=1", "threads=1", "plot=none"]));
}

#[test]
fn config_and_env_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ezflt(tmp.path(), "http://127.0.0.1:9")
        .args(["train", "logger=wandb", "+logger.wandb.api_key=abc"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("logger.wandb.api_key") && err.contains("WANDB_API_KEY"), "{err}");
    assert!(!tmp.path().join("outputs").exists(), "no run dir for a bad config");
    let o = ezflt(tmp.path(), "http://127.0.0.1:9")
        .env("WANDB_MODE", "sometimes")
        .args(["train", "logger=wandb"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("WANDB_MODE"));
    let o = ezflt(tmp.path(), "http://127.0.0.1:9")
        .env_remove("WANDB_API_KEY")
        .args(["train", "logger=wandb"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("WANDB_API_KEY") && err.contains("WANDB_MODE=offline"), "{err}");
}
