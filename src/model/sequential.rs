//! `model=sequential`: a model written in config as a list of layers, with parameters named
//! as PyTorch's `nn.Sequential` names them (`0.weight`, `2.bias`; `3.0.weight` in a block).

use super::mlp::Dense;
use super::{normal_param, uniform_param, Activation, Net};
use burn::module::{Flag, Module, Param};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::module::{
    avg_pool1d, avg_pool2d, conv1d, conv2d, embedding, max_pool1d, max_pool2d,
};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// A layer's output width: a number, or `out`, the width the task needs (classes, 1 for a
/// binary label, the input size for a reconstruction).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Width {
    Out,
    N(usize),
}

/// One layer as written in config.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// `embedding: {num: 97, dim: 64}`: each input value is an integer id in `0..num`,
    /// looked up in a `[num, dim]` table (PyTorch's `nn.Embedding`, init `N(0, 1)`). First
    /// layer only.
    Embedding {
        num: usize,
        dim: usize,
        init: Option<f64>,
    },
    /// `linear: 64` or `linear: {out: 64, bias: false, init: 0.01}`; on the last axis.
    Linear {
        out: Width,
        bias: bool,
        init: Option<f64>,
    },
    /// `conv1d` over `[channels, length]`, `conv2d` over `[channels, height, width]`.
    Conv {
        dims: usize,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
        init: Option<f64>,
    },
    /// `maxpool1d`, `avgpool1d`, `maxpool2d`, `avgpool2d`: `2` or `{kernel: 3, stride: 2}`.
    Pool {
        dims: usize,
        max: bool,
        kernel: usize,
        stride: usize,
    },
    Flatten,
    /// `reshape: [1, 8, 8]` (one entry may be -1).
    Reshape(Vec<i64>),
    /// Normalises the last axis: `(x - mean) / sqrt(var + eps) * weight + bias`.
    LayerNorm {
        eps: f64,
    },
    /// Normalises each channel (the samples' first axis) over the batch and positions in
    /// training, with running statistics at evaluation, as PyTorch's `BatchNorm1d/2d`.
    BatchNorm {
        eps: f64,
        momentum: f64,
    },
    Dropout(f64),
    Act(Activation),
    /// `residual: [layers...]`: `x + block(x)`; the block keeps the shape.
    Residual(Vec<LayerSpec>),
}

/// The layer kinds, for messages.
pub const KINDS: &[&str] = &[
    "embedding",
    "linear",
    "conv1d",
    "conv2d",
    "maxpool1d",
    "avgpool1d",
    "maxpool2d",
    "avgpool2d",
    "flatten",
    "reshape",
    "layer_norm",
    "batch_norm",
    "dropout",
    "residual",
    "relu",
    "gelu",
    "tanh",
    "sigmoid",
    "identity",
    "quad",
    "relu^<number>",
    "smooth_relu",
];

impl LayerSpec {
    /// The name it is written with.
    pub fn kind(&self) -> String {
        match self {
            LayerSpec::Embedding { .. } => "embedding".into(),
            LayerSpec::Linear { .. } => "linear".into(),
            LayerSpec::Conv { dims, .. } => format!("conv{dims}d"),
            LayerSpec::Pool { dims, max, .. } => {
                format!("{}pool{dims}d", if *max { "max" } else { "avg" })
            }
            LayerSpec::Flatten => "flatten".into(),
            LayerSpec::Reshape(_) => "reshape".into(),
            LayerSpec::LayerNorm { .. } => "layer_norm".into(),
            LayerSpec::BatchNorm { .. } => "batch_norm".into(),
            LayerSpec::Dropout(_) => "dropout".into(),
            LayerSpec::Act(Activation::ReluPow(q)) => format!("relu^{q}"),
            LayerSpec::Act(Activation::SmoothRelu { .. }) => "smooth_relu".into(),
            LayerSpec::Act(a) => format!("{a:?}").to_lowercase(),
            LayerSpec::Residual(_) => "residual".into(),
        }
    }

    /// A layer from its config entry: a name (`relu`, `flatten`), or a map of one name to
    /// its settings (`linear: 64`, `conv2d: {out: 8, kernel: 3}`).
    pub fn parse(v: &Value) -> Result<LayerSpec, String> {
        let (kind, arg) = match v {
            Value::String(s) => (s.as_str(), &Value::Null),
            Value::Object(m) if m.len() == 1 => {
                let (k, a) = m.iter().next().expect("one entry");
                (k.as_str(), a)
            }
            other => {
                return Err(format!(
                    "expected a layer: a name (relu, flatten) or one name with its settings \
                     (linear: 64, conv2d: {{out: 8, kernel: 3}}), got {other}"
                ))
            }
        };
        let args = Args { kind, v: arg };
        Ok(match kind {
            "embedding" => {
                args.only(&["num", "dim", "init"])?;
                let need = |key: &str| {
                    args.get(key, false).ok_or_else(|| {
                        format!("embedding needs `{key}`: e.g. `embedding: {{num: 97, dim: 64}}` (num ids, dim values each)")
                    })
                };
                LayerSpec::Embedding {
                    num: args.count(need("num")?, "num")?,
                    dim: args.count(need("dim")?, "dim")?,
                    init: args.init()?,
                }
            }
            "linear" => {
                args.only(&["out", "bias", "init"])?;
                let out = match args.get("out", true) {
                    Some(Value::String(s)) if s == "out" => Width::Out,
                    Some(v) => Width::N(args.count(v, "out")?),
                    None => return Err("linear needs its width: `linear: 64` (or `linear: out`, the width the task needs)".into()),
                };
                LayerSpec::Linear {
                    out,
                    bias: args.flag("bias", true)?,
                    init: args.init()?,
                }
            }
            "conv1d" | "conv2d" => {
                args.only(&["out", "kernel", "stride", "padding", "bias", "init"])?;
                let need = |key: &str| {
                    args.get(key, false).ok_or_else(|| {
                        format!("{kind} needs `{key}`: e.g. `{kind}: {{out: 8, kernel: 3}}`")
                    })
                };
                LayerSpec::Conv {
                    dims: if kind == "conv1d" { 1 } else { 2 },
                    out: args.count(need("out")?, "out")?,
                    kernel: args.count(need("kernel")?, "kernel")?,
                    stride: args.opt_count("stride", 1)?,
                    padding: args.opt_natural("padding", 0)?,
                    bias: args.flag("bias", true)?,
                    init: args.init()?,
                }
            }
            "maxpool1d" | "avgpool1d" | "maxpool2d" | "avgpool2d" => {
                args.only(&["kernel", "stride"])?;
                let kernel = match args.get("kernel", true) {
                    Some(v) => args.count(v, "kernel")?,
                    None => {
                        return Err(format!(
                            "{kind} needs its kernel size: `{kind}: 2` or `{kind}: {{kernel: 3, stride: 2}}`"
                        ))
                    }
                };
                LayerSpec::Pool {
                    dims: if kind.ends_with("1d") { 1 } else { 2 },
                    max: kind.starts_with("max"),
                    kernel,
                    stride: args.opt_count("stride", kernel)?,
                }
            }
            "flatten" => {
                args.none()?;
                LayerSpec::Flatten
            }
            "reshape" => {
                let dims: Vec<i64> = match arg {
                    Value::Array(a) => a
                        .iter()
                        .map(|d| d.as_i64().filter(|d| *d >= 1 || *d == -1))
                        .collect::<Option<_>>()
                        .ok_or("reshape takes a list of sizes >= 1 (one may be -1): `reshape: [1, 8, 8]`")?,
                    _ => return Err("reshape takes a list of sizes: `reshape: [1, 8, 8]`".into()),
                };
                if dims.iter().filter(|d| **d == -1).count() > 1 {
                    return Err("reshape: at most one size may be -1".into());
                }
                LayerSpec::Reshape(dims)
            }
            "layer_norm" => {
                args.only(&["eps"])?;
                let eps = match args.get("eps", false) {
                    Some(v) => v
                        .as_f64()
                        .filter(|e| *e > 0.0)
                        .ok_or("layer_norm: eps must be a number > 0")?,
                    None => 1e-5,
                };
                LayerSpec::LayerNorm { eps }
            }
            "batch_norm" => {
                args.only(&["eps", "momentum"])?;
                let num = |key: &str, default: f64, ok: fn(f64) -> bool| match args.get(key, false)
                {
                    Some(v) => v
                        .as_f64()
                        .filter(|x| ok(*x))
                        .ok_or_else(|| format!("batch_norm: {key} out of range, got {v}")),
                    None => Ok(default),
                };
                LayerSpec::BatchNorm {
                    eps: num("eps", 1e-5, |x| x > 0.0)?,
                    momentum: num("momentum", 0.1, |x| (0.0..=1.0).contains(&x))?,
                }
            }
            "dropout" => {
                let p = arg
                    .as_f64()
                    .filter(|p| (0.0..1.0).contains(p))
                    .ok_or("dropout takes its probability in [0, 1): `dropout: 0.1`")?;
                LayerSpec::Dropout(p)
            }
            "residual" => {
                let items = arg
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or("residual takes a list of layers: `residual: [linear: 64, relu]`")?;
                let inner = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| LayerSpec::parse(v).map_err(|e| format!("[{i}]: {e}")))
                    .collect::<Result<_, _>>()?;
                LayerSpec::Residual(inner)
            }
            name => {
                let (q, rho) = match arg {
                    Value::Null => (None, None),
                    Value::Object(m) => {
                        args.only(&["q", "rho"])?;
                        (
                            m.get("q").and_then(Value::as_f64),
                            m.get("rho").and_then(Value::as_f64),
                        )
                    }
                    _ => return Err(format!("{name} takes no value, or {{q: .., rho: ..}}")),
                };
                let needs_q = name == "relu^q" || name.starts_with("smooth");
                if needs_q && q.is_none() {
                    return Err(format!("{name} needs its power: `{name}: {{q: 3}}`"));
                }
                match Activation::parse(name, q.unwrap_or(1.0), rho.unwrap_or(1.0)) {
                    Ok(a) => LayerSpec::Act(a),
                    Err(_) => {
                        let hint =
                            crate::config::suggest::did_you_mean(name, KINDS.iter().copied())
                                .map(|s| format!(" Did you mean '{s}'?"))
                                .unwrap_or_default();
                        return Err(format!(
                            "unknown layer '{name}'; expected one of: {}.{hint}",
                            KINDS.join(", ")
                        ));
                    }
                }
            }
        })
    }
}

/// A layer's settings: one value, or a map of named ones.
struct Args<'a> {
    kind: &'a str,
    v: &'a Value,
}

impl<'a> Args<'a> {
    /// `key` from the map, or the lone value when `bare` allows it (`linear: 64`).
    fn get(&self, key: &str, bare: bool) -> Option<&'a Value> {
        match self.v {
            Value::Object(m) => m.get(key),
            Value::Null => None,
            v if bare => Some(v),
            _ => None,
        }
    }
    fn only(&self, keys: &[&str]) -> Result<(), String> {
        if let Value::Object(m) = self.v {
            for k in m.keys() {
                if !keys.contains(&k.as_str()) {
                    let hint = crate::config::suggest::did_you_mean(k, keys.iter().copied())
                        .map(|s| format!(" Did you mean '{s}'?"))
                        .unwrap_or_default();
                    return Err(format!(
                        "{}: unknown setting '{k}'; expected one of: {}.{hint}",
                        self.kind,
                        keys.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
    fn none(&self) -> Result<(), String> {
        match self.v {
            Value::Null => Ok(()),
            _ => Err(format!("{} takes no settings", self.kind)),
        }
    }
    fn count(&self, v: &Value, key: &str) -> Result<usize, String> {
        v.as_u64()
            .filter(|n| *n >= 1)
            .map(|n| n as usize)
            .ok_or_else(|| format!("{}: {key} must be an integer >= 1, got {v}", self.kind))
    }
    fn opt_count(&self, key: &str, default: usize) -> Result<usize, String> {
        self.get(key, false)
            .map_or(Ok(default), |v| self.count(v, key))
    }
    fn opt_natural(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.get(key, false) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("{}: {key} must be an integer >= 0, got {v}", self.kind)),
        }
    }
    fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key, false) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(format!(
                "{}: {key} must be true or false, got {v}",
                self.kind
            )),
        }
    }
    /// `init: 0.01` draws the weights from `N(0, 0.01^2)` (biases 0); none = the model's.
    fn init(&self) -> Result<Option<f64>, String> {
        match self.get("init", false) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().filter(|s| *s > 0.0).map(Some).ok_or_else(|| {
                format!(
                    "{}: init must be the std of a normal initialisation (> 0), got {v}",
                    self.kind
                )
            }),
        }
    }
}

/// The sample shape before each layer and after the last: `shapes[i]` goes into layer `i`.
/// `at` names the list in messages (`model.layers`).
pub fn shapes(
    layers: &[LayerSpec],
    input: &[usize],
    outputs: usize,
    at: &str,
) -> Result<Vec<Vec<usize>>, String> {
    let mut out = vec![input.to_vec()];
    for (i, l) in layers.iter().enumerate() {
        let s = out.last().expect("input").clone();
        let here = format!("{at}[{i}] ({})", l.kind());
        let fail = |what: String| Err(format!("{here}: {what}"));
        let next = match l {
            LayerSpec::Embedding { dim, .. } => {
                if i > 0 || at.ends_with(']') {
                    return fail(
                        "looks up integer ids, so it must be the model's first layer".into(),
                    );
                }
                let mut n = s.clone();
                n.push(*dim);
                n
            }
            LayerSpec::Linear { out: w, .. } => {
                let Some(_) = s.last() else {
                    return fail("gets a scalar; nothing to map".into());
                };
                let mut n = s.clone();
                *n.last_mut().expect("non-empty") = match w {
                    Width::Out => outputs,
                    Width::N(n) => *n,
                };
                n
            }
            LayerSpec::Conv {
                dims,
                out,
                kernel,
                stride,
                padding,
                ..
            } => {
                if s.len() != dims + 1 {
                    let want = if *dims == 1 {
                        "[channels, length]"
                    } else {
                        "[channels, height, width]"
                    };
                    return fail(format!(
                        "needs samples of shape {want}, gets {s:?}; reshape first (`reshape: [1, ...]`)"
                    ));
                }
                let mut n = vec![*out];
                for &d in &s[1..] {
                    let padded = d + 2 * padding;
                    if padded < *kernel {
                        return fail(format!(
                            "kernel {kernel} is larger than the input {s:?} (padding {padding})"
                        ));
                    }
                    n.push((padded - kernel) / stride + 1);
                }
                n
            }
            LayerSpec::Pool {
                dims,
                kernel,
                stride,
                ..
            } => {
                if s.len() != dims + 1 {
                    return fail(format!(
                        "needs samples of shape [channels, {}], gets {s:?}",
                        if *dims == 1 {
                            "length"
                        } else {
                            "height, width"
                        }
                    ));
                }
                let mut n = vec![s[0]];
                for &d in &s[1..] {
                    if d < *kernel {
                        return fail(format!("kernel {kernel} is larger than the input {s:?}"));
                    }
                    n.push((d - kernel) / stride + 1);
                }
                n
            }
            LayerSpec::Flatten => vec![s.iter().product()],
            LayerSpec::Reshape(dims) => {
                let total: usize = s.iter().product();
                let known: usize = dims
                    .iter()
                    .filter(|d| **d > 0)
                    .map(|d| *d as usize)
                    .product();
                let n: Vec<usize> = if dims.contains(&-1) {
                    if known == 0 || !total.is_multiple_of(known) {
                        return fail(format!("cannot reshape {s:?} ({total} values) to {dims:?}"));
                    }
                    dims.iter()
                        .map(|d| if *d == -1 { total / known } else { *d as usize })
                        .collect()
                } else {
                    dims.iter().map(|d| *d as usize).collect()
                };
                if n.iter().product::<usize>() != total {
                    return fail(format!("cannot reshape {s:?} ({total} values) to {dims:?}"));
                }
                n
            }
            LayerSpec::LayerNorm { .. }
            | LayerSpec::BatchNorm { .. }
            | LayerSpec::Dropout(_)
            | LayerSpec::Act(_) => s.clone(),
            LayerSpec::Residual(inner) => {
                let inner_shapes = shapes(inner, &s, outputs, &format!("{at}[{i}]"))?;
                let last = inner_shapes.last().expect("input");
                if *last != s {
                    return fail(format!(
                        "its block maps {s:?} to {last:?}; a residual add needs the same shape"
                    ));
                }
                s.clone()
            }
        };
        if next.contains(&0) {
            return fail(format!("gives an empty shape {next:?} from {s:?}"));
        }
        out.push(next);
    }
    Ok(out)
}

/// Names and shapes of the parameters, as `nn.Sequential` names them, under `prefix`.
pub fn param_shapes(
    layers: &[LayerSpec],
    shapes_: &[Vec<usize>],
    outputs: usize,
    prefix: &str,
    out: &mut Vec<(String, Vec<usize>)>,
) {
    for (i, l) in layers.iter().enumerate() {
        let (s, n) = (&shapes_[i], &shapes_[i + 1]);
        let name = |p: &str| format!("{prefix}{i}.{p}");
        match l {
            LayerSpec::Embedding { num, dim, .. } => out.push((name("weight"), vec![*num, *dim])),
            LayerSpec::Linear { bias, .. } => {
                let (d, o) = (*s.last().expect("checked"), *n.last().expect("checked"));
                out.push((name("weight"), vec![o, d]));
                if *bias {
                    out.push((name("bias"), vec![o]));
                }
            }
            LayerSpec::Conv {
                dims,
                out: o,
                kernel,
                bias,
                ..
            } => {
                let mut w = vec![*o, s[0]];
                w.extend(std::iter::repeat_n(*kernel, *dims));
                out.push((name("weight"), w));
                if *bias {
                    out.push((name("bias"), vec![*o]));
                }
            }
            LayerSpec::LayerNorm { .. } => {
                let d = *s.last().expect("checked");
                out.push((name("weight"), vec![d]));
                out.push((name("bias"), vec![d]));
            }
            LayerSpec::BatchNorm { .. } => {
                for p in ["weight", "bias", "running_mean", "running_var"] {
                    out.push((name(p), vec![s[0]]));
                }
            }
            LayerSpec::Residual(inner) => {
                let inner_shapes = shapes(inner, s, outputs, "").expect("checked");
                param_shapes(inner, &inner_shapes, outputs, &format!("{prefix}{i}."), out);
            }
            _ => {}
        }
    }
}

/// A convolution's weight `[out, in, k..]` and bias, as PyTorch's `ConvNd`.
#[derive(Module, Debug)]
pub struct Conv<const D: usize> {
    pub weight: Param<Tensor<D>>,
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub stride: usize,
    #[module(skip)]
    pub padding: usize,
}

/// A lookup table `[num, dim]`, PyTorch's `nn.Embedding.weight`.
#[derive(Module, Debug)]
pub struct Embed {
    pub weight: Param<Tensor<2>>,
}

/// Layer normalisation over the last axis, with PyTorch's `weight` and `bias`.
#[derive(Module, Debug)]
pub struct Norm {
    pub weight: Param<Tensor<1>>,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub eps: f64,
}

/// A layer without parameters.
#[derive(Module, Debug)]
pub struct Op {
    #[module(skip)]
    pub kind: OpKind,
}

#[derive(Clone, Debug)]
pub enum OpKind {
    Act(Activation),
    Pool {
        dims: usize,
        max: bool,
        kernel: usize,
        stride: usize,
    },
    /// Flatten and reshape: the values stay, only the shape between layers changes.
    Same,
}

/// `x + block(x)`; its layers are named under the block's index (`3.0.weight`).
#[derive(Module, Debug)]
pub struct Block {
    pub layers: Vec<Layer>,
    #[module(skip)]
    pub shapes: Vec<Vec<usize>>,
}

/// One built layer. Enum variants and the `layers` lists add nothing to parameter names
/// (`model::path_segment`), so the names are PyTorch's.
#[derive(Module, Debug)]
pub enum Layer {
    Embedding(Embed),
    Linear(Dense),
    Conv1d(Conv<3>),
    Conv2d(Conv<4>),
    Norm(Norm),
    BatchNorm(BatchNorm),
    Dropout(Dropout),
    Residual(Block),
    Op(Op),
}

/// The model: layers and the sample shape between them.
#[derive(Module, Debug)]
pub struct Sequential {
    pub layers: Vec<Layer>,
    #[module(skip)]
    pub shapes: Vec<Vec<usize>>,
}

impl Sequential {
    /// Every dropout layer's stream, in layer order (blocks included).
    fn masks(&self) -> Vec<&Masks> {
        fn all<'a>(layers: &'a [Layer], out: &mut Vec<&'a Masks>) {
            for l in layers {
                match l {
                    Layer::Dropout(d) => out.push(&d.masks),
                    Layer::Residual(b) => all(&b.layers, out),
                    _ => {}
                }
            }
        }
        let mut masks = vec![];
        all(&self.layers, &mut masks);
        masks
    }

    /// Seeds every dropout layer's mask stream (in layer order, blocks included) from one
    /// draw of the device's stream, taken after the weights: a seed fixes the masks, and
    /// the weights are those drawn without dropout's draw. No draw without dropout.
    pub fn seed_masks(&self, device: &Device) {
        let masks = self.masks();
        if masks.is_empty() {
            return;
        }
        let draw = Tensor::<1>::random(
            [2],
            burn::tensor::Distribution::Default,
            (device, burn::tensor::DType::F32),
        );
        let bits: Vec<u64> = draw
            .into_data()
            .iter::<f32>()
            .map(|v| u64::from(v.to_bits()))
            .collect();
        let base = bits.first().copied().unwrap_or(0) << 32 | bits.get(1).copied().unwrap_or(0);
        for (i, m) in masks.into_iter().enumerate() {
            m.reseed(base.wrapping_add(i as u64));
        }
    }
}

/// Dropout (PyTorch's and burn's: zero with probability `prob`, scale the rest by
/// `1 / (1 - prob)`, only in training) drawing its masks from its own stream rather than
/// the backend's: a member of a batched sweep then draws, in one process with its
/// neighbours, the masks its job draws alone.
#[derive(Module, Debug)]
pub struct Dropout {
    pub prob: f64,
    /// burn's `Dropout::training`: cleared by burn's `freeze`, it turns the layer off.
    pub training: Param<Flag>,
    #[module(skip)]
    pub masks: Masks,
}

impl Dropout {
    fn new(prob: f64) -> Dropout {
        Dropout {
            prob,
            training: Param::from_bool(true),
            masks: Masks::default(),
        }
    }

    /// Whether a forward pass on `x` drops anything (training on an autodiff device).
    pub fn active<const D: usize>(&self, x: &Tensor<D>) -> bool {
        self.training.is_enabled() && x.device().is_autodiff() && self.prob > 0.0
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        if !self.active(&x) {
            return x;
        }
        let [b, f] = x.dims();
        masked(x, self.masks.draw(b * f, self.prob))
    }
}

/// `x` times a mask drawn on the host (its values in `x`'s layout), in `x`'s dtype.
pub fn masked<const D: usize>(x: Tensor<D>, mask: Vec<f32>) -> Tensor<D> {
    let (dims, device, dtype) = (x.dims(), x.device(), x.dtype());
    let mask = Tensor::<D>::from_data(TensorData::new(mask, dims), &device);
    x * mask.cast(dtype)
}

/// A dropout layer's mask stream: a seed and the number of masks drawn, each mask from a
/// generator seeded by both, so a checkpoint's count resumes the stream exactly. Shared by
/// the copies of a model (the optimizer hands back a new model each step).
#[derive(Clone, Debug, Default)]
pub struct Masks(Arc<Mutex<(u64, u64)>>);

impl Masks {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, u64)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn reseed(&self, seed: u64) {
        *self.lock() = (seed, 0);
    }

    /// How many masks the layer has drawn.
    pub fn drawn(&self) -> u64 {
        self.lock().1
    }

    /// Continues the stream after `n` masks (a resumed run's).
    pub fn set_drawn(&self, n: u64) {
        self.lock().1 = n;
    }

    /// `n` mask values: `0` with probability `prob`, else `1 / (1 - prob)`; one 32-bit draw
    /// each (filled in bulk: drawing them one by one cost more than the layer's matmul),
    /// kept when below `(1 - prob) 2^32`.
    pub fn draw(&self, n: usize, prob: f64) -> Vec<f32> {
        let keep = 1.0 - prob;
        let cut = (keep * 4_294_967_296.0) as u64;
        let scale = (1.0 / keep) as f32;
        let mut rng = {
            let mut s = self.lock();
            let (seed, drawn) = *s;
            s.1 += 1;
            // SplitMix64's finaliser spreads (seed, count) over the generator's seed.
            let mut z = seed ^ drawn.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            StdRng::seed_from_u64(z ^ (z >> 31))
        };
        let mut bits = vec![0u32; n];
        rng.fill(&mut bits[..]);
        bits.into_iter()
            .map(|r| if u64::from(r) < cut { scale } else { 0.0 })
            .collect()
    }
}

/// Weights drawn as PyTorch's default (`U(±1/√fan_in)`, biases too) or from `N(0, s²)`
/// with biases 0, in layer order, so a seed fixes them (and `mlp` and its `sequential`
/// twin draw the same numbers).
fn weights<const D: usize>(
    shape: [usize; D],
    fan_in: usize,
    bias: bool,
    std: Option<f64>,
    device: &Device,
) -> (Param<Tensor<D>>, Option<Param<Tensor<1>>>) {
    let out = shape[0];
    let bound = 1.0 / (fan_in as f64).sqrt();
    let weight = match std {
        Some(s) => normal_param(shape, s, device),
        None => uniform_param(shape, bound, device),
    };
    let bias = bias.then(|| match std {
        Some(_) => Param::from_tensor(Tensor::zeros([out], device)),
        None => uniform_param([out], bound, device),
    });
    (weight, bias)
}

/// Builds `layers` (already checked by [`shapes`]); `init` is the model-wide normal std.
pub fn build_layers(
    layers: &[LayerSpec],
    shapes_: &[Vec<usize>],
    outputs: usize,
    init: Option<f64>,
    device: &Device,
) -> Vec<Layer> {
    layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (s, n) = (&shapes_[i], &shapes_[i + 1]);
            match l {
                LayerSpec::Embedding {
                    num,
                    dim,
                    init: own,
                } => Layer::Embedding(Embed {
                    weight: normal_param([*num, *dim], own.or(init).unwrap_or(1.0), device),
                }),
                LayerSpec::Linear {
                    bias, init: own, ..
                } => {
                    let (d, o) = (*s.last().expect("checked"), *n.last().expect("checked"));
                    let (weight, bias) = weights([o, d], d, *bias, own.or(init), device);
                    Layer::Linear(Dense { weight, bias })
                }
                LayerSpec::Conv {
                    dims,
                    out,
                    kernel,
                    stride,
                    padding,
                    bias,
                    init: own,
                } => {
                    let fan_in = s[0] * kernel.pow(*dims as u32);
                    let std = own.or(init);
                    if *dims == 1 {
                        let (weight, bias) =
                            weights([*out, s[0], *kernel], fan_in, *bias, std, device);
                        Layer::Conv1d(Conv {
                            weight,
                            bias,
                            stride: *stride,
                            padding: *padding,
                        })
                    } else {
                        let (weight, bias) =
                            weights([*out, s[0], *kernel, *kernel], fan_in, *bias, std, device);
                        Layer::Conv2d(Conv {
                            weight,
                            bias,
                            stride: *stride,
                            padding: *padding,
                        })
                    }
                }
                LayerSpec::Pool {
                    dims,
                    max,
                    kernel,
                    stride,
                } => Layer::Op(Op {
                    kind: OpKind::Pool {
                        dims: *dims,
                        max: *max,
                        kernel: *kernel,
                        stride: *stride,
                    },
                }),
                LayerSpec::Flatten | LayerSpec::Reshape(_) => Layer::Op(Op { kind: OpKind::Same }),
                LayerSpec::LayerNorm { eps } => {
                    let d = *s.last().expect("checked");
                    Layer::Norm(Norm {
                        weight: Param::from_tensor(Tensor::ones([d], device)),
                        bias: Param::from_tensor(Tensor::zeros([d], device)),
                        eps: *eps,
                    })
                }
                LayerSpec::BatchNorm { eps, momentum } => Layer::BatchNorm(
                    BatchNormConfig::new(s[0])
                        .with_epsilon(*eps)
                        .with_momentum(*momentum)
                        .init(device),
                ),
                LayerSpec::Dropout(p) => Layer::Dropout(Dropout::new(*p)),
                LayerSpec::Act(a) => Layer::Op(Op {
                    kind: OpKind::Act(*a),
                }),
                LayerSpec::Residual(inner) => {
                    let inner_shapes = shapes(inner, s, outputs, "").expect("checked");
                    Layer::Residual(Block {
                        layers: build_layers(inner, &inner_shapes, outputs, init, device),
                        shapes: inner_shapes,
                    })
                }
            }
        })
        .collect()
}

/// Runs `layers` on flat samples `[batch, prod(shapes[0])]`; each layer views them in its
/// own shape and hands on `[batch, prod(its output shape)]`. `seen` gets each layer's
/// output under its index (`Net::hidden`).
fn run(
    layers: &[Layer],
    shapes_: &[Vec<usize>],
    x: Tensor<2>,
    mut seen: Option<&mut Vec<(String, Tensor<2>)>>,
) -> Tensor<2> {
    let mut h = x;
    for (i, l) in layers.iter().enumerate() {
        let s = &shapes_[i];
        let b = h.dims()[0];
        h = match l {
            Layer::Embedding(e) => {
                // Ids were checked to be whole numbers in range before the run (model::check_ids).
                let ids: Tensor<2, Int> = h.int();
                let y = embedding(e.weight.val(), ids);
                y.flatten(1, 2)
            }
            Layer::Linear(d) => {
                let last = *s.last().expect("checked");
                if s.len() == 1 {
                    d.forward(h)
                } else {
                    // Over the last axis of every position, as PyTorch's Linear.
                    let rows = b * s.iter().product::<usize>() / last;
                    let y = d.forward(h.reshape([rows, last]));
                    let o = y.dims()[1];
                    y.reshape([b, rows / b * o])
                }
            }
            Layer::Conv1d(c) => {
                let x: Tensor<3> = h.reshape([b, s[0], s[1]]);
                let opts = ConvOptions::new([c.stride], [c.padding], [1], 1);
                let y = conv1d(x, c.weight.val(), c.bias.as_ref().map(|p| p.val()), opts);
                y.flatten(1, 2)
            }
            Layer::Conv2d(c) => {
                let x: Tensor<4> = h.reshape([b, s[0], s[1], s[2]]);
                let opts = ConvOptions::new([c.stride; 2], [c.padding; 2], [1; 2], 1);
                let y = conv2d(x, c.weight.val(), c.bias.as_ref().map(|p| p.val()), opts);
                y.flatten(1, 3)
            }
            Layer::Norm(n) => {
                let d = *s.last().expect("checked");
                let rows = b * s.iter().product::<usize>() / d;
                let x: Tensor<2> = h.reshape([rows, d]);
                let mean = x.clone().mean_dim(1);
                let centred = x - mean;
                let var = centred.clone().powf_scalar(2.0).mean_dim(1);
                let y = centred / (var + n.eps).sqrt();
                let y = y * n.weight.val().unsqueeze::<2>() + n.bias.val().unsqueeze::<2>();
                y.reshape([b, rows / b * d])
            }
            Layer::BatchNorm(n) => {
                // [batch, channels, positions]: statistics per channel.
                let c = s[0];
                let rest = s.iter().product::<usize>() / c;
                let x: Tensor<3> = h.reshape([b, c, rest]);
                n.forward(x).reshape([b, c * rest])
            }
            Layer::Dropout(d) => d.forward(h),
            Layer::Residual(block) => {
                let y = run(&block.layers, &block.shapes, h.clone(), None);
                h + y
            }
            Layer::Op(op) => match &op.kind {
                OpKind::Act(a) => a.apply(h),
                OpKind::Same => h,
                OpKind::Pool { .. } => pool(&op.kind, h, s),
            },
        };
        if let Some(s) = seen.as_deref_mut() {
            s.push((i.to_string(), h.clone()));
        }
    }
    h
}

/// A pooling layer on rows of flat samples of shape `s` (`[channels, length]` or
/// `[channels, height, width]`): `[rows, prod(s)]` in, `[rows, prod(pooled)]` out.
pub(super) fn pool(kind: &OpKind, h: Tensor<2>, s: &[usize]) -> Tensor<2> {
    let OpKind::Pool {
        dims,
        max,
        kernel,
        stride,
    } = *kind
    else {
        return h;
    };
    let rows = h.dims()[0];
    if dims == 1 {
        let x: Tensor<3> = h.reshape([rows, s[0], s[1]]);
        let y = if max {
            max_pool1d(x, MaxPoolOptions::new([kernel]).with_stride([stride]))
        } else {
            avg_pool1d(x, AvgPoolOptions::new([kernel]).with_stride([stride]))
        };
        y.flatten(1, 2)
    } else {
        let x: Tensor<4> = h.reshape([rows, s[0], s[1], s[2]]);
        let (k, st) = ([kernel; 2], [stride; 2]);
        let y = if max {
            max_pool2d(x, MaxPoolOptions::new(k).with_stride(st))
        } else {
            avg_pool2d(x, AvgPoolOptions::new(k).with_stride(st))
        };
        y.flatten(1, 3)
    }
}

impl Net for Sequential {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        run(&self.layers, &self.shapes, x, None)
    }

    /// `i`: the output of layer `i`, flattened (`1` after `[linear, relu, ...]` is the
    /// first hidden layer after its activation).
    fn hidden(&self, x: Tensor<2>) -> Vec<(String, Tensor<2>)> {
        let mut seen = vec![];
        run(&self.layers, &self.shapes, x, Some(&mut seen));
        let last = seen.len().saturating_sub(1);
        seen.truncate(last);
        seen
    }

    /// Masks each dropout layer has drawn.
    fn streams(&self) -> Vec<u64> {
        self.masks().iter().map(|m| m.drawn()).collect()
    }

    fn set_streams(&self, counts: &[u64]) {
        for (m, n) in self.masks().iter().zip(counts) {
            m.set_drawn(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml_like: serde_json::Value) -> Result<LayerSpec, String> {
        LayerSpec::parse(&yaml_like)
    }

    #[test]
    fn layers_parse_with_located_errors() {
        use serde_json::json;
        assert_eq!(
            parse(json!({"linear": 64})).unwrap(),
            LayerSpec::Linear {
                out: Width::N(64),
                bias: true,
                init: None
            }
        );
        assert_eq!(
            parse(json!({"linear": "out"})).unwrap(),
            LayerSpec::Linear {
                out: Width::Out,
                bias: true,
                init: None
            }
        );
        assert_eq!(
            parse(json!("relu")).unwrap(),
            LayerSpec::Act(Activation::Relu)
        );
        assert_eq!(
            parse(json!({"embedding": {"num": 5, "dim": 2}})).unwrap(),
            LayerSpec::Embedding {
                num: 5,
                dim: 2,
                init: None
            }
        );
        assert!(parse(json!({"embedding": {"num": 5}}))
            .unwrap_err()
            .contains("embedding needs `dim`"));
        assert_eq!(
            parse(json!({"maxpool2d": 2})).unwrap(),
            LayerSpec::Pool {
                dims: 2,
                max: true,
                kernel: 2,
                stride: 2
            }
        );
        let e = parse(json!("rleu")).unwrap_err();
        assert!(e.contains("Did you mean 'relu'?"), "{e}");
        let e = parse(json!({"conv2d": {"out": 8}})).unwrap_err();
        assert!(e.contains("conv2d needs `kernel`"), "{e}");
        let e = parse(json!({"conv2d": {"out": 8, "kernal": 3}})).unwrap_err();
        assert!(e.contains("Did you mean 'kernel'?"), "{e}");
        let e = parse(json!({"dropout": 1.5})).unwrap_err();
        assert!(e.contains("[0, 1)"), "{e}");
        let e = parse(json!({"relu^q": null})).unwrap_err();
        assert!(e.contains("needs its power"), "{e}");
    }

    #[test]
    fn shapes_are_inferred_and_mismatches_name_the_layer() {
        use serde_json::json;
        let layers: Vec<LayerSpec> = [
            json!({"reshape": [1, 8, 8]}),
            json!({"conv2d": {"out": 4, "kernel": 3, "padding": 1}}),
            json!("relu"),
            json!({"maxpool2d": 2}),
            json!("flatten"),
            json!({"residual": [{"linear": 64}, "relu"]}),
            json!({"linear": "out"}),
        ]
        .iter()
        .map(|v| LayerSpec::parse(v).unwrap())
        .collect();
        let s = shapes(&layers, &[64], 10, "model.layers").unwrap();
        assert_eq!(
            s,
            vec![
                vec![64],
                vec![1, 8, 8],
                vec![4, 8, 8],
                vec![4, 8, 8],
                vec![4, 4, 4],
                vec![64],
                vec![64],
                vec![10]
            ]
        );
        let mut names = vec![];
        param_shapes(&layers, &s, 10, "", &mut names);
        let names: Vec<&str> = names.iter().map(|n| n.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "1.weight",
                "1.bias",
                "5.0.weight",
                "5.0.bias",
                "6.weight",
                "6.bias"
            ]
        );
        let bad = [LayerSpec::Conv {
            dims: 2,
            out: 4,
            kernel: 3,
            stride: 1,
            padding: 0,
            bias: true,
            init: None,
        }];
        let e = shapes(&bad, &[64], 10, "model.layers").unwrap_err();
        assert!(
            e.starts_with("model.layers[0] (conv2d): needs samples of shape [channels, height, width], gets [64]"),
            "{e}"
        );
        let res = [LayerSpec::Residual(vec![LayerSpec::Linear {
            out: Width::N(3),
            bias: true,
            init: None,
        }])];
        let e = shapes(&res, &[5], 2, "model.layers").unwrap_err();
        assert!(
            e.contains("model.layers[0] (residual): its block maps [5] to [3]"),
            "{e}"
        );
    }
}
