//! Which way each metric improves: the one place `summary.json`'s `best` and W&B's
//! `best/...` ask, so AUROC is maximised, losses minimised, and so on.

const NONE: &[&str] = &["step", "epoch", "lr", "time_s", "_runtime", "_step"];

/// Whether a larger or a smaller value of a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Max,
    Min,
}

/// The direction of a metric by its name (`test_acc`, `semantic_auroc`, `train_loss`, ...).
/// Accuracy-, AUROC/AUC-, R²-, purity-, alignment- and IPR-like names are maximised; losses,
/// errors and everything else minimised; a weight's `change_` has no best. `None` for bookkeeping columns with no "best".
pub fn direction(name: &str) -> Option<Direction> {
    const MAX: &[&str] = &[
        "acc", "accuracy", "auroc", "auc", "purity", "align", "ipr", "f1", "r2",
    ];
    if NONE.contains(&name) {
        return None;
    }
    // The weight metrics (`tracker.metrics`): how far weights moved has no better side;
    // alignment with the ground truth is better high.
    if name.starts_with("change_") {
        return None;
    }
    if name.starts_with("align_") {
        return Some(Direction::Max);
    }
    let last = name.rsplit(['_', '/']).next().unwrap_or(name);
    if MAX.contains(&last) {
        Some(Direction::Max)
    } else {
        Some(Direction::Min)
    }
}

/// Columns that count rather than measure (`step`, `epoch`, `lr`, ...): never plotted
/// as a metric.
pub fn bookkeeping(name: &str) -> bool {
    NONE.contains(&name)
}

/// True when `new` beats `old` for this metric.
pub fn better(name: &str, new: f64, old: f64) -> bool {
    match direction(name) {
        Some(Direction::Max) => new > old,
        Some(Direction::Min) => new < old,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_and_accuracy_are_maximised_losses_minimised() {
        assert_eq!(direction("semantic_auroc"), Some(Direction::Max));
        assert_eq!(direction("test_acc"), Some(Direction::Max));
        assert_eq!(direction("robust_acc"), Some(Direction::Max));
        assert_eq!(direction("true_test_acc"), Some(Direction::Max));
        assert_eq!(direction("test_loss"), Some(Direction::Min));
        assert_eq!(direction("semantic_loss"), Some(Direction::Min));
        assert_eq!(direction("step"), None);
        assert_eq!(direction("change_0.weight"), None);
        assert_eq!(
            direction("align_weighted_w_directions"),
            Some(Direction::Max)
        );
        assert_eq!(direction("test_rel_mse"), Some(Direction::Min));
        assert!(better("nonsemantic_auroc", 0.9, 0.8));
        assert!(better("train_loss", 0.1, 0.2));
        assert!(!better("test_acc", 0.1, 0.2));
    }
}
