//! `checkpoint/`: model weights and optimizer state (burnpack) plus `state.json` with the
//! counters, every N epochs and at the end; saved to temp names and renamed as one set.

use crate::plan::rundir::{clean_temps, fsync, write_atomic};
use crate::train::trainer::{Boundary, Callback, EpochInfo, ModelView};
use anyhow::{Context, Result};
use burn::optim::ModuleOptimizer;
use std::path::{Path, PathBuf};

pub struct Checkpointer {
    dir: PathBuf,
    every: usize,
    /// The step of the last save, so a stop right after an epoch's save does not save twice.
    saved: Option<usize>,
}

pub const MODEL: &str = "model.bpk";
pub const OPTIM: &str = "optim.bpk";
pub const STATE: &str = "state.json";

impl Checkpointer {
    /// Also tidies what a killed run left in `checkpoint/` (see [`recover`]).
    pub fn new(run_dir: &Path, every: usize) -> Checkpointer {
        let dir = run_dir.join("checkpoint");
        // A failure here resurfaces, with its path, at the first save.
        let _ = recover(&dir);
        Checkpointer {
            dir,
            every,
            saved: None,
        }
    }
}

/// The three files of a checkpoint, as (temp name, real name). They are renamed as a set
/// under a `COMMITTING` marker, so a kill between two renames is finished by [`recover`]
/// instead of pairing new weights with old counters.
const SET: [(&str, &str); 3] = [
    ("model.tmp.bpk", MODEL),
    ("optim.tmp.bpk", OPTIM),
    ("state.tmp.json", STATE),
];
const MARKER: &str = "COMMITTING";

/// Brings `checkpoint/` to a consistent state after a kill: a set whose marker was written is
/// renamed into place (roll forward); any other temp file is an unfinished save and removed.
pub fn recover(dir: &Path) -> Result<()> {
    if dir.join(MARKER).is_file() {
        for (tmp, real) in SET {
            let t = dir.join(tmp);
            if t.is_file() {
                std::fs::rename(&t, dir.join(real))
                    .with_context(|| format!("finishing the checkpoint in {}", dir.display()))?;
            }
        }
        std::fs::remove_file(dir.join(MARKER))
            .with_context(|| format!("finishing the checkpoint in {}", dir.display()))?;
    }
    clean_temps(dir);
    Ok(())
}

impl Checkpointer {
    fn save(
        &mut self,
        epoch: usize,
        step: usize,
        model: &dyn ModelView,
        optim: &ModuleOptimizer,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = |i: usize| self.dir.join(SET[i].0);
        model.save(&path(0))?;
        optim
            .save(path(1))
            .map_err(|err| anyhow::anyhow!("saving optimizer state: {err:?}"))?;
        let state = serde_json::json!({ "epoch": epoch, "step": step });
        std::fs::write(path(2), format!("{state}\n"))
            .with_context(|| format!("writing {}", path(2).display()))?;
        for i in 0..SET.len() {
            fsync(&path(i))?;
        }
        write_atomic(&self.dir.join(MARKER), "")?;
        recover(&self.dir)?;
        self.saved = Some(step);
        Ok(())
    }
}

impl Callback for Checkpointer {
    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        let due = e.last || (self.every > 0 && e.epoch.is_multiple_of(self.every));
        if !due {
            return Ok(());
        }
        self.save(e.epoch, e.step, e.model, e.optim)
    }

    /// Stopped between epochs: save exactly there, so resume loses nothing.
    fn on_interrupt(&mut self, at: &Boundary) -> Result<()> {
        if self.saved == Some(at.step) {
            return Ok(());
        }
        self.save(at.epoch, at.step, at.model, at.optim)
    }
}
