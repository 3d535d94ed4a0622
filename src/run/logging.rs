//! A run's W&B side, start to finish: one handle the run holds, empty (and never made)
//! in a build without the `wandb` feature, so `run/mod.rs` reads the same either way.

use crate::artifacts::run::WandbSummary;
use crate::config::Node;
use crate::track::Tracker;
use crate::train::trainer::Callback;
use anyhow::Result;
use std::path::Path;

#[cfg(feature = "wandb")]
pub(crate) type Handle = std::sync::Arc<crate::wandb::Logger>;
/// No W&B in this build: a handle that cannot exist.
#[cfg(not(feature = "wandb"))]
pub(crate) type Handle = std::convert::Infallible;

/// Starts logging before training, so a rejected key or project stops the run now.
#[cfg(feature = "wandb")]
pub(crate) fn start(
    spec: &super::specs::RunSpec,
    job: &Node,
    dir: &Path,
    time_offset: f64,
    previous_log: Option<&Path>,
) -> Result<Option<Handle>> {
    let Some(w) = &spec.wandb else {
        return Ok(None);
    };
    Ok(crate::wandb::Logger::start(
        w,
        &crate::wandb::node_json(job),
        dir,
        &crate::wandb::identity(dir),
        time_offset,
        previous_log,
        super::stop_flag(),
    )?
    .map(std::sync::Arc::new))
}

#[cfg(not(feature = "wandb"))]
pub(crate) fn start(
    _spec: &super::specs::RunSpec,
    _job: &Node,
    _dir: &Path,
    _time_offset: f64,
    _previous_log: Option<&Path>,
) -> Result<Option<Handle>> {
    Ok(None)
}

/// The trainer callback for the history rows, and the tracker's statistics sent along.
#[cfg(feature = "wandb")]
pub(crate) fn callback(
    h: &Handle,
    log_every: usize,
    tracker: Option<&mut Tracker>,
) -> Box<dyn Callback> {
    if let Some(t) = tracker {
        let w = h.clone();
        t.stats = Some(Box::new(move |step, items| w.log(step, items)));
    }
    Box::new(crate::wandb::callback::WandbCallback::new(
        h.clone(),
        log_every,
    ))
}

#[cfg(not(feature = "wandb"))]
pub(crate) fn callback(h: &Handle, _: usize, _: Option<&mut Tracker>) -> Box<dyn Callback> {
    match *h {}
}

/// Ends the W&B run (exit code, `best/*` summary, figures) and says where its log is.
#[cfg(feature = "wandb")]
pub(crate) fn finish(
    h: &Handle,
    code: i32,
    best: &serde_json::Map<String, serde_json::Value>,
    plots: &[std::path::PathBuf],
) -> WandbSummary {
    let best: Vec<(String, f64)> = best
        .iter()
        .filter_map(|(k, v)| {
            v.as_f64()
                .map(|x| (format!("best/{}", crate::wandb::callback::metric_key(k)), x))
        })
        .collect();
    let o = h.finish(code, &best, plots);
    WandbSummary {
        mode: format!("{:?}", o.mode).to_lowercase(),
        run_id: o.run_id.clone(),
        log: o.log.clone(),
        synced: o.synced,
        url: o.url.clone(),
    }
}

#[cfg(not(feature = "wandb"))]
pub(crate) fn finish(
    h: &Handle,
    _: i32,
    _: &serde_json::Map<String, serde_json::Value>,
    _: &[std::path::PathBuf],
) -> WandbSummary {
    match *h {}
}
