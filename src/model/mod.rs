//! Models built from config, each knowing only the `Device` it is given (burn 0.22 has no
//! backend type parameter). Parameters are named by module path (`layers.0.weight`).

pub mod activation;
pub mod autoencoder;
pub mod cnn;
pub mod mean_field;
pub mod mlp;
pub mod patch_cnn;
pub mod sequential;
pub mod stacked;
pub mod stacked_sequential;
pub mod weights;

pub use activation::Activation;

use crate::data::Task;
use anyhow::{bail, Result};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

/// What every model does: flat samples `[batch, features]` in, `[batch, outputs]` out.
/// Models reshape to their own view (patches, images) inside.
pub trait Net: Module + Clone + Send + core::fmt::Debug + 'static {
    /// `[batch, features]` in, `[batch, outputs]` out (logits, one score, or the reconstruction).
    fn forward(&self, x: Tensor<2>) -> Tensor<2>;

    /// Named intermediate outputs on `x`, each `[batch, units]` (flattened), by module path
    /// (`layers.0`): what `tracker.activations` records. None unless a model says.
    fn hidden(&self, x: Tensor<2>) -> Vec<(String, Tensor<2>)> {
        let _ = x;
        vec![]
    }

    /// Positions of the model's own random streams (how many masks each dropout layer has
    /// drawn): a checkpoint saves them and a resumed run continues from them, so it draws
    /// what an unbroken run would. None unless a model says.
    fn streams(&self) -> Vec<u64> {
        vec![]
    }

    /// Continues the streams from positions `streams` gave.
    fn set_streams(&self, positions: &[u64]) {
        let _ = positions;
    }
}

/// The model the user asked for, as plain values.
#[derive(Clone, Debug)]
pub enum ModelSpec {
    Mlp {
        widths: Vec<usize>,
        act: Activation,
        bias: bool,
        init_scale: Option<f64>,
        fixed_last_layer: bool,
    },
    TwoLayerCnn {
        filters: usize,
        act: Activation,
        init_scale: f64,
    },
    Cnn {
        channels: Vec<usize>,
        kernel: usize,
        hidden: usize,
        act: Activation,
    },
    ConvAutoencoder {
        kernels: Option<usize>,
        init_scale: f64,
    },
    /// `f(x) = (1/m) Σ a_r σ(w_r·x/√d)` with every weight drawn at `scale` (`model=mean_field`).
    MeanField {
        width: usize,
        scale: f64,
        symmetric: bool,
        act: Activation,
    },
    /// Layers written in config (`model=sequential`); `init` is the model-wide normal std.
    Sequential {
        layers: Vec<sequential::LayerSpec>,
        init: Option<f64>,
    },
}

impl ModelSpec {
    /// Whether the model reads its inputs as ids (`sequential` starting with `embedding`):
    /// the data must then be read before the run to check them.
    pub fn reads_ids(&self) -> bool {
        matches!(self, ModelSpec::Sequential { layers, .. }
            if matches!(layers.first(), Some(sequential::LayerSpec::Embedding { .. })))
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelSpec::Mlp { .. } => "mlp",
            ModelSpec::TwoLayerCnn { .. } => "two_layer_cnn",
            ModelSpec::Cnn { .. } => "cnn",
            ModelSpec::ConvAutoencoder { .. } => "conv_autoencoder",
            ModelSpec::Sequential { .. } => "sequential",
            ModelSpec::MeanField { .. } => "mean_field",
        }
    }
}

/// What the data says the model must accept and produce.
#[derive(Clone, Debug)]
pub struct ModelIo {
    /// Shape of one sample; the model receives it flattened.
    pub sample_shape: Vec<usize>,
    /// What the model predicts; `task.outputs(features)` is its output width.
    pub task: Task,
}

/// Something to do with the concrete model type (training is generic over it).
pub trait WithNet {
    type Out;
    fn run<M: Net>(self, model: M) -> Self::Out;
}

/// Checks that the model fits the data (shape and task) without building anything.
pub fn check(spec: &ModelSpec, io: &ModelIo) -> Result<()> {
    let shape = &io.sample_shape;
    let hint = |what: &str| {
        format!(
            "model={} needs {what}, but data gives samples of shape {:?}",
            spec.name(),
            shape
        )
    };
    let labelled = io.task != Task::Reconstruct;
    match spec {
        ModelSpec::Mlp { .. } if !labelled => bail!(
            "model=mlp predicts labels, but this data has none (task: reconstruct); use model=conv_autoencoder"
        ),
        ModelSpec::TwoLayerCnn { .. } if shape.len() != 2 => bail!(
            "{}; use data with patches (data=signal_noise) or model=mlp",
            hint("samples of shape [patches, dim]")
        ),
        ModelSpec::TwoLayerCnn { .. } if !labelled => bail!(
            "model=two_layer_cnn predicts labels, but this data has none; use model=conv_autoencoder"
        ),
        ModelSpec::Cnn { .. } if shape.len() != 3 => bail!(
            "{}; use image data (data=digits or data=mnist)",
            hint("images of shape [channels, height, width]")
        ),
        ModelSpec::Cnn { .. } if !labelled => {
            bail!("model=cnn predicts labels, but this data has none")
        }
        ModelSpec::ConvAutoencoder { .. } if shape.len() != 2 => bail!(
            "{}; use data=orthonormal_patches",
            hint("samples of shape [patches, dim]")
        ),
        ModelSpec::ConvAutoencoder { .. } if labelled => bail!(
            "model=conv_autoencoder reconstructs its input; use it with unlabelled patch data (data=orthonormal_patches)"
        ),
        ModelSpec::Sequential { layers, .. } => sequential_shapes(layers, io).map(|_| ()),
        ModelSpec::MeanField {
            width,
            symmetric: true,
            ..
        } if width % 2 == 1 || *width == 0 => bail!(
            "model.width: the doubling trick (model.symmetric=true) pairs neurons, so the width \
             must be even and positive, got {width}; use {} or model.symmetric=false",
            width + 1
        ),
        _ => Ok(()),
    }
}

/// A model that starts with `embedding` reads its inputs as ids: each must be a whole number
/// in `0..num`, in every split. Checked on the data before a run starts, since a stray id
/// would otherwise index outside the table mid-run.
pub fn check_ids(spec: &ModelSpec, ds: &crate::data::Dataset) -> Result<()> {
    let ModelSpec::Sequential { layers, .. } = spec else {
        return Ok(());
    };
    let Some(sequential::LayerSpec::Embedding { num, .. }) = layers.first() else {
        return Ok(());
    };
    let f = ds.features().max(1);
    let splits = [("train", &ds.train), ("test", &ds.test)]
        .into_iter()
        .chain(ds.extra.iter().map(|(n, s)| (n.as_str(), s)));
    for (name, split) in splits {
        if let Some(i) = split
            .x
            .iter()
            .position(|v| v.fract() != 0.0 || *v < 0.0 || *v >= *num as f32)
        {
            let v = split.x[i];
            bail!(
                "model.layers[0] (embedding) looks up integer ids in 0..{}, but the {name} \
                 inputs of data={} hold {v} at sample {}, position {}{}",
                num - 1,
                ds.name,
                i / f,
                i % f,
                if v.fract() != 0.0 || v < 0.0 {
                    "; the inputs must be token ids (whole numbers >= 0)"
                } else {
                    "; raise the embedding's num"
                }
            );
        }
    }
    Ok(())
}

/// The sample shape between `sequential` layers, checked against the data: the last must
/// be the task's output width.
fn sequential_shapes(layers: &[sequential::LayerSpec], io: &ModelIo) -> Result<Vec<Vec<usize>>> {
    let features: usize = io.sample_shape.iter().product();
    let outputs = io.task.outputs(features);
    let shapes = sequential::shapes(layers, &io.sample_shape, outputs, "model.layers")
        .map_err(|e| anyhow::anyhow!("{e} (data samples: {:?})", io.sample_shape))?;
    let last = shapes.last().expect("input");
    if *last != [outputs] {
        bail!(
            "model.layers: the last layer gives samples of shape {last:?}, but the task needs \
             [{outputs}] ({}); end with `flatten` and `linear: out`",
            match io.task {
                Task::Classify { classes } => format!("one logit for each of {classes} classes"),
                Task::Binary => "one score for a binary label".into(),
                Task::Reconstruct => "the input's size, to reconstruct it".into(),
                Task::Regress { outputs } => format!("{outputs} regression target(s)"),
            }
        );
    }
    Ok(shapes)
}

/// Names and shapes of the parameters `build` would create, computed without allocating
/// anything: the memory estimate and the tracker's layer check run on it before a run starts.
/// A unit test holds it equal to the built models' `param_names`.
pub fn param_shapes(spec: &ModelSpec, io: &ModelIo) -> Result<Vec<(String, Vec<usize>)>> {
    check(spec, io)?;
    let shape = &io.sample_shape;
    let features: usize = shape.iter().product();
    let outputs = io.task.outputs(features);
    let mut out = vec![];
    match spec {
        ModelSpec::Mlp {
            widths,
            bias,
            fixed_last_layer,
            ..
        } => {
            let mut dims = vec![features];
            dims.extend_from_slice(widths);
            dims.push(outputs);
            let n = dims.len() - 1;
            for i in 0..n {
                out.push((format!("layers.{i}.weight"), vec![dims[i + 1], dims[i]]));
                let fixed = *fixed_last_layer && i == n - 1 && n > 1;
                if *bias && !fixed {
                    out.push((format!("layers.{i}.bias"), vec![dims[i + 1]]));
                }
            }
        }
        ModelSpec::TwoLayerCnn { filters, .. } => {
            let groups = if io.task == Task::Binary { 2 } else { outputs };
            out.push(("filters".into(), vec![groups, *filters, shape[1]]));
        }
        ModelSpec::Cnn {
            channels,
            kernel,
            hidden,
            ..
        } => {
            let (mut c, mut h, mut w) = (shape[0], shape[1], shape[2]);
            for (i, &o) in channels.iter().enumerate() {
                out.push((format!("convs.{i}.weight"), vec![o, c, *kernel, *kernel]));
                out.push((format!("convs.{i}.bias"), vec![o]));
                c = o;
                if h >= 4 && w >= 4 {
                    h /= 2;
                    w /= 2;
                }
            }
            out.push(("fc.weight".into(), vec![c * h * w, *hidden]));
            out.push(("fc.bias".into(), vec![*hidden]));
            out.push(("head.weight".into(), vec![*hidden, outputs]));
            out.push(("head.bias".into(), vec![outputs]));
        }
        ModelSpec::ConvAutoencoder { kernels, .. } => {
            out.push((
                "kernels".into(),
                vec![autoencoder_kernels(*kernels, shape[1]), shape[1]],
            ));
        }
        ModelSpec::Sequential { layers, .. } => {
            let shapes = sequential_shapes(layers, io)?;
            sequential::param_shapes(layers, &shapes, outputs, "", &mut out);
        }
        ModelSpec::MeanField { width, .. } => {
            out.push(("w".into(), vec![*width, features]));
            out.push(("a".into(), vec![outputs, *width]));
        }
    }
    Ok(out)
}

/// The autoencoder's kernel count: given, or 1.2x the patch dimension as in the paper.
fn autoencoder_kernels(kernels: Option<usize>, dim: usize) -> usize {
    kernels
        .unwrap_or((1.2 * dim as f64).floor() as usize)
        .max(1)
}

/// Builds the model on `device` (seed the device first) and hands it to `w`.
pub fn build<W: WithNet>(spec: &ModelSpec, io: &ModelIo, device: &Device, w: W) -> Result<W::Out> {
    check(spec, io)?;
    let shape = &io.sample_shape;
    let features: usize = shape.iter().product();
    let outputs = io.task.outputs(features);
    Ok(match spec {
        ModelSpec::Mlp {
            widths,
            act,
            bias,
            init_scale,
            fixed_last_layer,
        } => {
            let m = mlp::Mlp::new(
                features,
                widths,
                outputs,
                *act,
                *bias,
                *init_scale,
                *fixed_last_layer,
                device,
            );
            w.run(touch(m))
        }
        ModelSpec::TwoLayerCnn {
            filters,
            act,
            init_scale,
        } => {
            let binary = io.task == Task::Binary;
            let groups = if binary { 2 } else { outputs };
            let m = patch_cnn::PatchCnn::new(
                shape[0],
                shape[1],
                groups,
                *filters,
                *act,
                *init_scale,
                binary,
                device,
            );
            w.run(touch(m))
        }
        ModelSpec::Cnn {
            channels,
            kernel,
            hidden,
            act,
        } => {
            let m = cnn::Cnn::new(
                [shape[0], shape[1], shape[2]],
                channels,
                *kernel,
                *hidden,
                outputs,
                *act,
                device,
            );
            w.run(touch(m))
        }
        ModelSpec::ConvAutoencoder {
            kernels,
            init_scale,
        } => {
            let c = autoencoder_kernels(*kernels, shape[1]);
            let m = autoencoder::ConvAutoencoder::new(shape[0], shape[1], c, *init_scale, device);
            w.run(touch(m))
        }
        ModelSpec::Sequential { layers, init } => {
            let shapes = sequential_shapes(layers, io)?;
            let m = touch(sequential::Sequential {
                layers: sequential::build_layers(layers, &shapes, outputs, *init, device),
                shapes,
            });
            m.seed_masks(device);
            w.run(m)
        }
        ModelSpec::MeanField {
            width,
            scale,
            symmetric,
            act,
        } => {
            let m = mean_field::MeanField::new(
                features, *width, outputs, *scale, *symmetric, *act, device,
            );
            w.run(touch(m))
        }
    })
}

/// Whether `t` lives on Flex, whose element-wise ops walk a strided operand index by index:
/// the MLP's layers pick their matmul form by it (LibTorch handles strides natively).
#[cfg(feature = "flex")]
pub fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    t.device() == Device::flex()
}

/// Without Flex compiled in, nothing is on it.
#[cfg(not(feature = "flex"))]
pub fn on_flex<const D: usize>(_t: &Tensor<D>) -> bool {
    false
}

/// `w` with its last two dims swapped, for `x·wᵀ` on Flex with weights stored `[out, in]`.
/// Its gradient passes back through a flatten, which Flex copies with a tiled transpose, so
/// the optimizer gets a contiguous gradient: a transposed one makes every element-wise op of
/// the step walk it index by index (12% of a 2048-wide MLP step). Other backends need only
/// the swap.
pub fn transposed<const D: usize>(w: Tensor<D>) -> Tensor<D> {
    let dims = w.dims();
    let n: usize = dims.iter().product();
    w.reshape([n]).reshape(dims).swap_dims(D - 2, D - 1)
}

/// A parameter drawn from `N(0, std^2)` (theory papers' small initialisation).
pub fn normal_param<const D: usize>(
    shape: [usize; D],
    std: f64,
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_tensor(drawn(shape, Distribution::Normal(0.0, std), device))
}

/// A parameter drawn from `U(-bound, bound)` (PyTorch's default for linear layers).
pub fn uniform_param<const D: usize>(
    shape: [usize; D],
    bound: f64,
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_tensor(drawn(shape, Distribution::Uniform(-bound, bound), device))
}

/// Drawn in float32, then cast to the device's float type: with `dtype=f64` a seed gives the
/// same initial weights as in float32 (as PyTorch's `model.double()` after seeding).
fn drawn<const D: usize>(shape: [usize; D], dist: Distribution, device: &Device) -> Tensor<D> {
    let t = Tensor::random(shape, dist, (device, burn::tensor::DType::F32));
    match device.settings().float_dtype {
        burn::tensor::FloatDType::F32 => t,
        other => t.cast(other),
    }
}

/// Runs every lazy initialiser now, in module order, so a seed fixes the weights.
fn touch<M: Net>(m: M) -> M {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let _ = p.val();
        }
    }
    m.visit(&mut Touch);
    m
}

/// The dotted-name segment a module adds: none for an enum's variant and for the `layers`
/// list of a `sequential` model or block, so their parameters read as PyTorch names them
/// (`0.weight`, `3.0.bias`); the field or index otherwise.
pub(crate) fn path_segment(name: &str, container: &str) -> Option<String> {
    let transparent = container.starts_with("Enum:")
        || (name == "layers" && matches!(container, "Struct:Sequential" | "Struct:Block"));
    // burn's BatchNorm calls PyTorch's weight and bias gamma and beta.
    let name = match (container, name) {
        ("Struct:BatchNorm", "gamma") => "weight",
        ("Struct:BatchNorm", "beta") => "bias",
        _ => name,
    };
    (!transparent).then(|| name.to_string())
}

/// A module path as a visitor walks it: the segments [`path_segment`] keeps.
#[derive(Default)]
pub(crate) struct ParamPath(Vec<Option<String>>);

impl ParamPath {
    pub(crate) fn enter(&mut self, name: &str, container: &str) {
        self.0.push(path_segment(name, container));
    }
    pub(crate) fn exit(&mut self) {
        self.0.pop();
    }
    pub(crate) fn dotted(&self) -> String {
        self.0
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Dotted names and shapes of a model's float parameters, in module order.
pub fn param_names<M: Module>(m: &M) -> Vec<(String, Vec<usize>)> {
    struct Names {
        path: ParamPath,
        out: Vec<(String, Vec<usize>)>,
    }
    impl ModuleVisitor for Names {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.out.push((self.path.dotted(), p.val().dims().to_vec()));
        }
    }
    let mut v = Names {
        path: ParamPath::default(),
        out: vec![],
    };
    m.visit(&mut v);
    v.out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands back the built model's parameter names and shapes.
    struct Names;
    impl WithNet for Names {
        type Out = Vec<(String, Vec<usize>)>;
        fn run<M: Net>(self, model: M) -> Self::Out {
            param_names(&model)
        }
    }

    /// The output shape of a batch of 5 zeros.
    struct Forward(usize);
    impl WithNet for Forward {
        type Out = Vec<usize>;
        fn run<M: Net>(self, model: M) -> Self::Out {
            let x = Tensor::<2>::zeros([5, self.0], &Device::flex());
            model.forward(x).dims().to_vec()
        }
    }

    #[test]
    fn param_shapes_match_the_built_models() {
        let act = Activation::Relu;
        let classify = |classes, shape: Vec<usize>| ModelIo {
            sample_shape: shape,
            task: Task::Classify { classes },
        };
        let cases = [
            (
                ModelSpec::Mlp {
                    widths: vec![7, 5],
                    act,
                    bias: true,
                    init_scale: None,
                    fixed_last_layer: false,
                },
                classify(3, vec![4]),
            ),
            (
                ModelSpec::Mlp {
                    widths: vec![6],
                    act,
                    bias: true,
                    init_scale: Some(0.1),
                    fixed_last_layer: true,
                },
                ModelIo {
                    sample_shape: vec![5],
                    task: Task::Binary,
                },
            ),
            (
                ModelSpec::TwoLayerCnn {
                    filters: 3,
                    act,
                    init_scale: 0.1,
                },
                ModelIo {
                    sample_shape: vec![2, 6],
                    task: Task::Binary,
                },
            ),
            (
                ModelSpec::Cnn {
                    channels: vec![2, 3],
                    kernel: 3,
                    hidden: 8,
                    act,
                },
                classify(10, vec![1, 8, 8]),
            ),
            (
                ModelSpec::ConvAutoencoder {
                    kernels: None,
                    init_scale: 0.01,
                },
                ModelIo {
                    sample_shape: vec![3, 5],
                    task: Task::Reconstruct,
                },
            ),
            (
                ModelSpec::Sequential {
                    layers: [
                        serde_json::json!({"conv1d": {"out": 3, "kernel": 2, "stride": 2}}),
                        serde_json::json!("batch_norm"),
                        serde_json::json!("tanh"),
                        serde_json::json!({"avgpool1d": 2}),
                        serde_json::json!({"residual": [{"linear": {"out": 2, "bias": false}}]}),
                        serde_json::json!("layer_norm"),
                        serde_json::json!("flatten"),
                        serde_json::json!({"linear": "out"}),
                    ]
                    .iter()
                    .map(|v| sequential::LayerSpec::parse(v).unwrap())
                    .collect(),
                    init: Some(0.1),
                },
                classify(4, vec![2, 8]),
            ),
            (
                ModelSpec::Sequential {
                    layers: [
                        serde_json::json!({"embedding": {"num": 7, "dim": 3}}),
                        serde_json::json!("flatten"),
                        serde_json::json!({"linear": "out"}),
                    ]
                    .iter()
                    .map(|v| sequential::LayerSpec::parse(v).unwrap())
                    .collect(),
                    init: None,
                },
                classify(7, vec![2]),
            ),
            (
                ModelSpec::MeanField {
                    width: 6,
                    scale: 2.0,
                    symmetric: true,
                    act: Activation::Relu,
                },
                ModelIo {
                    sample_shape: vec![4],
                    task: Task::Regress { outputs: 1 },
                },
            ),
        ];
        let device = Device::flex();
        for (spec, io) in cases {
            let built = build(&spec, &io, &device, Names).unwrap();
            assert_eq!(param_shapes(&spec, &io).unwrap(), built, "{spec:?}");
            // And the built model maps a batch to the task's outputs.
            let features: usize = io.sample_shape.iter().product();
            let out = build(&spec, &io, &device, Forward(features)).unwrap();
            assert_eq!(out, [5, io.task.outputs(features)], "{spec:?}");
        }
    }

    /// The doubling trick: the second half of the neurons cancels the first, so the
    /// network computes 0 at init whatever the scale.
    #[test]
    fn mean_field_starts_at_zero() {
        struct Out;
        impl WithNet for Out {
            type Out = Vec<f32>;
            fn run<M: Net>(self, model: M) -> Vec<f32> {
                let x =
                    Tensor::<2>::random([8, 5], Distribution::Normal(0.0, 1.0), &Device::flex());
                model
                    .forward(x)
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .unwrap()
            }
        }
        let io = ModelIo {
            sample_shape: vec![5],
            task: Task::Regress { outputs: 2 },
        };
        let spec = |symmetric| ModelSpec::MeanField {
            width: 10,
            scale: 30.0,
            symmetric,
            act: Activation::Relu,
        };
        let zero = build(&spec(true), &io, &Device::flex(), Out).unwrap();
        let not = build(&spec(false), &io, &Device::flex(), Out).unwrap();
        let max = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        // Exact up to the matmul's rounding of terms that cancel in pairs.
        assert!(
            max(&not) > 1.0 && max(&zero) < 1e-5 * max(&not),
            "{zero:?} {not:?}"
        );
        let odd = ModelSpec::MeanField {
            width: 7,
            scale: 1.0,
            symmetric: true,
            act: Activation::Relu,
        };
        let e = check(&odd, &io).unwrap_err().to_string();
        assert!(e.contains("model.width") && e.contains("even"), "{e}");
    }

    /// Dropout draws its masks from a stream the seed fixes (not the backend's): the same
    /// seed gives the same masks, another seed others; it drops about `p` of the units,
    /// scales the rest by `1 / (1 - p)`, and does nothing off the autodiff device.
    #[test]
    fn sequential_dropout_masks_follow_the_seed() {
        struct Masks;
        impl WithNet for Masks {
            type Out = (Vec<f32>, Vec<f32>, Vec<f32>);
            fn run<M: Net>(self, model: M) -> Self::Out {
                let read =
                    |t: Tensor<2>| t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
                let ad = Device::flex().autodiff();
                let ones = || Tensor::<2>::ones([50, 40], &ad);
                let first = read(model.forward(ones()));
                let second = read(model.forward(ones()));
                // The stream's position (what a checkpoint keeps): set back by one mask, the
                // layer draws the second mask again.
                assert_eq!(model.streams(), vec![2]);
                model.set_streams(&[1]);
                assert_eq!(
                    read(model.forward(ones())),
                    second,
                    "resumed after one mask"
                );
                assert_eq!(model.streams(), vec![2]);
                let eval = read(
                    model
                        .valid()
                        .forward(Tensor::ones([50, 40], &Device::flex())),
                );
                (first, second, eval)
            }
        }
        let io = ModelIo {
            sample_shape: vec![40],
            task: Task::Reconstruct,
        };
        let spec = ModelSpec::Sequential {
            layers: vec![sequential::LayerSpec::Dropout(0.25)],
            init: None,
        };
        let with = |seed| {
            let ad = Device::flex().autodiff();
            ad.seed(seed);
            build(&spec, &io, &ad, Masks).unwrap()
        };
        let (a, a2, eval) = with(3);
        let (b, _, _) = with(3);
        let (c, _, _) = with(4);
        assert_eq!(a, b, "the same seed, the same masks");
        assert_ne!(a, c, "another seed, other masks");
        assert_ne!(a, a2, "each step draws a fresh mask");
        assert!(eval.iter().all(|v| *v == 1.0), "no dropout at evaluation");
        let kept = a.iter().filter(|v| **v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.75).abs() < 0.05, "{kept}");
        assert!(a
            .iter()
            .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6));
    }
}
