//! The library without the CLI, plots or W&B: it builds on its own and does not pull their
//! dependencies (clap, plotters, reqwest, prost), so a user who only wants the trainer and the
//! tracker compiles neither. Runs cargo itself, on the flex pass only (the LibTorch pass has
//! its own target directory, where a flex-only build would rebuild burn).

#[cfg(not(feature = "tch"))]
fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo {}:\n{text}", args.join(" "));
    text
}

#[test]
#[cfg(not(feature = "tch"))]
fn the_library_builds_without_the_cli_plots_or_wandb() {
    let tree = cargo(&[
        "tree",
        "--no-default-features",
        "--features",
        "flex",
        "-e",
        "normal",
        "--prefix",
        "none",
    ]);
    for heavy in ["clap ", "clap_complete ", "plotters ", "reqwest ", "prost "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(heavy)),
            "{heavy}is a dependency of the bare library:\n{tree}"
        );
    }
    assert!(tree.lines().any(|l| l.starts_with("burn ")), "{tree}");
    for features in ["flex", "flex,plot", "flex,wandb"] {
        let out = cargo(&[
            "build",
            "--release",
            "--lib",
            "--no-default-features",
            "--features",
            features,
        ]);
        assert!(!out.contains("warning:"), "features {features}:\n{out}");
    }
}
