//! The trainer side of W&B logging: training rows every `log_every` steps and evaluation
//! rows per epoch, under the names W&B users expect (`train/loss`, `test/acc`, `lr`, `epoch`).

use super::Logger;
use crate::train::callbacks::metrics::LossWindow;
use crate::train::trainer::{Callback, EpochInfo, StepInfo};
use anyhow::Result;
use std::sync::Arc;

pub struct WandbCallback {
    logger: Arc<Logger>,
    log_every: usize,
    window: LossWindow,
}

impl WandbCallback {
    pub fn new(logger: Arc<Logger>, log_every: usize) -> WandbCallback {
        WandbCallback {
            logger,
            log_every: log_every.max(1),
            window: LossWindow::default(),
        }
    }
}

/// `test_acc` -> `test/acc`, `train_loss` -> `train/loss`; other names unchanged.
pub fn metric_key(name: &str) -> String {
    match name.split_once('_') {
        Some((split @ ("train" | "test" | "val"), rest)) => format!("{split}/{rest}"),
        _ => name.to_string(),
    }
}

impl Callback for WandbCallback {
    fn on_batch_end(&mut self, s: &StepInfo) -> Result<()> {
        self.window.add(s.loss);
        if s.step.is_multiple_of(self.log_every) {
            let mut row = vec![
                ("train/loss".to_string(), self.window.take()),
                ("lr".into(), s.lr),
                ("epoch".into(), s.epoch as f64),
            ];
            if let Some(a) = s.acc {
                row.push(("train/acc".into(), a));
            }
            self.logger.log(s.step, &row);
        }
        Ok(())
    }

    fn on_epoch_end(&mut self, e: &EpochInfo) -> Result<()> {
        if e.eval.is_empty() {
            return Ok(());
        }
        let row: Vec<(String, f64)> = e
            .eval
            .iter()
            .map(|(k, v)| (metric_key(k), *v))
            .chain(std::iter::once(("epoch".to_string(), (e.epoch - 1) as f64)))
            .collect();
        self.logger.log(e.step, &row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_names() {
        assert_eq!(super::metric_key("test_acc"), "test/acc");
        assert_eq!(super::metric_key("robust_acc"), "robust_acc");
        assert_eq!(super::metric_key("train_loss"), "train/loss");
    }
}
