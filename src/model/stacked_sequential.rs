//! `model=sequential` with a member axis (batched sweeps): every layer of the config-defined
//! model on `[K, batch, ...]`; convolutions run as one grouped convolution.

use super::mlp::Dense;
use super::sequential::{
    masked, pool, Block, Conv, Dropout, Embed, Layer, Masks, Norm, Op, OpKind, Sequential,
};
use super::stacked::{member_param, stack_bias, stack_param, Stacked, StackedDense};
use anyhow::Result;
use burn::module::{Flag, Module, Param, RunningState};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::module::{batch_norm_train, conv2d, embedding};
use burn::tensor::ops::ConvOptions;

/// A convolution's kernels `[K, out, in, k..]` (`E` = the single kernel's rank + 1) and
/// biases `[K, out]`.
#[derive(Module, Debug)]
pub struct StackedConv<const E: usize> {
    pub weight: Param<Tensor<E>>,
    pub bias: Option<Param<Tensor<2>>>,
    #[module(skip)]
    pub stride: usize,
    #[module(skip)]
    pub padding: usize,
}

/// Layer normalisation's `[K, d]` weights and biases.
#[derive(Module, Debug)]
pub struct StackedNorm {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<2>>,
    #[module(skip)]
    pub eps: f64,
}

/// Batch norm's `[K, C]` scales, shifts and running statistics, each member normalised by
/// its own batch's statistics.
#[derive(Module, Debug)]
pub struct StackedBatchNorm {
    pub gamma: Param<Tensor<2>>,
    pub beta: Param<Tensor<2>>,
    pub running_mean: RunningState<Tensor<2>>,
    pub running_var: RunningState<Tensor<2>>,
    /// The statistics before the last update: burn's `RunningState` reads them until it
    /// syncs (a tracker's snapshot does), and a member's copy must read what its run would.
    pub previous_mean: RunningState<Tensor<2>>,
    pub previous_var: RunningState<Tensor<2>>,
    /// Member 0's layer: momentum, epsilon and the training flag for every member.
    #[module(skip)]
    pub like: BatchNorm,
}

/// Every member's dropout, each member drawing from its own layer's stream, so its masks
/// are those of its run alone.
#[derive(Module, Debug)]
pub struct StackedDropout {
    /// Member 0's training flag (burn's `freeze` clears it): every member's.
    pub training: Param<Flag>,
    #[module(skip)]
    pub probs: Vec<f64>,
    #[module(skip)]
    pub masks: Vec<Masks>,
}

impl StackedDropout {
    /// Member `j`'s layer, drawing from its own stream.
    fn member(&self, j: usize) -> Dropout {
        Dropout {
            prob: self.probs[j],
            training: self.training.clone(),
            masks: self.masks[j].clone(),
        }
    }
}

#[derive(Module, Debug)]
pub struct StackedBlock {
    pub layers: Vec<StackedLayer>,
    #[module(skip)]
    pub shapes: Vec<Vec<usize>>,
}

// A handful of layers built once per batch: their sizes do not matter (burn's Module derive
// takes no Box, so the big variant stays inline, as in `sequential::Layer`).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum StackedLayer {
    /// `[K, num, dim]`.
    Embedding(Param<Tensor<3>>),
    Linear(StackedDense),
    Conv1d(StackedConv<4>),
    Conv2d(StackedConv<5>),
    Norm(StackedNorm),
    BatchNorm(StackedBatchNorm),
    Dropout(StackedDropout),
    Residual(StackedBlock),
    Op(Op),
}

#[derive(Module, Debug)]
pub struct StackedSequential {
    pub layers: Vec<StackedLayer>,
    #[module(skip)]
    pub shapes: Vec<Vec<usize>>,
}

impl StackedSequential {
    pub fn stack(members: &[Sequential]) -> Result<StackedSequential> {
        let layers: Vec<&[Layer]> = members.iter().map(|m| m.layers.as_slice()).collect();
        Ok(StackedSequential {
            layers: stack_layers(&layers)?,
            shapes: members[0].shapes.clone(),
        })
    }
}

/// Layer `i` of every member, or an error when a member's layer `i` is of another kind.
fn each<'a, T>(
    members: &[&'a [Layer]],
    i: usize,
    pick: impl Fn(&'a Layer) -> Option<&'a T>,
) -> Result<Vec<&'a T>> {
    members
        .iter()
        .map(|m| {
            m.get(i)
                .and_then(&pick)
                .ok_or_else(|| anyhow::anyhow!("the members of a batch are different models"))
        })
        .collect()
}

fn stack_layers(members: &[&[Layer]]) -> Result<Vec<StackedLayer>> {
    let first = members[0];
    let mut out = vec![];
    for (i, layer) in first.iter().enumerate() {
        out.push(match layer {
            Layer::Embedding(_) => {
                let e: Vec<&Embed> = each(members, i, |l| match l {
                    Layer::Embedding(e) => Some(e),
                    _ => None,
                })?;
                StackedLayer::Embedding(stack_param(e.iter().map(|e| &e.weight).collect()))
            }
            Layer::Linear(_) => {
                let d: Vec<&Dense> = each(members, i, |l| match l {
                    Layer::Linear(d) => Some(d),
                    _ => None,
                })?;
                StackedLayer::Linear(StackedDense {
                    weight: stack_param(d.iter().map(|d| &d.weight).collect()),
                    bias: stack_bias(d.iter().map(|d| d.bias.as_ref()).collect()),
                })
            }
            Layer::Conv1d(c) => {
                let cs: Vec<&Conv<3>> = each(members, i, |l| match l {
                    Layer::Conv1d(c) => Some(c),
                    _ => None,
                })?;
                StackedLayer::Conv1d(stack_conv(&cs, c.stride, c.padding))
            }
            Layer::Conv2d(c) => {
                let cs: Vec<&Conv<4>> = each(members, i, |l| match l {
                    Layer::Conv2d(c) => Some(c),
                    _ => None,
                })?;
                StackedLayer::Conv2d(stack_conv(&cs, c.stride, c.padding))
            }
            Layer::Norm(n) => {
                let ns: Vec<&Norm> = each(members, i, |l| match l {
                    Layer::Norm(n) => Some(n),
                    _ => None,
                })?;
                StackedLayer::Norm(StackedNorm {
                    weight: stack_param(ns.iter().map(|n| &n.weight).collect()),
                    bias: stack_param(ns.iter().map(|n| &n.bias).collect()),
                    eps: n.eps,
                })
            }
            Layer::Residual(b) => {
                let bs: Vec<&Block> = each(members, i, |l| match l {
                    Layer::Residual(b) => Some(b),
                    _ => None,
                })?;
                let inner: Vec<&[Layer]> = bs.iter().map(|b| b.layers.as_slice()).collect();
                StackedLayer::Residual(StackedBlock {
                    layers: stack_layers(&inner)?,
                    shapes: b.shapes.clone(),
                })
            }
            Layer::Op(op) => StackedLayer::Op(op.clone()),
            Layer::BatchNorm(like) => {
                let ns: Vec<&BatchNorm> = each(members, i, |l| match l {
                    Layer::BatchNorm(n) => Some(n),
                    _ => None,
                })?;
                let running = |f: &dyn Fn(&BatchNorm) -> Tensor<1>| {
                    RunningState::new(Tensor::stack(ns.iter().map(|n| f(n)).collect(), 0))
                };
                StackedLayer::BatchNorm(StackedBatchNorm {
                    gamma: stack_param(ns.iter().map(|n| &n.gamma).collect()),
                    beta: stack_param(ns.iter().map(|n| &n.beta).collect()),
                    running_mean: running(&|n| n.running_mean.value_sync()),
                    running_var: running(&|n| n.running_var.value_sync()),
                    previous_mean: running(&|n| n.running_mean.value_sync()),
                    previous_var: running(&|n| n.running_var.value_sync()),
                    like: like.clone(),
                })
            }
            Layer::Dropout(d) => {
                let ds: Vec<&Dropout> = each(members, i, |l| match l {
                    Layer::Dropout(d) => Some(d),
                    _ => None,
                })?;
                StackedLayer::Dropout(StackedDropout {
                    training: d.training.clone(),
                    probs: ds.iter().map(|d| d.prob).collect(),
                    masks: ds.iter().map(|d| d.masks.clone()).collect(),
                })
            }
        });
    }
    Ok(out)
}

fn stack_conv<const D: usize, const E: usize>(
    cs: &[&Conv<D>],
    stride: usize,
    padding: usize,
) -> StackedConv<E> {
    StackedConv {
        weight: stack_param(cs.iter().map(|c| &c.weight).collect()),
        bias: stack_bias(cs.iter().map(|c| c.bias.as_ref()).collect()),
        stride,
        padding,
    }
}

/// `sequential::run` on `[K, batch, prod(shapes[0])]`: each layer views every member's
/// samples in its own shape, as the single model does.
fn run(layers: &[StackedLayer], shapes: &[Vec<usize>], x: Tensor<3>) -> Tensor<3> {
    let mut h = x;
    for (i, l) in layers.iter().enumerate() {
        let s = &shapes[i];
        let [k, b, _] = h.dims();
        h = match l {
            StackedLayer::Embedding(w) => {
                let [_, num, dim] = w.dims();
                // Member k's ids index rows k num .. (k+1) num of the stacked tables.
                let ids: Tensor<3, Int> = h.int();
                let n = ids.dims()[2];
                let offsets = Tensor::<1, Int>::arange(0..k as i64, &ids.device())
                    .mul_scalar(num as i64)
                    .reshape([k, 1, 1]);
                let ids: Tensor<2, Int> = (ids + offsets).reshape([k * b, n]);
                let y = embedding(w.val().reshape([k * num, dim]), ids);
                y.reshape([k, b, n * dim])
            }
            StackedLayer::Linear(d) => {
                let last = *s.last().expect("checked");
                let rows = b * s.iter().product::<usize>() / last;
                let x: Tensor<3> = h.reshape([k, rows, last]);
                let mut y = x.matmul(d.weight.val().swap_dims(1, 2));
                if let Some(bias) = &d.bias {
                    y = y + bias.val().unsqueeze_dim::<3>(1);
                }
                let o = y.dims()[2];
                y.reshape([k, b, rows / b * o])
            }
            StackedLayer::Conv1d(c) => {
                // As a grouped conv2d of height 1: burn 0.22's grouped conv1d gets the
                // weight gradient wrong for stride > 1 (docs/upstream/burn-grouped-conv1d-
                // weight-grad.md); its grouped conv2d crops it right.
                let [_, out, cin, kw] = c.weight.dims();
                let w = c.weight.val().reshape([k, out, cin, 1, kw]);
                grouped_conv(h, [s[0], 1, s[1]], w, c, [1, c.stride], [0, c.padding])
            }
            StackedLayer::Conv2d(c) => grouped_conv(
                h,
                [s[0], s[1], s[2]],
                c.weight.val(),
                c,
                [c.stride; 2],
                [c.padding; 2],
            ),
            StackedLayer::Norm(n) => {
                let d = *s.last().expect("checked");
                let rows = b * s.iter().product::<usize>() / d;
                let x: Tensor<3> = h.reshape([k, rows, d]);
                let mean = x.clone().mean_dim(2);
                let centred = x - mean;
                let var = centred.clone().powf_scalar(2.0).mean_dim(2);
                let y = centred / (var + n.eps).sqrt();
                let y =
                    y * n.weight.val().unsqueeze_dim::<3>(1) + n.bias.val().unsqueeze_dim::<3>(1);
                y.reshape([k, b, rows / b * d])
            }
            StackedLayer::BatchNorm(n) => {
                // burn's BatchNorm in training, member by member on [batch, C, positions]:
                // each member's sums in its single run's order, bit for bit.
                let c = s[0];
                let rest = s.iter().product::<usize>() / c;
                let (mut outs, mut means, mut vars) = (vec![], vec![], vec![]);
                for j in 0..k {
                    let x: Tensor<3> = h.clone().narrow(0, j, 1).reshape([b, c, rest]);
                    let r = batch_norm_train(
                        x,
                        n.gamma.val().narrow(0, j, 1).reshape([c]),
                        n.beta.val().narrow(0, j, 1).reshape([c]),
                        n.like.epsilon,
                    );
                    outs.push(r.output.reshape([b, c * rest]));
                    means.push(r.mean.detach());
                    vars.push(r.variance.detach());
                }
                let m = n.like.momentum;
                let (old_mean, old_var) = (n.running_mean.value_sync(), n.running_var.value_sync());
                let mean = old_mean
                    .clone()
                    .mul_scalar(1.0 - m)
                    .add(Tensor::stack::<2>(means, 0).mul_scalar(m));
                let var = old_var
                    .clone()
                    .mul_scalar(1.0 - m)
                    .add(Tensor::stack::<2>(vars, 0).mul_scalar(m));
                for (state, value) in [
                    (&n.previous_mean, old_mean),
                    (&n.previous_var, old_var),
                    (&n.running_mean, mean),
                    (&n.running_var, var),
                ] {
                    state.update(value.detach());
                    let _ = state.value_sync();
                }
                Tensor::stack(outs, 0)
            }
            StackedLayer::Dropout(d) => {
                let active: Vec<bool> = (0..k).map(|j| d.member(j).active(&h)).collect();
                if !active.contains(&true) {
                    h
                } else {
                    // Member by member in member order, as each run draws alone.
                    let f = h.dims()[2];
                    let mut mask = Vec::with_capacity(k * b * f);
                    for (j, on) in active.into_iter().enumerate() {
                        match on {
                            true => mask.extend(d.masks[j].draw(b * f, d.probs[j])),
                            false => mask.extend(std::iter::repeat_n(1.0, b * f)),
                        }
                    }
                    masked(h, mask)
                }
            }
            StackedLayer::Residual(block) => {
                let y = run(&block.layers, &block.shapes, h.clone());
                h + y
            }
            StackedLayer::Op(op) => match &op.kind {
                OpKind::Act(a) => a.apply(h),
                OpKind::Same => h,
                OpKind::Pool { .. } => {
                    // Pooling is per sample and channel: members stay apart as extra samples.
                    let y = pool(&op.kind, h.reshape([k * b, s.iter().product::<usize>()]), s);
                    let f = y.dims()[1];
                    y.reshape([k, b, f])
                }
            },
        };
    }
    h
}

/// Every member's convolution as one grouped conv2d (group j = member j's channels):
/// `h` `[K, batch, prod(shape)]` with samples of `shape` `[C, H, W]`, kernels `w`
/// `[K, out, C, kh, kw]`; out `[K, batch, out * H' * W']`.
fn grouped_conv<const E: usize>(
    h: Tensor<3>,
    [c, hh, ww]: [usize; 3],
    w: Tensor<5>,
    layer: &StackedConv<E>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Tensor<3> {
    let [k, b, _] = h.dims();
    let [_, out, cin, kh, kw] = w.dims();
    let x: Tensor<4> = h.swap_dims(0, 1).reshape([b, k * c, hh, ww]);
    let y = conv2d(
        x,
        w.reshape([k * out, cin, kh, kw]),
        layer.bias.as_ref().map(|p| p.val().reshape([k * out])),
        ConvOptions::new(stride, padding, [1, 1], k),
    );
    let [_, _, oh, ow] = y.dims();
    y.reshape([b, k, out * oh * ow]).swap_dims(0, 1)
}

fn member_layers(layers: &[StackedLayer], k: usize) -> Vec<Layer> {
    layers
        .iter()
        .map(|l| match l {
            StackedLayer::Embedding(w) => Layer::Embedding(Embed {
                weight: member_param(w, k),
            }),
            StackedLayer::Linear(d) => Layer::Linear(Dense {
                weight: member_param(&d.weight, k),
                bias: d.bias.as_ref().map(|b| member_param(b, k)),
            }),
            StackedLayer::Conv1d(c) => Layer::Conv1d(Conv {
                weight: member_param(&c.weight, k),
                bias: c.bias.as_ref().map(|b| member_param(b, k)),
                stride: c.stride,
                padding: c.padding,
            }),
            StackedLayer::Conv2d(c) => Layer::Conv2d(Conv {
                weight: member_param(&c.weight, k),
                bias: c.bias.as_ref().map(|b| member_param(b, k)),
                stride: c.stride,
                padding: c.padding,
            }),
            StackedLayer::Norm(n) => Layer::Norm(Norm {
                weight: member_param(&n.weight, k),
                bias: member_param(&n.bias, k),
                eps: n.eps,
            }),
            StackedLayer::BatchNorm(n) => {
                // As the single run holds them: the previous statistics, and the last
                // update waiting for a sync.
                let slice = |t: Tensor<2>| {
                    let c = t.dims()[1];
                    t.narrow(0, k, 1).reshape([c]).detach()
                };
                let state = |previous: &RunningState<Tensor<2>>, now: &RunningState<Tensor<2>>| {
                    let s = RunningState::new(slice(previous.value()));
                    s.update(slice(now.value()));
                    s
                };
                Layer::BatchNorm(BatchNorm {
                    gamma: member_param(&n.gamma, k),
                    beta: member_param(&n.beta, k),
                    running_mean: state(&n.previous_mean, &n.running_mean),
                    running_var: state(&n.previous_var, &n.running_var),
                    ..n.like.clone()
                })
            }
            StackedLayer::Dropout(d) => Layer::Dropout(d.member(k)),
            StackedLayer::Residual(b) => Layer::Residual(Block {
                layers: member_layers(&b.layers, k),
                shapes: b.shapes.clone(),
            }),
            StackedLayer::Op(op) => Layer::Op(op.clone()),
        })
        .collect()
}

impl Stacked for StackedSequential {
    type One = Sequential;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        run(&self.layers, &self.shapes, x)
    }

    fn member(&self, k: usize) -> Sequential {
        Sequential {
            layers: member_layers(&self.layers, k),
            shapes: self.shapes.clone(),
        }
    }
}
