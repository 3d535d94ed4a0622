//! K copies of one architecture trained as one model (batched sweeps): every parameter gains
//! a leading member axis, inputs are `[K, batch, features]`, and one batched matmul serves all.

use super::mean_field::MeanField;
use super::mlp::{Dense, Mlp};
use super::patch_cnn::PatchCnn;
use super::{Activation, ModelIo, ModelSpec, Net, WithNet};
use anyhow::{bail, Result};
use burn::module::{Module, Param};
use burn::prelude::*;

/// A model with a member axis; member `k` is exactly the single model it was stacked from.
pub trait Stacked: Module + Clone + Send + core::fmt::Debug + 'static {
    /// One member, as a single run builds it.
    type One: Net;
    /// `[K, batch, features]` in, `[K, batch, outputs]` out.
    fn forward(&self, x: Tensor<3>) -> Tensor<3>;
    /// Member `k`'s parameters as its own model (a copy, detached from the graph).
    fn member(&self, k: usize) -> Self::One;
}

/// Something to do with the concrete stacked type (training is generic over it).
pub trait WithStacked {
    type Out;
    fn run<S: Stacked>(self, model: S) -> Self::Out;
}

/// Why `spec` cannot be stacked, or None when it can.
pub fn unsupported(spec: &ModelSpec) -> Option<String> {
    match spec {
        ModelSpec::Mlp { .. } | ModelSpec::TwoLayerCnn { .. } | ModelSpec::MeanField { .. } => None,
        other => Some(format!(
            "model={} has no batched form yet (mlp, two_layer_cnn and mean_field have)",
            other.name()
        )),
    }
}

/// Builds each member as a single run would (the device seeded with the member's seed, then
/// the model built on its autodiff twin) and stacks them.
pub fn build<W: WithStacked>(
    members: &[(&ModelSpec, u64)],
    io: &ModelIo,
    device: &Device,
    w: W,
) -> Result<W::Out> {
    struct Grab;
    impl WithNet for Grab {
        type Out = Box<dyn std::any::Any>;
        fn run<M: Net>(self, model: M) -> Self::Out {
            Box::new(model)
        }
    }
    let ad = device.clone().autodiff();
    let mut built = vec![];
    for (spec, seed) in members {
        device.seed(*seed);
        built.push(super::build(spec, io, &ad, Grab)?);
    }
    fn all<T: 'static>(built: Vec<Box<dyn std::any::Any>>) -> Result<Vec<T>> {
        built
            .into_iter()
            .map(|b| {
                b.downcast::<T>()
                    .map(|b| *b)
                    .map_err(|_| anyhow::anyhow!("the members of a batch are different models"))
            })
            .collect()
    }
    match members.first().map(|m| m.0) {
        Some(ModelSpec::Mlp { .. }) => Ok(w.run(StackedMlp::stack(&all::<Mlp>(built)?))),
        Some(ModelSpec::TwoLayerCnn { .. }) => {
            Ok(w.run(StackedPatchCnn::stack(&all::<PatchCnn>(built)?)))
        }
        Some(ModelSpec::MeanField { .. }) => {
            Ok(w.run(StackedMeanField::stack(&all::<MeanField>(built)?)))
        }
        Some(other) => bail!("{}", unsupported(other).unwrap_or_default()),
        None => bail!("a batch needs at least one member"),
    }
}

/// Stacks the members' values of one parameter along a new first axis, as a fresh leaf.
fn stack_param<const D: usize, const E: usize>(ps: Vec<&Param<Tensor<D>>>) -> Param<Tensor<E>> {
    let train = ps.first().is_none_or(|p| p.is_require_grad());
    let t: Tensor<E> = Tensor::stack(ps.iter().map(|p| p.val()).collect(), 0);
    Param::from_tensor(t.detach()).set_require_grad(train)
}

/// Member `k` of a stacked parameter, as a fresh leaf with the single model's shape.
fn member_param<const E: usize, const D: usize>(
    p: &Param<Tensor<E>>,
    k: usize,
) -> Param<Tensor<D>> {
    let train = p.is_require_grad();
    let t = p.val();
    let dims = t.dims();
    let mut shape = [0; D];
    shape.copy_from_slice(&dims[1..]);
    Param::from_tensor(t.narrow(0, k, 1).reshape(shape).detach()).set_require_grad(train)
}

#[derive(Module, Debug)]
pub struct StackedDense {
    /// `[K, out, in]`.
    pub weight: Param<Tensor<3>>,
    /// `[K, out]`.
    pub bias: Option<Param<Tensor<2>>>,
}

#[derive(Module, Debug)]
pub struct StackedMlp {
    pub layers: Vec<StackedDense>,
    #[module(skip)]
    pub act: Activation,
}

impl StackedMlp {
    fn stack(members: &[Mlp]) -> StackedMlp {
        let layers = (0..members[0].layers.len())
            .map(|i| StackedDense {
                weight: stack_param(members.iter().map(|m| &m.layers[i].weight).collect()),
                bias: members[0].layers[i].bias.as_ref().map(|_| {
                    stack_param(
                        members
                            .iter()
                            .filter_map(|m| m.layers[i].bias.as_ref())
                            .collect(),
                    )
                }),
            })
            .collect();
        StackedMlp {
            layers,
            act: members[0].act,
        }
    }
}

impl Stacked for StackedMlp {
    type One = Mlp;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let last = self.layers.len() - 1;
        let mut h = x;
        for (i, l) in self.layers.iter().enumerate() {
            h = h.matmul(l.weight.val().swap_dims(1, 2));
            if let Some(b) = &l.bias {
                h = h + b.val().unsqueeze_dim::<3>(1);
            }
            if i < last {
                h = self.act.apply(h);
            }
        }
        h
    }

    fn member(&self, k: usize) -> Mlp {
        Mlp {
            layers: self
                .layers
                .iter()
                .map(|l| Dense {
                    weight: member_param(&l.weight, k),
                    bias: l.bias.as_ref().map(|b| member_param(b, k)),
                })
                .collect(),
            act: self.act,
        }
    }
}

#[derive(Module, Debug)]
pub struct StackedPatchCnn {
    /// `[K, classes, m, d]`.
    pub filters: Param<Tensor<4>>,
    /// The fixed second layer, the same for every member: `[classes * m, outputs]`.
    pub head: Tensor<2>,
    #[module(skip)]
    pub act: Activation,
    #[module(skip)]
    pub patches: usize,
}

impl StackedPatchCnn {
    fn stack(members: &[PatchCnn]) -> StackedPatchCnn {
        StackedPatchCnn {
            filters: stack_param(members.iter().map(|m| &m.filters).collect()),
            head: members[0].head.clone(),
            act: members[0].act,
            patches: members[0].patches,
        }
    }
}

impl Stacked for StackedPatchCnn {
    type One = PatchCnn;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [k, b, _] = x.dims();
        let [_, j, m, d] = self.filters.dims();
        let p = self.patches;
        let w = self.filters.val().reshape([k, j * m, d]);
        let h = self
            .act
            .apply(x.reshape([k, b * p, d]).matmul(w.swap_dims(1, 2)));
        let pooled: Tensor<3> = h
            .reshape([k, b, p, j * m])
            .sum_dim(2)
            .reshape([k, b, j * m]);
        pooled.matmul(self.head.clone().unsqueeze::<3>())
    }

    fn member(&self, k: usize) -> PatchCnn {
        PatchCnn {
            filters: member_param(&self.filters, k),
            head: self.head.clone(),
            act: self.act,
            patches: self.patches,
        }
    }
}

#[derive(Module, Debug)]
pub struct StackedMeanField {
    /// `[K, m, d]`.
    pub w: Param<Tensor<3>>,
    /// `[K, outputs, m]`.
    pub a: Param<Tensor<3>>,
    #[module(skip)]
    pub act: Activation,
}

impl StackedMeanField {
    fn stack(members: &[MeanField]) -> StackedMeanField {
        StackedMeanField {
            w: stack_param(members.iter().map(|m| &m.w).collect()),
            a: stack_param(members.iter().map(|m| &m.a).collect()),
            act: members[0].act,
        }
    }
}

impl Stacked for StackedMeanField {
    type One = MeanField;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, _, d] = x.dims();
        let [_, _, m] = self.a.dims();
        let h = self
            .act
            .apply(x.matmul(self.w.val().swap_dims(1, 2)) / (d as f64).sqrt());
        h.matmul(self.a.val().swap_dims(1, 2)) / m as f64
    }

    fn member(&self, k: usize) -> MeanField {
        MeanField {
            w: member_param(&self.w, k),
            a: member_param(&self.a, k),
            act: self.act,
        }
    }
}
