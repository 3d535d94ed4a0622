//! `checkpoint/`: model weights and optimizer state (burnpack) plus `state.json` with the
//! counters, written to temp names and renamed, every N epochs and at the end.

use crate::train::trainer::{Callback, EpochInfo};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub struct Checkpointer {
    dir: PathBuf,
    every: usize,
}

pub const MODEL: &str = "model.bpk";
pub const OPTIM: &str = "optim.bpk";
pub const STATE: &str = "state.json";

impl Checkpointer {
    pub fn new(run_dir: &Path, every: usize) -> Checkpointer {
        Checkpointer {
            dir: run_dir.join("checkpoint"),
            every,
        }
    }
}

impl Callback for Checkpointer {
    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        let due = e.last || (self.every > 0 && e.epoch.is_multiple_of(self.every));
        if !due {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp_model = self.dir.join("model.tmp.bpk");
        let tmp_optim = self.dir.join("optim.tmp.bpk");
        e.model.save(&tmp_model)?;
        e.optim
            .save(&tmp_optim)
            .map_err(|err| anyhow::anyhow!("saving optimizer state: {err:?}"))?;
        std::fs::rename(&tmp_model, self.dir.join(MODEL))?;
        std::fs::rename(&tmp_optim, self.dir.join(OPTIM))?;
        // state.json last: it names a checkpoint only once both files are in place.
        let state = serde_json::json!({ "epoch": e.epoch, "step": e.step });
        crate::plan::rundir::write_atomic(&self.dir.join(STATE), &format!("{state}\n"))
    }
}
