//! `checkpoint/`: model weights and optimizer state (burnpack) plus `state.json` with the
//! counters, by time or every N epochs, and at the end; saved to temp names, renamed as a set.

use crate::plan::rundir::{clean_temps, fsync, write_atomic};
use crate::train::trainer::{Boundary, Callback, EpochInfo, ModelView, OptimState};
use crate::train::CheckpointPolicy;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Checkpointer {
    dir: PathBuf,
    policy: CheckpointPolicy,
    /// The step of the last save, so a stop right after an epoch's save does not save twice.
    saved: Option<usize>,
    /// When the last save ended (or training started), and how long it took.
    last: Instant,
    cost: Duration,
}

/// A time-based save waits at least this many times its own last duration: I/O <= 2%.
const COST_FACTOR: u32 = 50;

pub const MODEL: &str = "model.bpk";
pub const OPTIM: &str = "optim.bpk";
pub const STATE: &str = "state.json";

impl Checkpointer {
    /// Also tidies what a killed run left in `checkpoint/` (see [`recover`]).
    pub fn new(run_dir: &Path, policy: CheckpointPolicy) -> Checkpointer {
        let dir = run_dir.join("checkpoint");
        // A failure here resurfaces, with its path, at the first save.
        let _ = recover(&dir);
        Checkpointer {
            dir,
            policy,
            saved: None,
            last: Instant::now(),
            cost: Duration::ZERO,
        }
    }

    /// Whether the policy asks for a save at the end of epoch `epoch` (1-based count).
    fn due(&self, epoch: usize) -> bool {
        match self.policy {
            CheckpointPolicy::Epochs(n) => n > 0 && epoch.is_multiple_of(n),
            CheckpointPolicy::Seconds(s) => {
                let since = self.last.elapsed();
                since.as_secs_f64() >= s && since >= self.cost * COST_FACTOR
            }
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
    /// Saves the state after `step` steps: `epoch` epochs and `batch` batches of the next.
    fn save(
        &mut self,
        (epoch, batch, step): (usize, usize, usize),
        model: &dyn ModelView,
        optim: &dyn OptimState,
    ) -> Result<()> {
        let started = Instant::now();
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = |i: usize| self.dir.join(SET[i].0);
        model.save(&path(0))?;
        optim.save(&path(1))?;
        let mut state = serde_json::json!({ "epoch": epoch, "batch": batch, "step": step });
        let streams = model.streams();
        if !streams.is_empty() {
            state["streams"] = serde_json::json!(streams);
        }
        std::fs::write(path(2), format!("{state}\n"))
            .with_context(|| format!("writing {}", path(2).display()))?;
        for i in 0..SET.len() {
            fsync(&path(i))?;
        }
        write_atomic(&self.dir.join(MARKER), "")?;
        recover(&self.dir)?;
        self.saved = Some(step);
        (self.last, self.cost) = (Instant::now(), started.elapsed());
        Ok(())
    }
}

impl Callback for Checkpointer {
    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        if !(e.last || self.due(e.epoch)) {
            return Ok(());
        }
        self.save((e.epoch, 0, e.step), e.model, e.optim)
    }

    /// Stopped (Ctrl-C, SIGTERM, a scheduler's time limit): save exactly there, mid-epoch
    /// too, so resume loses nothing.
    fn on_interrupt(&mut self, at: &Boundary) -> Result<()> {
        if self.saved == Some(at.step) {
            return Ok(());
        }
        self.save((at.epoch, at.batch, at.step), at.model, at.optim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_policy_waits_its_interval_and_fifty_times_the_last_save() {
        let tmp = std::env::temp_dir().join(format!("ezflt-ck-{}", std::process::id()));
        let mut c = Checkpointer::new(&tmp, CheckpointPolicy::Seconds(1.0));
        assert!(!c.due(1), "just started");
        c.last = Instant::now() - Duration::from_secs(2);
        assert!(c.due(1), "interval passed, saves are free");
        c.cost = Duration::from_secs(1);
        assert!(!c.due(1), "a 1 s save waits 50 s");
        c.last = Instant::now() - Duration::from_secs(51);
        assert!(c.due(1));
        let e = Checkpointer::new(&tmp, CheckpointPolicy::Epochs(3));
        assert!(!e.due(2) && e.due(3) && e.due(6));
        assert!(!Checkpointer::new(&tmp, CheckpointPolicy::Epochs(0)).due(3));
    }
}
