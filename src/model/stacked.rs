//! K copies of one architecture trained as one model (batched sweeps): every parameter gains
//! a leading member axis, inputs are `[K, batch, features]`, and one batched matmul serves all.

use super::autoencoder::ConvAutoencoder;
use super::cnn::Cnn;
use super::mean_field::MeanField;
use super::mlp::{Dense, Mlp};
use super::patch_cnn::PatchCnn;
use super::weights::{StateDict, WeightsSpec};
use super::{Activation, ModelIo, ModelSpec, Net, WithNet};
use anyhow::{bail, Result};
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

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

/// Builds each member as a single run would (the device seeded with the member's seed, the
/// model built on its autodiff twin, `init_from`'s tensors loaded and `freeze`'s parameters
/// fixed, as the trainer does; the members share `weights`) and stacks them.
pub fn build<W: WithStacked>(
    members: &[(&ModelSpec, u64)],
    weights: &WeightsSpec,
    io: &ModelIo,
    device: &Device,
    w: W,
) -> Result<W::Out> {
    struct Grab<'a>(&'a WeightsSpec, Option<&'a StateDict>);
    impl WithNet for Grab<'_> {
        type Out = Result<Box<dyn std::any::Any>>;
        fn run<M: Net>(self, model: M) -> Self::Out {
            let Grab(w, dict) = self;
            let model = match (dict, &w.init_from) {
                (Some(d), Some(p)) => super::weights::load(model, &w.model, d, p)?,
                _ => model,
            };
            Ok(Box::new(super::weights::freeze(model, &w.freeze)?))
        }
    }
    let dict = match &weights.init_from {
        Some(p) => Some(super::weights::read_state_dict(p)?),
        None => None,
    };
    let ad = device.clone().autodiff();
    let mut built = vec![];
    for (spec, seed) in members {
        device.seed(*seed);
        built.push(super::build(spec, io, &ad, Grab(weights, dict.as_ref()))??);
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
        Some(ModelSpec::Cnn { .. }) => Ok(w.run(StackedCnn::stack(&all::<Cnn>(built)?))),
        Some(ModelSpec::ConvAutoencoder { .. }) => Ok(w.run(StackedConvAutoencoder::stack(
            &all::<ConvAutoencoder>(built)?,
        ))),
        Some(ModelSpec::Sequential { .. }) => {
            Ok(w.run(super::stacked_sequential::StackedSequential::stack(
                &all::<super::sequential::Sequential>(built)?,
            )?))
        }
        None => bail!("a batch needs at least one member"),
    }
}

/// Stacks the members' values of one parameter along a new first axis, as a fresh leaf.
pub(super) fn stack_param<const D: usize, const E: usize>(
    ps: Vec<&Param<Tensor<D>>>,
) -> Param<Tensor<E>> {
    let train = ps.first().is_none_or(|p| p.is_require_grad());
    let t: Tensor<E> = Tensor::stack(ps.iter().map(|p| p.val()).collect(), 0);
    Param::from_tensor(t.detach()).set_require_grad(train)
}

/// The members' biases as one `[K, out]` parameter, or None when the layer has none.
pub(super) fn stack_bias(bs: Vec<Option<&Param<Tensor<1>>>>) -> Option<Param<Tensor<2>>> {
    bs.iter()
        .all(Option::is_some)
        .then(|| stack_param(bs.into_iter().flatten().collect()))
}

/// Member `k` of a stacked parameter, as a fresh leaf with the single model's shape.
pub(super) fn member_param<const E: usize, const D: usize>(
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
                bias: stack_bias(members.iter().map(|m| m.layers[i].bias.as_ref()).collect()),
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

/// A stacked layer with a weight and an optional bias per member.
#[derive(Module, Debug)]
pub struct StackedWeights<const D: usize> {
    pub weight: Param<Tensor<D>>,
    /// `[K, out]`.
    pub bias: Option<Param<Tensor<2>>>,
}

impl<const D: usize> StackedWeights<D> {
    fn stack<const E: usize>(
        ws: Vec<&Param<Tensor<E>>>,
        bs: Vec<Option<&Param<Tensor<1>>>>,
    ) -> Self {
        StackedWeights {
            weight: stack_param(ws),
            bias: stack_bias(bs),
        }
    }
}

impl StackedWeights<3> {
    /// `[K, B, in]` times each member's burn `Linear` weight `[K, in, out]`, plus its bias.
    fn linear(&self, x: Tensor<3>) -> Tensor<3> {
        let h = x.matmul(self.weight.val());
        match &self.bias {
            Some(b) => h + b.val().unsqueeze_dim::<3>(1),
            None => h,
        }
    }

    fn member_linear(&self, k: usize) -> Linear {
        Linear {
            weight: member_param(&self.weight, k),
            bias: self.bias.as_ref().map(|b| member_param(b, k)),
        }
    }
}

/// burn's `PaddingConfig2d::Same` as (start, end) pairs: PyTorch's rule, any extra row or
/// column at the end.
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = if out > 0 {
        ((out - 1) * stride + kernel).saturating_sub(size)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

/// The image CNN with a member axis. The members' convolutions run as one grouped
/// convolution (group k = member k's channels); the linear layers as batched matmuls.
#[derive(Module, Debug)]
pub struct StackedCnn {
    /// Each conv layer's `[K, out, in, kh, kw]` kernels and `[K, out]` biases.
    pub convs: Vec<StackedWeights<5>>,
    /// `[K, in, hidden]`.
    pub fc: StackedWeights<3>,
    /// `[K, hidden, outputs]`.
    pub head: StackedWeights<3>,
    /// Member 0 as built: the layers' settings (stride, padding, pooling) for every member.
    #[module(skip)]
    pub like: Cnn,
}

impl StackedCnn {
    fn stack(members: &[Cnn]) -> StackedCnn {
        let like = &members[0];
        let linear = |f: &dyn Fn(&Cnn) -> &Linear| {
            StackedWeights::stack(
                members.iter().map(|m| &f(m).weight).collect(),
                members.iter().map(|m| f(m).bias.as_ref()).collect(),
            )
        };
        StackedCnn {
            convs: (0..like.convs.len())
                .map(|i| {
                    StackedWeights::stack(
                        members.iter().map(|m| &m.convs[i].weight).collect(),
                        members.iter().map(|m| m.convs[i].bias.as_ref()).collect(),
                    )
                })
                .collect(),
            fc: linear(&|m| &m.fc),
            head: linear(&|m| &m.head),
            like: like.clone(),
        }
    }
}

impl Stacked for StackedCnn {
    type One = Cnn;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [k, b, _] = x.dims();
        let [c, h, w] = self.like.input;
        // Member k's channels are k C .. (k+1) C: one grouped convolution serves all.
        let mut t: Tensor<4> = x.swap_dims(0, 1).reshape([b, k * c, h, w]);
        for (l, (conv, &pool)) in self
            .convs
            .iter()
            .zip(self.like.convs.iter().zip(&self.like.pooled))
        {
            let [_, out, cin, kh, kw] = l.weight.dims();
            let [_, _, ih, iw] = t.dims();
            let PaddingConfig2d::Same = &conv.padding else {
                unreachable!("the CNN's convolutions use same padding")
            };
            let options = ConvOptions::new_with_padding(
                conv.stride,
                [
                    same_padding(kh, conv.stride[0], ih),
                    same_padding(kw, conv.stride[1], iw),
                ],
                conv.dilation,
                k * conv.groups,
            );
            t = conv2d(
                t,
                l.weight.val().reshape([k * out, cin, kh, kw]),
                l.bias.as_ref().map(|b| b.val().reshape([k * out])),
                options,
            );
            t = self.like.act.apply(t);
            if pool {
                t = self.like.pool.forward(t);
            }
        }
        let [_, ko, fh, fw] = t.dims();
        let flat: Tensor<3> = t.reshape([b, k, ko / k * fh * fw]).swap_dims(0, 1);
        self.head.linear(self.like.act.apply(self.fc.linear(flat)))
    }

    fn member(&self, k: usize) -> Cnn {
        Cnn {
            convs: self
                .convs
                .iter()
                .zip(&self.like.convs)
                .map(|(l, conv)| Conv2d {
                    weight: member_param(&l.weight, k),
                    bias: l.bias.as_ref().map(|b| member_param(b, k)),
                    ..conv.clone()
                })
                .collect(),
            fc: self.fc.member_linear(k),
            head: self.head.member_linear(k),
            ..self.like.clone()
        }
    }
}

/// The CAE with a member axis: kernels `[K, C, d]`; each member's winner-take-all decoding
/// over its own patches.
#[derive(Module, Debug)]
pub struct StackedConvAutoencoder {
    /// `[K, C, d]`.
    pub kernels: Param<Tensor<3>>,
    #[module(skip)]
    pub patches: usize,
}

impl StackedConvAutoencoder {
    fn stack(members: &[ConvAutoencoder]) -> StackedConvAutoencoder {
        StackedConvAutoencoder {
            kernels: stack_param(members.iter().map(|m| &m.kernels).collect()),
            patches: members[0].patches,
        }
    }
}

impl Stacked for StackedConvAutoencoder {
    type One = ConvAutoencoder;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [k, b, _] = x.dims();
        let [_, c, d] = self.kernels.dims();
        let p = self.patches;
        let w = self.kernels.val();
        let h =
            relu(x.reshape([k, b * p, d]).matmul(w.clone().swap_dims(1, 2))).reshape([k * b, p, c]);
        let winner = h.argmax(1).reshape([k * b * c]);
        let onehot: Tensor<2> = winner.one_hot::<2>(p).float();
        let mask = onehot
            .reshape([k * b, c, p])
            .swap_dims(1, 2)
            .reshape([k, b * p, c]);
        mask.matmul(w).reshape([k, b, p * d])
    }

    fn member(&self, k: usize) -> ConvAutoencoder {
        ConvAutoencoder {
            kernels: member_param(&self.kernels, k),
            patches: self.patches,
        }
    }
}
