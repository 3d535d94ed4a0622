//! End-to-end tests of the `ezflt` binary: run directories, dry runs, errors, help.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

mod common;
use common::ezflt;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

#[test]
fn builtin_config_works_from_any_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args(["--cfg", "job"])
        .assert()
        .success()
        .stdout(predicate::str::contains("model:\n  name: mlp"))
        .stdout(predicate::str::contains("lr: ${lr}"));
    ezflt(tmp.path())
        .args(["--cfg", "job", "--resolve", "lr=0.5"])
        .assert()
        .success()
        .stdout(predicate::str::contains("  lr: 0.5\n"));
    ezflt(tmp.path())
        .args(["--cfg", "job", "-p", "lr"])
        .assert()
        .success()
        .stdout("0.1\n");
}

/// A dry run whose directory name comes from the config (`runs/two_layer_cnn_3`).
fn dry_run_cnn(dir: &Path) -> Command {
    let mut c = ezflt(dir);
    c.args([
        "--dry-run",
        "model=two_layer_cnn",
        "data=signal_noise",
        "seed=3",
        "hydra.run.dir=runs/${model.name}_${seed}",
    ]);
    c
}

#[test]
fn dry_run_writes_hydra_records_and_runs_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    dry_run_cnn(tmp.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("runs/two_layer_cnn_3"));
    let d = tmp.path().join("runs/two_layer_cnn_3");
    let cfg = std::fs::read_to_string(d.join(".hydra/config.yaml")).expect("config.yaml");
    assert!(
        cfg.contains("name: two_layer_cnn") && cfg.contains("seed: 3") && !cfg.contains("hydra:")
    );
    let hy = std::fs::read_to_string(d.join(".hydra/hydra.yaml")).expect("hydra.yaml");
    assert!(hy.contains("mode: RUN"), "{hy}");
    assert!(
        hy.contains("override_dirname: data=signal_noise,model=two_layer_cnn,seed=3"),
        "{hy}"
    );
    assert!(hy.contains("model: two_layer_cnn"), "runtime.choices: {hy}");
    let ov = std::fs::read_to_string(d.join(".hydra/overrides.yaml")).expect("overrides.yaml");
    assert_eq!(ov, "- model=two_layer_cnn\n- data=signal_noise\n- seed=3\n");
    assert!(d.join("train.log").exists());
    // Same directory again (as two runs in the same second would get): a new, suffixed one.
    dry_run_cnn(tmp.path()).assert().success();
    assert!(tmp
        .path()
        .join("runs/two_layer_cnn_3_1/.hydra/config.yaml")
        .exists());
}

#[test]
fn output_subdir_null_writes_no_records() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args(["--dry-run", "hydra.output_subdir=null", "hydra.run.dir=r"])
        .assert()
        .success();
    assert!(tmp.path().join("r").is_dir());
    assert!(!tmp.path().join("r/.hydra").exists());
}

#[test]
fn multirun_dry_run_lays_out_the_sweep() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .args([
            "-m",
            "--dry-run",
            "seed=0,1,2",
            "lr=1e-3,1e-2",
            "hydra.sweep.dir=sw",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("6 job(s)"))
        .stdout(predicate::str::contains("#5 : seed=2 lr=0.01"));
    let root = tmp.path().join("sw");
    assert!(root.join("multirun.yaml").exists());
    let hy = std::fs::read_to_string(root.join("5/.hydra/hydra.yaml")).expect("job 5");
    assert!(
        hy.contains("num: 5") && hy.contains("mode: MULTIRUN"),
        "{hy}"
    );
    let cfg = std::fs::read_to_string(root.join("5/.hydra/config.yaml")).expect("job 5 config");
    assert!(cfg.contains("seed: 2") && cfg.contains("lr: 0.01"), "{cfg}");
}

#[test]
fn bad_inputs_fail_cleanly_and_create_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cases: &[(&[&str], &str)] = &[
        (&["--dry-run", "model=mlpp"], "Did you mean 'model=mlp'?"),
        (&["--dry-run", "lrr=1"], "Did you mean 'lr'?"),
        (&["--dry-run", "seed=0,1"], "--multirun"),
        (&["-m", "--dry-run", "seed=interval(0,1)"], "INTERVAL_SWEEP"),
        (&["--dry-run", "seed=[1"], "unterminated list"),
        (&["--cfg", "job", "-m"], "Only one of"),
        (&["--dry-run", "+model=mlp"], "appears more than once"),
    ];
    for (args, want) in cases {
        ezflt(tmp.path())
            .args(*args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(*want))
            .stderr(predicate::str::contains("panicked").not());
    }
    assert!(
        !tmp.path().join("outputs").exists() && !tmp.path().join("multirun").exists(),
        "a failed composition created a directory"
    );
}

#[test]
fn yaml_errors_name_file_and_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    write(
        tmp.path(),
        "conf/config.yaml",
        "defaults:\n  - model: a\n  - _self_\nx: 1\n",
    );
    write(tmp.path(), "conf/model/a.yaml", "w: 1\nw: 2\n");
    ezflt(tmp.path())
        .args(["--cfg", "job"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("conf/model/a.yaml:2"))
        .stderr(predicate::str::contains("duplicate key"));
    write(tmp.path(), "conf/model/a.yaml", "w: [1\n");
    ezflt(tmp.path())
        .args(["--cfg", "job"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("conf/model/a.yaml:"));
    write(
        tmp.path(),
        "conf/model/a.yaml",
        "w: ${model.w2}\nw2: ${.w}\n",
    );
    ezflt(tmp.path())
        .args(["--cfg", "job", "--resolve"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cycle"));
    write(tmp.path(), "conf/model/a.yaml", "w: ???\n");
    ezflt(tmp.path())
        .args(["--dry-run", "hydra.run.dir=r_${model.w}"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("Missing mandatory value: model.w"));
}

#[test]
fn local_conf_takes_precedence_and_experiments_mount() {
    let tmp = tempfile::tempdir().expect("tmp");
    write(
        tmp.path(),
        "conf/config.yaml",
        "defaults:\n  - _self_\n  - experiment: null\nseed: 1\n",
    );
    write(
        tmp.path(),
        "experiments/e.yaml",
        "# @package _global_\nseed: 9\n",
    );
    ezflt(tmp.path())
        .args(["--cfg", "job", "experiment=e"])
        .assert()
        .success()
        .stdout("seed: 9\n");
}

#[test]
fn help_version_completions() {
    let tmp = tempfile::tempdir().expect("tmp");
    ezflt(tmp.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "model: cnn, conv_autoencoder, mean_field, mlp, sequential, two_layer_cnn",
        ))
        .stdout(predicate::str::contains("== Overrides =="));
    ezflt(tmp.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains("ezflt"));
    ezflt(tmp.path())
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_ezflt"));
    ezflt(tmp.path())
        .args(["--info", "defaults"])
        .assert()
        .success()
        .stdout(predicate::str::contains("model/mlp"));
}

/// `-q` drops status and progress lines but never results, warnings or errors; `--color`
/// colours `Error:`/`warning:` only when asked (the test's pipes are not terminals).
#[test]
fn quiet_and_color_flags() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = |args: &[&str]| {
        let o = ezflt(tmp.path()).args(args).output().expect("run");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // Loud, then quiet, for a run, a sweep and the plots.
    let (code, stdout, _) = out(&["epochs=1", "threads=1", "hydra.run.dir=loud"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("Run: ") && stdout.contains("epoch 0 (1/1)"),
        "{stdout}"
    );
    // The quiet flag goes before the subcommand, after it, or with train left out.
    for args in [
        &["-q", "epochs=1", "threads=1", "hydra.run.dir=q1"][..],
        &[
            "train",
            "--quiet",
            "epochs=1",
            "threads=1",
            "hydra.run.dir=q2",
        ],
        &["-q", "plot", "q1"],
        &[
            "-q",
            "-m",
            "epochs=1",
            "threads=1",
            "seed=0,1",
            "hydra.sweep.dir=sw",
        ],
    ] {
        let (code, stdout, stderr) = out(args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?} printed status lines under -q");
        assert_eq!(stderr, "", "{args:?}");
    }
    assert!(tmp.path().join("q1/summary.json").is_file());
    assert!(tmp.path().join("q2/plots/curves.png").is_file());
    assert!(tmp.path().join("sw/1/summary.json").is_file());
    // Results still print under -q.
    let (_, stdout, _) = out(&["-q", "--cfg", "job"]);
    assert!(stdout.contains("model:"), "{stdout}");
    // A warning still prints under -q: the archive budget is far too small.
    let (code, _, stderr) = out(&[
        "-q",
        "epochs=1",
        "threads=1",
        "hydra.run.dir=w",
        "tracker.max_bytes=1000",
    ]);
    assert_eq!(code, Some(0));
    assert!(stderr.starts_with("warning: tracking "), "{stderr}");

    let (code, _, plain) = out(&["lr=-1"]);
    assert_eq!(code, Some(1));
    assert!(plain.starts_with("Error: config key 'lr'"), "{plain}");
    let (_, _, never) = out(&["--color", "never", "lr=-1"]);
    assert_eq!(never, plain);
    let (_, _, always) = out(&["--color=always", "lr=-1"]);
    assert!(always.starts_with("\u{1b}["), "{always:?}");
    assert!(always.contains("Error:") && always.contains("config key 'lr'"));
    let (code, _, stderr) = out(&["--color", "sometimes", "lr=1"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("possible values: auto, always, never"),
        "{stderr}"
    );
}
