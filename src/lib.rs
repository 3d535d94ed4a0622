//! ezflt: track how chosen layers of any burn model move during training, and run
//! Hydra-composed sweeps of such models with tracking, plots and W&B — as a CLI or a library.
//!
//! Three ways in, from least to most of ezflt:
//! - [`FeatureTracker`] in your own training loop: `on_epoch_start` / `on_batch_end`, then
//!   [`Archive`] to read the snapshots back and [`plots`] to draw them.
//! - [`Trainer`] over your [`Net`], with the built-in [`callbacks`] (metrics files, progress,
//!   checkpoints, feature tracking, W&B).
//! - [`App`]: your own `ezflt` binary with your models and datasets registered, and the whole
//!   CLI (composition, `--multirun`, launchers, tracking, plots, W&B) around them.
//!
//! The same `features.npz`, `metrics.jsonl` and figures come out of all three.

#![warn(missing_docs)]
// Without the CLI, its machinery (composition, launchers, the registry's built-ins) is still
// compiled but unused; the default build lints it in full.
#![cfg_attr(not(feature = "cli"), allow(dead_code, unused_imports, unused_macros))]

#[macro_use]
mod shell;
mod app;
mod artifacts;
mod backend;
#[cfg(feature = "cli")]
mod cli;
mod config;
mod data;
#[cfg(test)]
mod fuzz;
mod launch;
mod model;
mod plan;
mod plot;
#[cfg(feature = "cli")]
mod report;
mod run;
mod track;
mod train;
#[cfg(feature = "wandb")]
mod wandb;

pub use app::{App, Config};
pub use artifacts::archive::{Archive, Feature, Snapshot};
pub use data::{Dataset, GroundTruth, Split, Task};
pub use model::{ModelIo, Net};
pub use track::feature_tracker::{FeatureTracker, TrackOptions};
pub use track::schedule::Schedule;
pub use train::api::{Fitted, Loss, Optimizer, Trainer};

/// Figures of a run directory, drawn by the renderers `ezflt plot` uses (feature `plot`).
#[cfg(feature = "plot")]
pub mod plots {
    pub use crate::plot::api::{
        alignment, all, comparison, curves, evolution, heatmap, overlay, summary_table, At, Stat,
        Style,
    };
    pub use crate::plot::{Band, Overlay};
}

/// Hooks a [`Trainer`] calls, what they are given, and the built-in ones.
pub mod callbacks {
    #[cfg(feature = "wandb")]
    pub use crate::train::api::Wandb;
    pub use crate::train::api::{Checkpoints, FeatureTracking, MetricsFiles, ProgressBar};
    pub use crate::train::trainer::{
        Boundary, Callback, EpochInfo, HostTensor, ModelView, Outcome, StartInfo, Status, StepInfo,
    };
}

/// One paragraph: the outermost message, then its causes, no backtrace; words over 200
/// characters (a pasted array) are cut.
pub(crate) fn format_error(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        s.push_str(&format!("\n  caused by: {cause}"));
    }
    shell::clip(&s)
}
