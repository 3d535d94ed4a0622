//! A run directory's own JSON files, typed: `summary.json` and the sweep job marker. Writers
//! and readers (inspect, plot, status, launchers, sync) share these structs and `RunStatus`.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::path::{Path, PathBuf};

/// `summary.json`: how the run ended and what it reached.
pub const SUMMARY: &str = "summary.json";
/// A sweep job's marker: running (with its pid) or how it ended.
pub const MARKER: &str = ".ezflt-job.json";

/// Where a run or sweep job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Prepared, not started.
    #[default]
    Pending,
    /// A live process holds it.
    Running,
    /// Trained to the end.
    Completed,
    /// The loss became NaN or infinite.
    Diverged,
    /// Stopped by a signal at a safe point; resumable.
    Interrupted,
    /// An error ended it (bad data, a failed write, ...).
    Failed,
    /// Its process died without saying how it ended.
    Crashed,
    /// The scheduler's time limit ended it.
    Timeout,
}

impl RunStatus {
    /// The lowercase name the files and tables use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Diverged => "diverged",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
            RunStatus::Crashed => "crashed",
            RunStatus::Timeout => "timeout",
        }
    }

    /// The process exit code a run that ended so reports: 0, 130 (interrupted) or 1.
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Completed => 0,
            RunStatus::Interrupted => 130,
            _ => 1,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A batched run's place in its batch: the jobs (sweep numbers) trained as one model.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Batched {
    /// The first member's job number: one name for the batch.
    pub group: usize,
    /// Every member's job number, in stacking order.
    pub members: Vec<usize>,
}

/// `summary.json`. Fields a failed run never reached stay at their defaults, and an older or
/// partial file still reads (every field has a default).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub backend: String,
    pub device: String,
    /// `f32` or `f64` (`dtype=`); empty in summaries written before it existed.
    pub dtype: String,
    pub threads: usize,
    pub seed: u64,
    pub model: String,
    pub data: String,
    pub loss: String,
    pub started_at: String,
    pub finished_at: String,
    /// Training time in seconds, across resumed sessions.
    pub duration_s: f64,
    pub sample_shape: Vec<usize>,
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: usize,
    pub epochs: usize,
    /// Why a completed run ended before its last epoch (`early_stopping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
    /// Set when the run trained as a member of a batched sweep (`hydra.launcher.batch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batched: Option<Batched>,
    /// Last value of every metric (`null` when not finite).
    #[serde(rename = "final")]
    pub last: Map<String, serde_json::Value>,
    /// Best value of every metric with a direction (`artifacts::metric`).
    pub best: Map<String, serde_json::Value>,
    pub num_params: usize,
    /// Parameter shapes by module path.
    pub params: Map<String, serde_json::Value>,
    pub ground_truth: Vec<GroundTruthShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_ms_median: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wandb: Option<WandbSummary>,
}

/// A ground-truth feature set's name and `[rows, dim]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GroundTruthShape {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Where the run's W&B log is and whether it reached the server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WandbSummary {
    pub mode: String,
    pub run_id: String,
    pub log: PathBuf,
    pub synced: bool,
    pub url: Option<String>,
}

impl Summary {
    /// The run's summary; `None` when it has none yet or it cannot be read.
    pub fn read(dir: &Path) -> Option<Summary> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(SUMMARY)).ok()?).ok()
    }

    /// Writes it atomically (temp name, then rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)? + "\n";
        crate::plan::rundir::write_atomic(&dir.join(SUMMARY), &text)
    }

    /// A final metric, when recorded and finite.
    pub fn last_metric(&self, name: &str) -> Option<f64> {
        self.last.get(name).and_then(|v| v.as_f64())
    }
}

/// The marker a sweep job's worker keeps in its directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Marker {
    pub status: RunStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// Why a job launched in a batch trained alone (`hydra.launcher.batch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unbatched: Option<String>,
}

impl Marker {
    /// The job's marker, if it has a readable one.
    pub fn read(dir: &Path) -> Option<Marker> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(MARKER)).ok()?).ok()
    }

    /// Writes it atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::plan::rundir::write_atomic(&dir.join(MARKER), &serde_json::to_string(self)?)
    }
}
