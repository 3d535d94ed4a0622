//! Datasets by name (`data=mnist`, `fashion_mnist`, `cifar10`) download from a local HTTP
//! server serving small fixtures in the real formats: a broken connection resumes with a
//! Range request, a dead mirror falls through to the next, a wrong checksum and an offline
//! machine are clear errors that leave nothing in the cache, and a second run reads the cache.

mod common;
use common::*;
use predicates::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Requests the server saw: "GET <path> <range or ->" and what it answered.
type Log = Arc<Mutex<Vec<String>>>;

/// Serves `files` at their paths over HTTP/1.1 with Range support. Paths in `break_first`
/// get their first response cut off halfway (the header promises the whole file).
fn serve(files: HashMap<String, Vec<u8>>, break_first: &[&str]) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let seen = log.clone();
    let mut broken: Vec<String> = break_first.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut req = Vec::new();
            let mut b = [0u8; 1];
            while !req.ends_with(b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(1) => req.push(b[0]),
                    _ => break,
                }
            }
            let req = String::from_utf8_lossy(&req).to_string();
            let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
            let range = req.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("range: bytes=")
                    .map(|r| r.trim_end_matches('-').to_string())
            });
            let Some(body) = files.get(&path) else {
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                seen.lock().unwrap().push(format!("GET {path} 404"));
                continue;
            };
            let from: usize = range.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0);
            let head = if from > 0 {
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n",
                    body.len() - from,
                    body.len() - 1,
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
            };
            let _ = s.write_all(head.as_bytes());
            let cut = broken.iter().position(|p| *p == path);
            let end = if let Some(i) = cut {
                broken.remove(i);
                from + (body.len() - from) / 2
            } else {
                body.len()
            };
            let _ = s.write_all(&body[from..end]);
            let _ = s.flush();
            seen.lock().unwrap().push(format!(
                "GET {path} {} {}",
                range.map_or("-".to_string(), |r| format!("bytes={r}-")),
                if end < body.len() { "cut" } else { "whole" }
            ));
        }
    });
    (port, log)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The files at `/<prefix>/<name>`, as `serve` takes them.
fn at(prefix: &str, files: &[(String, Vec<u8>)]) -> HashMap<String, Vec<u8>> {
    files
        .iter()
        .map(|(f, b)| (format!("/{prefix}/{f}"), b.clone()))
        .collect()
}

/// MNIST's four gzipped IDX files, with `n` tiny 4x4 images per split: label k lights
/// pixel k (k < 4).
fn mnist_fixture() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for (img, lab, n) in [("train", "train", 40u32), ("t10k", "t10k", 20)] {
        let mut px = vec![0u8; (n * 16) as usize];
        let mut labels = vec![];
        for i in 0..n as usize {
            px[i * 16 + i % 4] = 255;
            labels.push((i % 4) as u8);
        }
        out.push((
            format!("{img}-images-idx3-ubyte.gz"),
            gz(&idx(&[n, 4, 4], px)),
        ));
        out.push((
            format!("{lab}-labels-idx1-ubyte.gz"),
            gz(&idx(&[n], labels)),
        ));
    }
    out
}

fn conf(dir: &Path, file: &str, name: &str, mirrors: &[String], files: &[(String, Vec<u8>)]) {
    std::fs::create_dir_all(dir.join("myconf/data")).unwrap();
    let mut y = format!("name: {name}\nmirrors:\n");
    for m in mirrors {
        y += &format!("  - {m}\n");
    }
    y += "sha256:\n";
    for (f, b) in files {
        y += &format!("  {f}: {}\n", sha(b));
    }
    std::fs::write(dir.join(format!("myconf/data/{file}.yaml")), y).unwrap();
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn mnist_downloads_once_resumes_a_broken_connection_and_falls_through_mirrors() {
    let tmp = tempfile::tempdir().unwrap();
    let files = mnist_fixture();
    let (port, log) = serve(at("mnist", &files), &["/mnist/train-images-idx3-ubyte.gz"]);
    // The first mirror has nothing (404); the second serves the files.
    let mirrors = [
        format!("http://127.0.0.1:{port}/gone/"),
        format!("http://127.0.0.1:{port}/mnist"),
    ];
    conf(tmp.path(), "mnist_local", "mnist", &mirrors, &files);
    let out = ezflt(tmp.path())
        .args([
            "train",
            "--config-dir",
            "myconf",
            "data=mnist_local",
            "hydra.run.dir=run",
            "epochs=30",
            "batch_size=full",
            "lr=0.5",
        ])
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("resuming (attempt 2 of 4)"), "{stderr}");
    let s = summary(&tmp.path().join("run"));
    assert_eq!(s["final"]["test_acc"].as_f64().unwrap(), 1.0, "{s}");
    let cache = tmp.path().join(".ezflt-data/mnist");
    let mut want: Vec<String> = files.iter().map(|(f, _)| f.clone()).collect();
    want.push(".lock".into());
    want.sort();
    assert_eq!(entries(&cache), want, "no .part file is left");
    for (f, b) in &files {
        assert_eq!(&std::fs::read(cache.join(f)).unwrap(), b, "{f}");
    }
    let seen = log.lock().unwrap().clone();
    assert!(
        seen.contains(&"GET /gone/train-images-idx3-ubyte.gz 404".to_string()),
        "{seen:?}"
    );
    let resumed = seen
        .iter()
        .find(|l| l.starts_with("GET /mnist/train-images-idx3-ubyte.gz bytes="))
        .unwrap_or_else(|| panic!("no Range request: {seen:?}"));
    let half = files[0].1.len() / 2;
    assert_eq!(
        resumed,
        &format!("GET /mnist/train-images-idx3-ubyte.gz bytes={half}- whole")
    );
    // A second run reads the cache: no request at all.
    let before = seen.len();
    ezflt(tmp.path())
        .args([
            "train",
            "--config-dir",
            "myconf",
            "data=mnist_local",
            "max_steps=2",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("Downloading").not());
    assert_eq!(log.lock().unwrap().len(), before);
}

#[test]
fn a_wrong_checksum_or_no_connection_is_a_clear_error_that_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let files = mnist_fixture();
    let (port, _log) = serve(at("fashion", &files), &[]);
    // The labels' checksum is that of other bytes.
    let mut claimed = files.clone();
    claimed[1].1 = b"something else".to_vec();
    let url = format!("http://127.0.0.1:{port}/fashion/");
    conf(
        tmp.path(),
        "bad",
        "fashion_mnist",
        std::slice::from_ref(&url),
        &claimed,
    );
    ezflt(tmp.path())
        .args(["train", "--config-dir", "myconf", "data=bad"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{url}train-labels-idx1-ubyte.gz: checksum mismatch: expected sha256 {}, got {}",
            sha(b"something else"),
            sha(&files[1].1)
        )))
        .stderr(predicate::str::contains("set data.path=<that folder>"))
        .stderr(predicate::str::contains("panicked").not());
    let cache = tmp.path().join(".ezflt-data/fashion_mnist");
    // The images before it were verified and kept; the bad file and its .part are gone.
    assert_eq!(
        entries(&cache),
        [".lock", "train-images-idx3-ubyte.gz"],
        "only verified files stay"
    );
    assert!(!tmp.path().join("outputs").exists());

    // Nothing listens on the mirror: the error names it and the manual step, at once.
    conf(
        tmp.path(),
        "offline",
        "cifar10",
        &["http://127.0.0.1:9/kriz/".to_string()],
        &[("cifar-10-binary.tar.gz".into(), vec![])],
    );
    ezflt(tmp.path())
        .args(["train", "--config-dir", "myconf", "data=offline"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "http://127.0.0.1:9/kriz/cifar-10-binary.tar.gz: no connection",
        ))
        .stderr(predicate::str::contains("data.path=<that folder>"));
    assert!(!tmp.path().join("outputs").exists());
}

#[test]
fn cifar10_downloads_its_archive_and_reads_the_binary_batches() {
    let tmp = tempfile::tempdir().unwrap();
    // Each batch: 4 records, label k lights the red, green or blue pixel k of row 0.
    let batch = |n: usize| {
        let mut b = vec![];
        for i in 0..n {
            let k = i % 4;
            b.push(k as u8);
            let mut px = vec![0u8; 3072];
            px[(k % 3) * 1024 + k] = 255;
            b.extend(px);
        }
        b
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("cifar-10-batches-bin/{name}"), bytes)
            .unwrap();
    };
    for i in 1..=5 {
        add(&format!("data_batch_{i}.bin"), &batch(4));
    }
    add("test_batch.bin", &batch(8));
    add("batches.meta.txt", b"airplane\nautomobile\n");
    let archive = gz(&tar.into_inner().unwrap());
    let files = vec![("cifar-10-binary.tar.gz".to_string(), archive.clone())];
    let (port, log) = serve(
        HashMap::from([("/kriz/cifar-10-binary.tar.gz".to_string(), archive)]),
        &[],
    );
    conf(
        tmp.path(),
        "cifar_local",
        "cifar10",
        &[format!("http://127.0.0.1:{port}/kriz/")],
        &files,
    );
    ezflt(tmp.path())
        .args([
            "train",
            "--config-dir",
            "myconf",
            "data=cifar_local",
            "+data.n_train=18",
            "hydra.run.dir=run",
            "epochs=30",
            "batch_size=full",
            "lr=0.5",
        ])
        .assert()
        .success();
    let s = summary(&tmp.path().join("run"));
    assert_eq!(s["final"]["test_acc"].as_f64().unwrap(), 1.0, "{s}");
    let cfg = std::fs::read_to_string(tmp.path().join("run/.hydra/config.yaml")).unwrap();
    assert!(cfg.contains("name: cifar10"), "{cfg}");
    let bins = tmp.path().join(".ezflt-data/cifar10/cifar-10-batches-bin");
    assert_eq!(
        entries(&bins),
        [
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin"
        ]
    );
    assert_eq!(log.lock().unwrap().len(), 1);
    // data.path reads the unpacked batches (or the folder above them) without a download.
    ezflt(tmp.path())
        .args([
            "train",
            "data=cifar10",
            "data.path=.ezflt-data/cifar10",
            "max_steps=2",
        ])
        .assert()
        .success();
    assert_eq!(log.lock().unwrap().len(), 1);
}
