//! Losses on model outputs: cross-entropy, logistic (labels -1/+1), MSE and hinge, plus
//! the correct-prediction count used for accuracy. Reconstruction compares with the input.

use super::LossKind;
use crate::data::Task;
use anyhow::{bail, Result};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};

/// Checks that `kind` fits `task`, or picks the natural loss when `kind` is `None`.
pub fn resolve(kind: Option<LossKind>, task: Task) -> Result<LossKind> {
    Ok(match (kind, task) {
        (None, Task::Classify { .. }) => LossKind::CrossEntropy,
        (None, Task::Binary) => LossKind::Logistic,
        (None, Task::Reconstruct | Task::Regress { .. }) | (Some(LossKind::Mse), _) => {
            LossKind::Mse
        }
        (Some(LossKind::CrossEntropy), Task::Classify { .. }) => LossKind::CrossEntropy,
        (Some(LossKind::Logistic), Task::Binary) => LossKind::Logistic,
        (Some(LossKind::Hinge), Task::Binary | Task::Classify { .. }) => LossKind::Hinge,
        (Some(k), t) => bail!(
            "loss={} does not fit this data (task: {}); use {}",
            name(k),
            match t {
                Task::Classify { .. } => "multi-class labels",
                Task::Binary => "binary labels -1/+1",
                Task::Reconstruct => "reconstruction",
                Task::Regress { .. } => "regression",
            },
            match t {
                Task::Classify { .. } => "loss=cross_entropy, mse or hinge",
                Task::Binary => "loss=logistic, mse or hinge",
                Task::Reconstruct | Task::Regress { .. } => "loss=mse",
            }
        ),
    })
}

pub fn name(k: LossKind) -> &'static str {
    match k {
        LossKind::CrossEntropy => "cross_entropy",
        LossKind::Logistic => "logistic",
        LossKind::Mse => "mse",
        LossKind::Hinge => "hinge",
    }
}

/// `log(1 + exp(z))` without overflow: `relu(z) + log1p(exp(-|z|))`.
fn softplus(z: Tensor<2>) -> Tensor<2> {
    relu(z.clone()) + z.abs().neg().exp().log1p()
}

/// Labels as the loss needs them: -1/+1 column for binary, one-hot for classes.
fn signed(y: Tensor<1, Int>) -> Tensor<2> {
    let [b] = y.dims();
    (y.float() * 2.0 - 1.0).reshape([b, 1])
}

/// Mean loss of `out` against labels `y`, or against `target`: the input when
/// reconstructing, the real targets in regression (PyTorch's `MSELoss`, a mean over every
/// value).
pub fn loss(
    kind: LossKind,
    task: Task,
    out: Tensor<2>,
    y: Tensor<1, Int>,
    target: Tensor<2>,
) -> Tensor<1> {
    per_sample(kind, task, out, y, target).mean()
}

/// Each sample's loss `[batch]`, whose mean is [`loss`]: a batched sweep averages it per
/// member.
pub fn per_sample(
    kind: LossKind,
    task: Task,
    out: Tensor<2>,
    y: Tensor<1, Int>,
    target: Tensor<2>,
) -> Tensor<1> {
    let rows = |t: Tensor<2>| -> Tensor<1> {
        let [b, _] = t.dims();
        t.reshape([b])
    };
    match (kind, task) {
        (_, Task::Reconstruct | Task::Regress { .. }) => {
            rows((out - target).powf_scalar(2.0).mean_dim(1))
        }
        (LossKind::Logistic, _) => rows(softplus(-(out * signed(y)))),
        (LossKind::Hinge, Task::Binary) => rows(relu(-(out * signed(y)) + 1.0)),
        (LossKind::Mse, Task::Binary) => rows((out - signed(y)).powf_scalar(2.0)),
        (LossKind::Mse, Task::Classify { classes }) => rows(
            (out - y.one_hot::<2>(classes).float())
                .powf_scalar(2.0)
                .mean_dim(1),
        ),
        (LossKind::Hinge, Task::Classify { classes }) => {
            // PyTorch's MultiMarginLoss: sum_{j != y} max(0, 1 - f_y + f_j) / C.
            let onehot = y.one_hot::<2>(classes).float();
            let fy = (out.clone() * onehot.clone()).sum_dim(1);
            let m = relu(out - fy + 1.0) * (onehot.neg() + 1.0);
            rows(m.sum_dim(1) / classes as f32)
        }
        (_, Task::Classify { .. }) => {
            let [_, c] = out.dims();
            let onehot = y.one_hot::<2>(c).float();
            rows((log_softmax(out, 1) * onehot).sum_dim(1).neg())
        }
        (_, Task::Binary) => rows(softplus(-(out * signed(y)))),
    }
}

/// Number of correct predictions in the batch (None for reconstruction and regression).
pub fn correct(task: Task, out: Tensor<2>, y: Tensor<1, Int>) -> Option<Tensor<1>> {
    hits(task, out, y).map(|h| h.sum())
}

/// 1 for each correctly predicted sample, 0 otherwise, `[batch]` (None for reconstruction
/// and regression).
pub fn hits(task: Task, out: Tensor<2>, y: Tensor<1, Int>) -> Option<Tensor<1>> {
    let [b] = y.dims();
    let pred = match task {
        Task::Reconstruct | Task::Regress { .. } => return None,
        Task::Binary => out.greater_elem(0.0).int().reshape([b]),
        Task::Classify { .. } => out.argmax(1).reshape([b]),
    };
    Some(pred.equal(y).float())
}
