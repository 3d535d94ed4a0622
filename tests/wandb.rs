//! W&B logging through the real binary against a local stand-in server (tests/common/wandb_stub.rs):
//! the protocol invariants of the W&B client (request order, pacing, retries), faults, offline + sync,
//! and the official `wandb` client as the oracle (from .venv, scripts/setup-venv.sh).

#[path = "common/wandb_stub.rs"]
mod stub;

mod common;
use common::summary;

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use stub::{Action, Stub};

const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef";
/// Basic base64("api:" + KEY): how the official client sends the key.
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

/// A run long enough (3125 steps, a row each) for several paced posts before it ends.
const LONG: &[&str] = &[
    "data.n_train=40000",
    "epochs=5",
    "model.widths=[256]",
    "log_every=1",
    "plot=none",
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
fn train(
    tmp: &Path,
    base_url: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (PathBuf, String, bool) {
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
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (tmp.join("run"), text, out.status.success())
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
    for r in stub
        .requests()
        .iter()
        .filter(|r| r.kind == "file_stream" && r.status == 200)
    {
        if let Some(h) = r
            .json
            .as_ref()
            .and_then(|j| j["files"].get("wandb-history.jsonl"))
        {
            assert_eq!(
                h["offset"].as_u64().unwrap() as usize,
                accepted,
                "offset gap or overlap"
            );
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
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["step"]
                .as_i64()
                .unwrap()
        })
        .collect();
    s.dedup();
    s
}

/// `ezflt sync run` in `tmp` against `stub`: it must succeed and deliver every row of the run
/// (one per metrics step, plus the tracker's step 0) exactly once.
fn sync_all(tmp: &Path, stub: &Stub, run: &Path) -> (stub::RunState, Vec<Value>) {
    let o = ezflt(tmp, &stub.url())
        .args(["sync", "run"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, state) = stub.only_run();
    let rows = check_history(stub, &state);
    assert_eq!(rows.len(), metric_steps(run).len() + 1);
    (state, rows)
}

#[test]
fn online_run_follows_the_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(
        tmp.path(),
        &stub.url(),
        &["logger.wandb.tags=[baseline,mlp]"],
        &[],
    );
    assert!(ok, "{out}");
    let reqs = stub.requests();
    // Auth on the API host only; never in a URL or body; the PUTs carry the upload header.
    for r in &reqs {
        match r.kind.as_str() {
            "upload" => {
                assert_eq!(r.header("Authorization"), None);
                assert_eq!(r.header("X-Test-Upload"), Some("1"));
            }
            _ => assert_eq!(
                r.header("Authorization"),
                Some(AUTH),
                "{} {}",
                r.method,
                r.path
            ),
        }
        assert!(!r.path.contains(KEY));
        assert!(!String::from_utf8_lossy(&r.body).contains(KEY));
    }
    // Order: UpsertBucket first; file_stream under the entity the server chose.
    assert_eq!(reqs[0].op.as_deref(), Some("UpsertBucket"));
    let (key, state) = stub.only_run();
    assert!(key.starts_with("default-entity/ezflt-test/"), "{key}");
    let id = key.rsplit('/').next().unwrap();
    assert!(
        id.len() == 8
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    let fs: Vec<_> = reqs.iter().filter(|r| r.kind == "file_stream").collect();
    assert!(fs
        .iter()
        .all(|r| r.path == format!("/files/{key}/file_stream")));
    // UpsertBucket variables: the composed config as {key: {value: ...}} in a string.
    let vars = &state.upserts[0];
    assert_eq!(vars["project"], "ezflt-test");
    assert_eq!(vars["entity"], Value::Null);
    assert_eq!(vars["jobType"], "train");
    assert_eq!(vars["tags"], serde_json::json!(["baseline", "mlp"]));
    let config: Value =
        serde_json::from_str(vars["config"].as_str().expect("config is a string")).unwrap();
    assert_eq!(config["epochs"]["value"], 3);
    assert_eq!(config["model"]["value"]["name"], "mlp");
    assert_eq!(config["data"]["value"]["n_train"], 256);
    // History: one row per logged step, the metric names W&B users expect.
    let rows = check_history(&stub, &state);
    assert_eq!(
        rows.iter()
            .map(|r| r["_step"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        {
            let mut s = vec![0];
            s.extend(metric_steps(&run));
            s
        },
        "W&B rows vs metrics.jsonl steps (plus the tracker's step 0)"
    );
    let keys: std::collections::BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.as_object().unwrap().keys().map(|k| k.as_str()))
        .collect();
    for k in [
        "train/loss",
        "train/acc",
        "lr",
        "epoch",
        "test/loss",
        "test/acc",
        "track/layers.0.weight/norm",
        "track/layers.0.weight/std",
        "align/layers.0.weight/means/max_cos",
    ] {
        assert!(keys.contains(k), "no {k} in {keys:?}");
    }
    // Finish: exactly one complete, last, exit code 0; summary holds final and best values.
    assert_eq!(state.complete, vec![0]);
    let last_fs = fs.last().unwrap().json.clone().unwrap();
    assert_eq!(last_fs["complete"], true);
    let s = state.summary().expect("summary");
    let final_acc = rows
        .iter()
        .rev()
        .find_map(|r| r["test/acc"].as_f64())
        .unwrap();
    assert_eq!(s["test/acc"].as_f64().unwrap(), final_acc);
    assert!(s["best/test/acc"].as_f64().unwrap() >= final_acc);
    assert!(s["_wandb"]["runtime"].is_i64());
    // Plots as images: uploaded file, the row points at it with its sha256, size and shape.
    let img_row = rows
        .iter()
        .find(|r| r.get("plots/curves").is_some())
        .expect("curves image row");
    let img = &img_row["plots/curves"];
    assert_eq!(img["_type"], "image-file");
    assert_eq!(img["format"], "png");
    let path = img["path"].as_str().unwrap();
    let bytes = stub.upload(path).expect("image uploaded");
    assert_eq!(bytes.len() as u64, img["size"].as_u64().unwrap());
    use sha2::Digest;
    assert_eq!(
        format!("{:x}", sha2::Sha256::digest(&bytes)),
        img["sha256"].as_str().unwrap()
    );
    assert!(img["width"].as_u64().unwrap() > 100);
    assert!(state.uploaded.iter().any(|u| u == path));
    assert!(state.uploaded.iter().any(|u| u == "config.yaml"));
    let create = reqs
        .iter()
        .find(|r| r.op.as_deref() == Some("CreateRunFiles"))
        .unwrap();
    assert!(create.json.as_ref().unwrap()["variables"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == path));
    // The run records where it went; the key is nowhere on disk or in the output.
    let sm = summary(&run);
    assert_eq!(sm["wandb"]["synced"], true);
    assert!(out.contains("wandb: run synced"), "{out}");
    let url = format!("{}/default-entity/ezflt-test/runs/{id}", stub.url());
    assert!(out.contains(&format!("wandb: logging to {url}")), "{out}");
    assert!(!out.contains(KEY));
    assert!(
        !all_text(&run).contains(KEY),
        "the API key was written under the run dir"
    );
    let log = PathBuf::from(sm["wandb"]["log"].as_str().unwrap());
    assert!(PathBuf::from(format!("{}.synced", log.display())).exists());
}

#[test]
fn offline_run_syncs_later_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(tmp.path(), &stub.url(), &[], &[("WANDB_MODE", "offline")]);
    assert!(ok, "{out}");
    assert!(
        stub.requests().is_empty(),
        "offline mode must not touch the network"
    );
    assert!(out.contains("ezflt sync"), "{out}");
    let dirs: Vec<_> = std::fs::read_dir(run.join("wandb"))
        .unwrap()
        .flatten()
        .collect();
    assert!(dirs[0]
        .file_name()
        .to_string_lossy()
        .starts_with("offline-run-"));
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", "run"];
        args.extend_from_slice(extra);
        ezflt(tmp.path(), &stub.url()).args(&args).output().unwrap()
    };
    let inspect = |tmp: &Path| {
        let o = ezflt(tmp, &stub.url())
            .args(["inspect", "run"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    assert!(inspect(tmp.path()).contains("not synced: `ezflt sync run`"));
    let o = sync(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(inspect(tmp.path()).contains("(offline): synced"));
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
    assert!(
        out.contains("ezflt sync"),
        "one clear warning naming the fix: {out}"
    );
    assert_eq!(summary(&run)["status"], "completed");
    assert_eq!(summary(&run)["wandb"]["synced"], false);
    let stub = Stub::start();
    let (state, _) = sync_all(tmp.path(), &stub, &run);
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
    let fs = stub.posts();
    let first_ok = fs.iter().position(|r| r.status == 200).unwrap();
    assert!(first_ok >= 5);
    let h = |r: &stub::Req| {
        r.json
            .as_ref()
            .map(|j| j["files"]["wandb-history.jsonl"].clone())
    };
    assert_eq!(
        h(&fs[0]).unwrap()["offset"],
        h(&fs[first_ok]).unwrap()["offset"]
    );
    assert_eq!(
        h(&fs[0]).unwrap()["content"][0],
        h(&fs[first_ok]).unwrap()["content"][0]
    );
    assert_eq!(summary(&run)["wandb"]["synced"], true);
}

#[test]
fn retry_after_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    stub.fault("file_stream", Action::RetryAfter(429, 1));
    let (_, out, ok) = train(tmp.path(), &stub.url(), &[], &[]);
    assert!(ok, "{out}");
    let fs = stub.posts();
    assert_eq!(fs[0].status, 429);
    // The retry waited the server's second, not the 20 ms backoff.
    assert!(
        fs[1].t - fs[0].t >= 0.99,
        "retried after {:.3} s",
        fs[1].t - fs[0].t
    );
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
    assert!(
        out.contains("WANDB_API_KEY") && out.contains("401"),
        "{out}"
    );
    assert!(out.contains("logger.wandb.required=false"), "{out}");
    assert!(!out.contains(KEY));
    assert!(
        !run.join("metrics.jsonl").exists(),
        "nothing may train before the check"
    );
    assert_eq!(stub.requests().len(), 1, "401 is not retried");
    let tmp2 = tempfile::tempdir().unwrap();
    let (run2, out2, ok2) = train(
        tmp2.path(),
        &stub.url(),
        &["logger.wandb.required=false"],
        &[],
    );
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
        &[
            "logger.wandb.request_timeout_s=0.5",
            "logger.wandb.finish_timeout_s=1",
        ],
        &[],
    );
    assert!(ok, "{out}");
    assert_eq!(summary(&run)["status"], "completed");
    assert!(out.contains("ezflt sync"), "{out}");
    sync_all(tmp.path(), &Stub::start(), &run);
}

#[test]
fn a_cut_log_syncs_what_it_holds_and_marks_the_run_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(
        tmp.path(),
        &stub.url(),
        &["logger.wandb.upload_plots=false"],
        &[("WANDB_MODE", "offline")],
    );
    assert!(ok, "{out}");
    let log = PathBuf::from(summary(&run)["wandb"]["log"].as_str().unwrap().to_string());
    let data = std::fs::read(&log).unwrap();
    // Drop the exit record and cut into the last history records, as a crash would.
    std::fs::write(&log, &data[..data.len() - 200]).unwrap();
    let o = ezflt(tmp.path(), &stub.url())
        .args(["sync", "run"])
        .output()
        .unwrap();
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
    // One worker: the two jobs train as one batch, each member with its own W&B run; the
    // same sweep unbatched logs the same histories.
    for (dir, batch) in [("sw", "auto"), ("off", "off")] {
        let sweep_dir = format!("hydra.sweep.dir={dir}");
        let batch = format!("hydra.launcher.batch={batch}");
        let mut args = vec![
            "--multirun",
            &sweep_dir,
            &batch,
            "hydra.launcher.n_jobs=1",
            "seed=0,1",
            "epochs=1",
            "threads=1",
            "plot=none",
        ];
        args.extend_from_slice(FAST);
        let o = ezflt(tmp.path(), &stub.url()).args(&args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let runs = stub.runs();
    assert_eq!(runs.len(), 4);
    let mut tags = vec![];
    let mut history = std::collections::BTreeMap::new();
    for r in runs.values() {
        let v = &r.upserts[0];
        let group = v["groupName"].as_str().unwrap().to_string();
        let name = v["displayName"].as_str().unwrap();
        assert!(name.contains("seed="));
        assert_eq!(r.complete, vec![0]);
        assert_eq!(r.overwrites, 0, "a history line was delivered twice");
        let j: usize = name.split(':').next().unwrap().parse().unwrap();
        let summary: Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join(format!("{group}/{j}/summary.json"))).unwrap(),
        )
        .unwrap();
        if group == "sw" {
            tags.push(v["tags"].clone());
            assert_eq!(summary["batched"]["members"], serde_json::json!([0, 1]));
        } else {
            assert!(summary.get("batched").is_none());
        }
        // Every row but its clock.
        let rows: Vec<Value> = r
            .history()
            .into_iter()
            .map(|mut row| {
                for k in ["_runtime", "_timestamp", "time_s"] {
                    row.as_object_mut().unwrap().remove(k);
                }
                row
            })
            .collect();
        history.insert((group, j), rows);
    }
    for j in 0..2 {
        let (b, o) = (
            &history[&("sw".to_string(), j)],
            &history[&("off".to_string(), j)],
        );
        assert_eq!(b.len(), o.len(), "job {j}: history rows");
        for (x, y) in b.iter().zip(o) {
            for (k, v) in y.as_object().unwrap() {
                match (v.as_f64(), x[k].as_f64()) {
                    (Some(v), Some(w)) => {
                        assert!((v - w).abs() <= 1e-5 * v.abs().max(1e-3), "job {j} {k}")
                    }
                    _ => assert_eq!(&x[k], v, "job {j} {k}"),
                }
            }
        }
    }
    tags.sort_by_key(|t| t.to_string());
    assert_eq!(
        tags[0],
        serde_json::json!(["seed=0", "epochs=1", "threads=1", "plot=none"])
    );
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
    assert!(
        err.contains("logger.wandb.api_key") && err.contains("WANDB_API_KEY"),
        "{err}"
    );
    assert!(
        !tmp.path().join("outputs").exists(),
        "no run dir for a bad config"
    );
    let o = ezflt(tmp.path(), "http://127.0.0.1:9")
        .env("WANDB_MODE", "sometimes")
        .args(["train", "logger=wandb"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("WANDB_MODE"));
    // disabled: no W&B at all, not even a directory.
    let stub = Stub::start();
    let o = ezflt(tmp.path(), &stub.url())
        .env("WANDB_MODE", "disabled")
        .args([
            "train",
            "logger=wandb",
            "hydra.run.dir=off",
            "epochs=1",
            "plot=none",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!tmp.path().join("off/wandb").exists());
    assert!(stub.requests().is_empty());
    let o = ezflt(tmp.path(), "http://127.0.0.1:9")
        .env_remove("WANDB_API_KEY")
        .args(["train", "logger=wandb"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("WANDB_API_KEY") && err.contains("WANDB_MODE=offline"),
        "{err}"
    );
}

// ---- Oracles: the official `wandb` 0.31.0 client ----

/// The repo's venv python with the official wandb client (scripts/setup-venv.sh).
fn wandb_python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let ok = p.exists()
        && std::process::Command::new(&p)
            .args([
                "-c",
                "import wandb, sys; sys.exit(wandb.__version__ != '0.31.0')",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        Some(p)
    } else if std::env::var("EZFLT_REQUIRE_ORACLE").is_ok() {
        panic!(
            "EZFLT_REQUIRE_ORACLE is set but .venv has no wandb 0.31.0; run scripts/setup-venv.sh"
        );
    } else {
        common::skip(
            "wandb oracle",
            "no wandb 0.31.0 in .venv (bash scripts/setup-venv.sh); nothing was compared",
        );
        None
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
            let mut perm = std::fs::metadata(&dest).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&dest, perm).unwrap();
        }
    }
}

/// Numbers as f64, so `1.0` and `1` (Go re-serialises floats) compare equal.
fn norm(v: &Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), norm(v))).collect()),
        other => other.clone(),
    }
}

/// Config JSON string -> object without the SDK's own `_wandb` entry.
fn config_of(vars: &Value) -> Value {
    let mut c: Value = serde_json::from_str(vars["config"].as_str().unwrap()).unwrap();
    c.as_object_mut().unwrap().remove("_wandb");
    c
}

/// Sets up a command of the official client: run in `home` (also its HOME), the test key,
/// no WANDB_MODE or WANDB_ENTITY from outside, and the stand-in `server` when given.
fn official<'c>(
    cmd: &'c mut std::process::Command,
    home: &Path,
    server: Option<&str>,
) -> &'c mut std::process::Command {
    cmd.current_dir(home)
        .env("HOME", home)
        .env("WANDB_API_KEY", KEY)
        .env_remove("WANDB_MODE")
        .env_remove("WANDB_ENTITY");
    if let Some(url) = server {
        cmd.env("WANDB_BASE_URL", url).env("WANDB_DIR", home);
    }
    cmd
}

/// The official client writes an offline run (config, group, tags, notes, rows with an
/// image, a summary); `ezflt sync` and the official `wandb sync` each send it to a stand-in
/// server, and the two servers must have received the same run.
#[test]
fn ezflt_sync_of_an_official_offline_run_matches_wandb_sync() {
    let Some(py) = wandb_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import numpy as np, wandb
from PIL import Image
Image.fromarray((np.arange(48 * 64 * 3) % 251).astype("uint8").reshape(48, 64, 3)).save("img.png")
run = wandb.init(mode="offline", project="ezflt-oracle", group="g1", name="off-run", notes="a note",
                 job_type="train", tags=["a", "b"],
                 config={"lr": 0.1, "model": {"name": "mlp", "widths": [8, 4]}, "seed": 3},
                 settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True))
for s in range(6):
    row = {"train/loss": 1.0 / (s + 1), "epoch": s}
    if s == 3:
        row["plots/curves"] = wandb.Image("img.png")
    wandb.log(row, step=s)
run.summary["best/test/acc"] = 0.9
run.finish()
"#;
    let o = official(
        std::process::Command::new(&py).args(["-c", script]),
        tmp.path(),
        None,
    )
    .env("WANDB_DIR", tmp.path().join("official"))
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "official client: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let root = tmp.path().join("official/wandb");
    let written = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("offline-run-")
        })
        .expect("the official client's offline run");
    // Each sync marks what it synced: give each its own copy.
    let name = written.file_name().unwrap();
    let (ours_dir, theirs_dir) = (
        tmp.path().join("ours").join(name),
        tmp.path().join("theirs").join(name),
    );
    copy_dir(&written, &ours_dir);
    copy_dir(&written, &theirs_dir);
    let ours = Stub::start();
    let o = ezflt(tmp.path(), &ours.url())
        .arg("sync")
        .arg(&ours_dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ezflt sync: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let theirs = Stub::start();
    let mut sync = std::process::Command::new(py.parent().unwrap().join("wandb"));
    let o = official(
        sync.arg("sync").arg(&theirs_dir),
        tmp.path(),
        Some(&theirs.url()),
    )
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "wandb sync: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ((_, mine), (_, official)) = (ours.only_run(), theirs.only_run());
    let (got, want) = (
        check_history(&ours, &mine),
        check_history(&theirs, &official),
    );
    assert_eq!(got.len(), 6);
    assert_eq!(norm(&Value::from(got)), norm(&Value::from(want)), "history");
    assert_eq!(mine.complete, official.complete, "exit code");
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("_wandb");
        norm(&v)
    };
    assert_eq!(
        strip(mine.summary().unwrap()),
        strip(official.summary().unwrap()),
        "summary"
    );
    let (a, b) = (&mine.upserts[0], &official.upserts[0]);
    for k in [
        "name",
        "project",
        "entity",
        "groupName",
        "displayName",
        "notes",
        "jobType",
        "tags",
        "host",
    ] {
        assert_eq!(a[k], b[k], "UpsertBucket {k}");
    }
    assert_eq!(norm(&config_of(a)), norm(&config_of(b)), "config");
    // The image went up byte for byte, under the same name.
    let media = |s: &Stub| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = s
            .requests()
            .iter()
            .filter(|r| r.kind == "upload")
            .filter_map(|r| {
                let name = r.path.trim_start_matches("/upload/").to_string();
                name.starts_with("media/")
                    .then(|| (name.clone(), s.upload(&name).unwrap()))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let (m1, m2) = (media(&ours), media(&theirs));
    assert_eq!(
        m1.len(),
        1,
        "{:?}",
        m1.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
    assert_eq!(m1, m2, "uploaded media");
}

#[test]
fn the_official_wandb_sync_accepts_an_ezflt_offline_run() {
    let Some(py) = wandb_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(tmp.path(), &stub.url(), &[], &[("WANDB_MODE", "offline")]);
    assert!(ok, "{out}");
    let wandb = py.parent().unwrap().join("wandb");
    let log = PathBuf::from(summary(&run)["wandb"]["log"].as_str().unwrap().to_string());
    let mut sync = std::process::Command::new(&wandb);
    let out = official(
        sync.arg("sync").arg(log.parent().unwrap()),
        tmp.path(),
        Some(&stub.url()),
    )
    .output()
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let (_, state) = stub.only_run();
    let rows = check_history(&stub, &state);
    assert_eq!(rows.len(), metric_steps(&run).len() + 1, "{text}");
    assert_eq!(state.complete, vec![0], "{text}");
    assert!(state.summary().unwrap()["best/test/acc"].is_number());
    assert!(
        PathBuf::from(format!("{}.synced", log.display())).exists(),
        "{text}"
    );
    let config = config_of(&state.upserts[0]);
    assert_eq!(config["model"]["value"]["name"], "mlp");
}

/// The official client logs what ezflt logged (same config, rows, image, summary) against a
/// second stub; the two request streams must agree in every point the spec lists (§10.6).
#[test]
fn requests_match_the_official_client_for_the_same_run() {
    let Some(py) = wandb_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ours = Stub::start();
    let (run, out, ok) = train(tmp.path(), &ours.url(), &["plot.what=[curves]"], &[]);
    assert!(ok, "{out}");
    let (_, mine) = ours.only_run();
    let rows = check_history(&ours, &mine);
    let plot = run.join("plots").join("curves.png");
    // What ezflt sent, as the official client's inputs.
    let mut summary_extra = serde_json::Map::new();
    for (k, v) in mine.summary().unwrap().as_object().unwrap() {
        if k.starts_with("best/") {
            summary_extra.insert(k.clone(), v.clone());
        }
    }
    let plain_rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            o.remove("_runtime");
            o.remove("_timestamp");
            if o.remove("plots/curves").is_some() {
                o.insert(
                    "plots/curves".into(),
                    Value::String(plot.display().to_string()),
                );
            }
            r
        })
        .collect();
    let input = serde_json::json!({
        "config": config_of(&mine.upserts[0]).as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["value"].clone())).collect::<serde_json::Map<_, _>>(),
        "tags": mine.upserts[0]["tags"],
        "rows": plain_rows,
        "summary": summary_extra,
    });
    let input_path = tmp.path().join("input.json");
    std::fs::write(&input_path, input.to_string()).unwrap();
    let script = r#"
import json, sys, wandb
d = json.load(open(sys.argv[1]))
run = wandb.init(project="ezflt-test", config=d["config"], tags=d["tags"], job_type="train",
                 settings=wandb.Settings(console="off", x_disable_stats=True, x_disable_meta=True))
for r in d["rows"]:
    step = r.pop("_step")
    if "plots/curves" in r:
        r["plots/curves"] = wandb.Image(r["plots/curves"])
    wandb.log(r, step=step)
for k, v in d["summary"].items():
    run.summary[k] = v
run.finish()
"#;
    let theirs = Stub::start();
    let mut client = std::process::Command::new(&py);
    let input = input_path.display().to_string();
    let o = official(
        client.args(["-c", script, &input]),
        tmp.path(),
        Some(&theirs.url()),
    )
    .env("WANDB_MODE", "online")
    .output()
    .unwrap();
    assert!(
        o.status.success(),
        "official client: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (_, official) = theirs.only_run();
    let official_rows = check_history(&theirs, &official);
    // Endpoint order of the core requests.
    let core = |s: &Stub| {
        let mut seq: Vec<String> = vec![];
        for r in s.requests() {
            let k = match (r.kind.as_str(), r.op.as_deref()) {
                ("graphql", Some(op @ ("UpsertBucket" | "CreateRunFiles"))) => op.to_string(),
                ("file_stream", _) | ("upload", _) => r.kind.clone(),
                _ => continue,
            };
            // Repeats collapse; the SDK's later config-only UpsertBucket is its telemetry.
            if seq.last() != Some(&k) && !(k == "UpsertBucket" && seq.contains(&k)) {
                seq.push(k);
            }
        }
        seq
    };
    assert_eq!(core(&ours), core(&theirs), "request order");
    assert_eq!(
        core(&ours),
        [
            "UpsertBucket",
            "file_stream",
            "CreateRunFiles",
            "upload",
            "file_stream"
        ]
    );
    // Auth header form.
    let auth = |s: &Stub| {
        s.requests()
            .iter()
            .find(|r| r.kind == "graphql")
            .unwrap()
            .header("Authorization")
            .map(String::from)
    };
    assert_eq!(auth(&ours), auth(&theirs));
    // Config encoding.
    assert_eq!(
        norm(&config_of(&mine.upserts[0])),
        norm(&config_of(&official.upserts[0]))
    );
    for k in ["project", "jobType", "tags", "entity"] {
        assert_eq!(
            mine.upserts[0][k], official.upserts[0][k],
            "UpsertBucket {k}"
        );
    }
    // History rows: same keys row by row (values too, but for the runtime clocks and images).
    assert_eq!(rows.len(), official_rows.len());
    for (a, b) in rows.iter().zip(&official_rows) {
        let ka: std::collections::BTreeSet<_> = a.as_object().unwrap().keys().collect();
        let kb: std::collections::BTreeSet<_> = b.as_object().unwrap().keys().collect();
        assert_eq!(ka, kb, "history row keys");
        for k in ka {
            match k.as_str() {
                "_runtime" | "_timestamp" => {}
                "plots/curves" => {
                    let keys = |v: &Value| {
                        v.as_object()
                            .unwrap()
                            .keys()
                            .cloned()
                            .collect::<std::collections::BTreeSet<_>>()
                    };
                    assert_eq!(keys(&a[k]), keys(&b[k]), "image value keys");
                    for f in ["_type", "sha256", "size", "width", "height", "format"] {
                        assert_eq!(a[k][f], b[k][f], "image {f}");
                    }
                }
                _ => assert_eq!(norm(&a[k]), norm(&b[k]), "{k}"),
            }
        }
    }
    // Summary keys and the completion message.
    let keys = |v: Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        keys(mine.summary().unwrap()),
        keys(official.summary().unwrap())
    );
    let last = |s: &Stub| s.posts().pop().unwrap().json.unwrap();
    let (a, b) = (last(&ours), last(&theirs));
    assert_eq!(
        (a["complete"].clone(), a["exitcode"].clone()),
        (b["complete"].clone(), b["exitcode"].clone())
    );
    assert_eq!(keys(a), keys(b), "final file_stream body keys");
    assert_eq!(mine.complete, official.complete);
}

#[test]
fn a_resumed_run_continues_its_wandb_run() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(tmp.path(), &stub.url(), &["checkpoint_every=1"], &[]);
    assert!(ok, "{out}");
    let (key, first) = stub.only_run();
    let n1 = first.history().len();
    let o = ezflt(tmp.path(), &stub.url())
        .args(["train", "resume=run", "epochs=5"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (key2, state) = stub.only_run();
    assert_eq!(key, key2, "the resumed run keeps its W&B run id");
    let rows = check_history(&stub, &state);
    assert!(rows.len() > n1);
    assert_eq!(state.upserts.len(), 2);
    assert_eq!(state.complete, vec![0, 0]);
    assert_eq!(
        std::fs::read_dir(run.join("wandb")).unwrap().count(),
        2,
        "one log per session"
    );
}

#[test]
fn posts_are_paced() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (_, out, ok) = train(
        tmp.path(),
        &stub.url(),
        &[LONG, &["logger.wandb.pacing_s=0.1"]].concat(),
        &[],
    );
    assert!(ok, "{out}");
    let fs = stub.posts();
    assert!(fs.len() >= 4, "{} posts", fs.len());
    // At the end the rest is flushed at once and the completion follows (as wandb-core
    // does); all posts before keep the pacing.
    for w in fs[..fs.len() - 2].windows(2) {
        assert!(
            w[1].t - w[0].t >= 0.095,
            "posts {:.3} s apart",
            w[1].t - w[0].t
        );
    }
    let (_, state) = stub.only_run();
    check_history(&stub, &state);
}

#[test]
fn a_diverged_run_is_marked_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(tmp.path(), &stub.url(), &["lr=1e30", "log_every=1"], &[]);
    assert!(!ok);
    assert_eq!(summary(&run)["status"], "diverged", "{out}");
    let (_, state) = stub.only_run();
    assert_eq!(
        state.complete,
        vec![1],
        "a failed run completes with a non-zero exit code"
    );
    check_history(&stub, &state);
}

#[test]
fn a_long_offline_run_syncs_in_several_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    let (run, out, ok) = train(
        tmp.path(),
        &stub.url(),
        &[
            "data.n_train=48000",
            "batch_size=4",
            "epochs=1",
            "log_every=1",
            "plot=none",
        ],
        &[("WANDB_MODE", "offline")],
    );
    assert!(ok, "{out}");
    let (_, rows) = sync_all(tmp.path(), &stub, &run);
    assert!(rows.len() > 12_000);
    let posts = stub.posts().len();
    assert!(
        posts >= 3,
        "10 000 lines at most per request: {posts} posts"
    );
}

#[test]
fn an_unknown_entity_stops_at_start_with_the_servers_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    stub.fault(
        "UpsertBucket",
        Action::GraphqlError("entity nope not found".into()),
    );
    let (run, out, ok) = train(tmp.path(), &stub.url(), &["logger.wandb.entity=nope"], &[]);
    assert!(!ok);
    assert!(out.contains("entity nope not found"), "{out}");
    assert!(
        out.contains("entity 'nope'") && out.contains("WANDB_ENTITY"),
        "{out}"
    );
    assert!(!run.join("metrics.jsonl").exists());
    assert_eq!(stub.requests().len(), 1);
}

#[test]
fn stop_in_the_wandb_ui_stops_training() {
    let tmp = tempfile::tempdir().unwrap();
    let stub = Stub::start();
    stub.fault("file_stream", Action::StopRun);
    let (run, out, _) = train(tmp.path(), &stub.url(), LONG, &[]);
    assert!(out.contains("stopped from the W&B UI"), "{out}");
    let s = summary(&run);
    assert_eq!(s["status"], "interrupted");
    assert!(
        s["steps"].as_u64().unwrap() < 5 * 625,
        "stopped before the last of 3125 steps"
    );
    let (_, state) = stub.only_run();
    check_history(&stub, &state);
    assert_eq!(state.complete, vec![130]);
}
