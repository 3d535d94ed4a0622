//! `ezflt report`: the page holds every run and every figure, and reads in a real browser
//! (headless Chromium, from scripts/setup-chromium.sh; required where EZFLT_REQUIRE_ORACLE).

use std::path::Path;
use std::process::Command;

mod common;
use common::{ezflt, skip};

fn chromium() -> Option<&'static str> {
    let ok = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some("chromium")
    } else if std::env::var("EZFLT_REQUIRE_ORACLE").is_ok() {
        panic!(
            "EZFLT_REQUIRE_ORACLE is set but chromium is missing; run scripts/setup-chromium.sh"
        );
    } else {
        skip(
            "report in a browser",
            "no chromium (bash scripts/setup-chromium.sh); the page was checked as text only",
        );
        None
    }
}

fn headless(page: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
    ];
    args.extend_from_slice(extra);
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    Command::new("chromium")
        .args(&args)
        .arg(url)
        .output()
        .expect("chromium")
}

#[test]
fn a_sweep_report_has_every_run_and_figure_and_renders() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    ezflt(t)
        .args([
            "-q",
            "-m",
            "epochs=3",
            "threads=1",
            "lr=0.05,0.1",
            "seed=0,1",
            "hydra.sweep.dir=sw",
        ])
        .assert()
        .success();
    let out = ezflt(t).args(["report", "sw"]).assert().success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout),
        "sw/report.html\n"
    );
    let page = t.join("sw/report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: every image is a data URI, nothing is fetched.
    assert!(!html.contains("src=\"http"), "a network reference");
    assert_eq!(
        html.matches("<img ").count(),
        html.matches("src=\"data:image/png;base64,").count()
    );
    // Every run has its row and its section, with its status.
    for i in 0..4 {
        assert!(html.contains(&format!("<tr data-run=\"{i}\">")), "row {i}");
        assert!(html.contains(&format!("id=\"run-{i}\"")), "section {i}");
    }
    assert_eq!(
        html.matches("class=\"status completed\">completed</td>")
            .count(),
        4
    );
    // The configurations table: two rows (lr), seeds averaged.
    assert!(html.contains("<table class=\"sortable\" id=\"configurations\">"));
    // Figures: the sweep's (its metric against lr, the overlays) and each run's curves.
    let sweep_pngs = std::fs::read_dir(t.join("sw/plots"))
        .unwrap()
        .filter(|e| {
            let n = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .to_string();
            n.ends_with(".png") && n != "summary_table.png"
        })
        .count();
    let figures = html.matches("<figure>").count();
    assert_eq!(figures, sweep_pngs + 4, "{figures} figures");
    assert_eq!(html.matches("<figcaption>").count(), figures);

    let Some(_) = chromium() else { return };
    // The DOM a browser builds from it has every run row and every figure.
    let dom = headless(&page, &["--dump-dom"]);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("data-run=").count(), 4, "rows in the DOM");
    assert_eq!(
        dom.matches("<figure>").count(),
        figures,
        "figures in the DOM"
    );
    // A screenshot that is not blank: text, tables and figures put ink on most rows.
    let shot = t.join("shot.png");
    let s = headless(
        &page,
        &[
            "--window-size=1280,1600",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let d = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let spp = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let inked_rows = (0..h)
        .filter(|&y| {
            (0..w).any(|x| {
                let i = (y * w + x) * spp;
                buf[i] < 200 || buf[i + 1] < 200 || buf[i + 2] < 200
            })
        })
        .count();
    assert!(inked_rows > h / 3, "{inked_rows} of {h} rows have ink");
}

#[test]
fn a_run_report_embeds_all_its_figures_and_bad_dirs_are_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    ezflt(t)
        .args(["-q", "epochs=2", "threads=1", "hydra.run.dir=run"])
        .assert()
        .success();
    ezflt(t)
        .args(["report", "run", "--out", "pages"])
        .assert()
        .success();
    let html = std::fs::read_to_string(t.join("pages/report.html")).unwrap();
    let pngs = std::fs::read_dir(t.join("run/plots")).unwrap().count();
    assert_eq!(html.matches("<figure>").count(), pngs);
    assert!(html.contains("Config (.hydra/config.yaml)"));
    ezflt(t)
        .args(["report", "nowhere"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("nowhere is not a directory"));
}
