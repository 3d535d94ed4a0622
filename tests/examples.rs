//! The three examples, run as a user runs them, and a registered model through a sweep:
//! its archive and figures have the same structure as a built-in model's.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

fn run(mut c: std::process::Command) -> String {
    let out = c.output().expect("example runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "example failed:\n{text}");
    text
}

#[test]
fn basic_usage_tracks_a_hand_written_loop_and_plots_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = common::example("basic_usage", tmp.path());
    c.arg("run");
    let out = run(c);
    assert!(
        out.contains("41 snapshots of hidden.weight [16, 10]"),
        "{out}"
    );
    assert!(out.contains("at the end of epoch 5 (step 96)"), "{out}");
    for f in [
        "evolution_hidden.weight.png",
        "heatmap_hidden.weight_step160.png",
        "alignment_hidden.weight_teacher.png",
    ] {
        assert!(tmp.path().join("run/plots").join(f).is_file(), "{f}\n{out}");
    }
}

#[test]
fn trainer_callbacks_writes_what_a_cli_run_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = common::example("trainer_callbacks", tmp.path());
    c.arg("run")
        .env("WANDB_MODE", "online")
        .env_remove("WANDB_API_KEY");
    let out = run(c);
    let dir = tmp.path().join("run");
    assert!(out.contains("Completed after 190 steps"), "{out}");
    for f in [
        "metrics.jsonl",
        "metrics.csv",
        "features.npz",
        "checkpoint/model.bpk",
        "plots/comparison_first.weight.png",
        "plots/heatmap_first.weight_step190.png",
        "plots/curves.png",
    ] {
        assert!(dir.join(f).is_file(), "{f}\n{out}");
    }
    // `.offline()` journals whatever WANDB_MODE says; the journal is one `ezflt sync` reads.
    let runs: Vec<_> = std::fs::read_dir(dir.join("wandb"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    let name = runs[0].file_name().to_string_lossy().to_string();
    assert!(name.starts_with("offline-run-"), "{name}");
    let sync = common::ezflt(tmp.path())
        .args(["sync", "--dry-run", "run"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&sync.stdout).to_string() + &String::from_utf8_lossy(&sync.stderr);
    assert!(sync.status.success(), "{text}");
    assert!(text.contains("would be uploaded"), "{text}");
}

/// Figure names with the tracked tensor's name taken out, and archive members likewise.
fn shape_of_run(run: &Path, tensor: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let figures = std::fs::read_dir(run.join("plots"))
        .unwrap()
        .flatten()
        .map(|e| {
            let n = e.file_name().to_string_lossy().replace(tensor, "T");
            // The heatmap is named by its step, which depends on the data size.
            match n.find("_step") {
                Some(i) => n[..i].to_string(),
                None => n,
            }
        })
        .collect();
    let f = std::fs::File::open(run.join("features.npz")).unwrap();
    let members = zip::ZipArchive::new(f)
        .unwrap()
        .file_names()
        .map(|n| n.replace(tensor, "T"))
        .filter(|n| {
            n.starts_with("T") || n.contains(".T.") || !n.contains('.') || n.ends_with(".npy")
        })
        .collect();
    (figures, members)
}

#[test]
fn a_registered_model_sweeps_like_a_built_in_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = common::example("custom_app", tmp.path());
    c.args([
        "model=my_net",
        "-m",
        "seed=0,1",
        "epochs=2",
        "hydra.sweep.dir=custom",
        "tracker.layers=[first.weight]",
    ]);
    let out = run(c);
    assert!(out.contains("2 completed, 0 failed"), "{out}");
    common::ezflt(tmp.path())
        .args([
            "-m",
            "seed=0,1",
            "epochs=2",
            "hydra.sweep.dir=builtin",
            "model.widths=[32]",
            "tracker.layers=[layers.0.weight]",
        ])
        .assert()
        .success();
    for job in ["0", "1"] {
        let mine = tmp.path().join("custom").join(job);
        let theirs = tmp.path().join("builtin").join(job);
        assert_eq!(common::summary(&mine)["model"], "my_net");
        assert_eq!(common::summary(&mine)["status"], "completed");
        assert_eq!(
            shape_of_run(&mine, "first.weight"),
            shape_of_run(&theirs, "layers.0.weight"),
            "the registered model's archive and figures differ from the built-in one's"
        );
    }
    let a = std::fs::read(tmp.path().join("custom/0/features.npz")).unwrap();
    let b = std::fs::read(tmp.path().join("custom/1/features.npz")).unwrap();
    assert_ne!(a, b, "seeds 0 and 1 initialise differently");
}

#[test]
fn a_registered_model_is_listed_suggested_and_checked_like_a_built_in_one() {
    let tmp = tempfile::tempdir().unwrap();
    let help = common::example("custom_app", tmp.path())
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains(
            "model: cnn, conv_autoencoder, mean_field, mlp, my_net, sequential, two_layer_cnn"
        ),
        "{help}"
    );
    assert!(help.contains("noisy_parity"), "{help}");

    let typo = common::example("custom_app", tmp.path())
        .arg("model=my_nte")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(1));
    assert!(e.contains("Did you mean 'model=my_net'?"), "{e}");

    let bad = common::example("custom_app", tmp.path())
        .args(["model=my_net", "model.width=wide", "--dry-run"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{e}");
    assert!(
        e.contains("model.width") && e.contains("command-line override") && e.contains("expected"),
        "{e}"
    );

    // The registered dataset, and the registered defaults replaced by a file of the same
    // name in a config directory of the user's (`--config-dir`, or a whole `conf/`).
    std::fs::create_dir_all(tmp.path().join("mine/model")).unwrap();
    std::fs::write(
        tmp.path().join("mine/model/my_net.yaml"),
        "name: my_net\nwidth: 3\ninit_scale: 0.1\n",
    )
    .unwrap();
    let mut c = common::example("custom_app", tmp.path());
    c.args([
        "--config-dir",
        "mine",
        "model=my_net",
        "data=noisy_parity",
        "epochs=1",
        "hydra.run.dir=parity",
        "plot=none",
    ]);
    run(c);
    let s = common::summary(&tmp.path().join("parity"));
    assert_eq!(s["data"], "noisy_parity");
    // A registered dataset's own serde struct: wrong types and unknown keys are named.
    let bad = common::example("custom_app", tmp.path())
        .args(["data=noisy_parity", "data.n=many", "--dry-run"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(
        e.contains("config key 'data.n' (set at command-line override 'data.n=many')"),
        "{e}"
    );
    let bad = common::example("custom_app", tmp.path())
        .args(["data=noisy_parity", "+data.noise=1", "--dry-run"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(
        e.contains("config key 'data.noise'") && e.contains("unknown field `noise`"),
        "{e}"
    );
    assert_eq!(
        s["params"]["first.weight"],
        serde_json::json!([3, 10]),
        "{s}"
    );
}

#[test]
fn the_readme_shows_basic_usage_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("examples/basic_usage.rs")).unwrap();
    assert!(
        readme.contains(&format!("```rust\n{example}```")),
        "README's library example differs from examples/basic_usage.rs: paste the file in again"
    );
}

/// What bash completes after `words` (the last one being typed), with `bin`'s script loaded.
fn bash_complete(script: &Path, fun: &str, words: &[&str]) -> Vec<String> {
    let line = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMPREPLY=(); \
         {fun}_with_overrides x \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &line])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn registered_names_complete_in_bash() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::example("custom_app", tmp.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = tmp.path().join("custom_app.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // Bash splits `model=my` at `=`: the words are `model`, `=`, `my`.
    assert_eq!(
        bash_complete(&script, "_custom_app", &["custom_app", "model", "=", "my"]),
        ["my_net"]
    );
    let data = bash_complete(&script, "_custom_app", &["custom_app", "data", "="]);
    assert!(
        data.contains(&"noisy_parity".to_string()) && data.contains(&"xor".to_string()),
        "{data:?}"
    );
    let any = bash_complete(&script, "_custom_app", &["custom_app", "-m", "mod"]);
    assert!(
        any.contains(&"model=my_net".to_string()) && any.contains(&"model=mlp".to_string()),
        "{any:?}"
    );

    // The plain ezflt has only the built-in names.
    let out = common::ezflt(tmp.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let builtin = tmp.path().join("ezflt.bash");
    std::fs::write(&builtin, &out.stdout).unwrap();
    let models = bash_complete(&builtin, "_ezflt", &["ezflt", "model", "="]);
    assert_eq!(
        models,
        [
            "cnn",
            "conv_autoencoder",
            "mean_field",
            "mlp",
            "sequential",
            "two_layer_cnn"
        ]
    );
}
