//! Weights from PyTorch and frozen layers: a `state_dict` (`torch.save`'s `.pt`/`.pth`, or
//! `.safetensors`) set into any model by parameter name, and parameters that get no gradient.

use super::{param_names, ParamPath};
use crate::plan::sweep::glob_match;
use anyhow::{anyhow, bail, Context, Result};
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to do to a model's parameters before training: `model.init_from`, `model.freeze`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightsSpec {
    /// `model.name`: `mlp` also takes `nn.Sequential` names (`2.weight` for `layers.1.weight`).
    pub model: String,
    /// A PyTorch state dict whose tensors replace the initial weights.
    pub init_from: Option<PathBuf>,
    /// Parameter names or globs (`0.*`, `layers.0.weight`) that are not trained.
    pub freeze: Vec<String>,
}

impl WeightsSpec {
    /// How many of these `(name, shape)` parameters' values `freeze` keeps from training.
    pub fn frozen(&self, params: &[(String, Vec<usize>)]) -> usize {
        params
            .iter()
            .filter(|(n, _)| {
                self.freeze
                    .iter()
                    .any(|g| crate::plan::sweep::glob_match(g, n))
            })
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// A state dict read to the host: name -> (shape, values as f32).
pub type StateDict = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Reads the float tensors of a state dict; integer buffers (`num_batches_tracked`) carry no
/// weights and are left out. A checkpoint that nests its state dict (`{"state_dict": ...}`,
/// `{"model_state_dict": ...}`) or was saved from `nn.DataParallel` (`module.` names) is
/// read as the plain state dict.
pub fn read_state_dict(path: &Path) -> Result<StateDict> {
    let what = || format!("reading the PyTorch weights {}", path.display());
    if !path.is_file() {
        bail!(
            "{}: no such file (model.init_from takes a state dict saved with torch.save(model.state_dict(), path) or as .safetensors)",
            path.display()
        );
    }
    let mut out = StateDict::new();
    let is_st = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if is_st {
        let bytes = std::fs::read(path).with_context(what)?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow!("{e}"))
            .with_context(what)?;
        for (name, view) in st.tensors() {
            use safetensors::Dtype as D;
            let data = view.data();
            let values = match view.dtype() {
                D::F32 => floats(data, 4, |b| f32::from_le_bytes(b.try_into().unwrap())),
                D::F64 => floats(data, 8, |b| {
                    f64::from_le_bytes(b.try_into().unwrap()) as f32
                }),
                D::F16 => floats(data, 2, |b| {
                    half::f16::from_le_bytes(b.try_into().unwrap()).to_f32()
                }),
                D::BF16 => floats(data, 2, |b| {
                    half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32()
                }),
                _ => continue,
            };
            out.insert(name, (view.shape().to_vec(), values));
        }
    } else {
        use burn::store::pytorch_reader::{DType, PytorchReader};
        let reader = PytorchReader::new(path)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| {
                format!(
                    "{} (not a torch.save file; .safetensors files need that extension)",
                    what()
                )
            })?;
        for (name, t) in reader.tensors() {
            let read = || t.read().with_context(what);
            let values = match t.dtype() {
                DType::F32 => floats(&read()?, 4, |b| f32::from_ne_bytes(b.try_into().unwrap())),
                DType::F64 => floats(&read()?, 8, |b| {
                    f64::from_ne_bytes(b.try_into().unwrap()) as f32
                }),
                DType::F16 => floats(&read()?, 2, |b| {
                    half::f16::from_ne_bytes(b.try_into().unwrap()).to_f32()
                }),
                DType::BF16 => floats(&read()?, 2, |b| {
                    half::bf16::from_ne_bytes(b.try_into().unwrap()).to_f32()
                }),
                _ => continue,
            };
            out.insert(name.clone(), (t.shape().to_vec(), values));
        }
    }
    // Nested or DataParallel names: the plain ones.
    for prefix in ["state_dict.", "model_state_dict.", "model.", "module."] {
        if !out.is_empty() && out.keys().all(|k| k.starts_with(prefix)) {
            out = out
                .into_iter()
                .map(|(k, v)| (k[prefix.len()..].to_string(), v))
                .collect();
        }
    }
    if out.is_empty() {
        bail!("{}: the file holds no float tensors", path.display());
    }
    Ok(out)
}

fn floats(bytes: &[u8], size: usize, f: impl Fn(&[u8]) -> f32) -> Vec<f32> {
    bytes.chunks_exact(size).map(f).collect()
}

/// The names a parameter may have in a PyTorch state dict: its own, and for `model=mlp`'s
/// `layers.i.*` the `nn.Sequential(Linear, act, Linear, ...)` name `{2i}.*`.
fn aliases(model: &str, name: &str) -> Vec<String> {
    let mut v = vec![name.to_string()];
    if model == "mlp" {
        if let Some((i, rest)) = name
            .strip_prefix("layers.")
            .and_then(|r| r.split_once('.'))
            .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
        {
            v.push(format!("{}.{rest}", 2 * i));
        }
    }
    v
}

/// Sets every parameter of `model` from `dict`, as `load_state_dict(strict=True)` does:
/// missing, unexpected and mismatched-shape keys are one error listing all of them.
pub fn load<M: Module>(model: M, model_name: &str, dict: &StateDict, path: &Path) -> Result<M> {
    let params = param_names(&model);
    let mut chosen: BTreeMap<String, String> = BTreeMap::new();
    let (mut missing, mut mismatched) = (vec![], vec![]);
    for (name, shape) in &params {
        match aliases(model_name, name)
            .into_iter()
            .find(|a| dict.contains_key(a))
        {
            Some(key) => {
                let have = &dict[&key].0;
                if have != shape {
                    mismatched.push(format!("{key}: file {have:?}, model {name} {shape:?}"));
                }
                chosen.insert(name.clone(), key);
            }
            None => missing.push(format!("{name} {shape:?}")),
        }
    }
    let used: Vec<&String> = chosen.values().collect();
    let unexpected: Vec<String> = dict
        .iter()
        .filter(|(k, _)| !used.contains(k))
        .map(|(k, (s, _))| format!("{k} {s:?}"))
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
        let mut msg = format!(
            "model.init_from={}: the state dict does not fit this model",
            path.display()
        );
        for (what, list) in [
            ("missing in the file", &missing),
            ("unexpected (in the file, not in the model)", &unexpected),
            ("shape mismatch", &mismatched),
        ] {
            if !list.is_empty() {
                msg.push_str(&format!("\n  {what}: {}", list.join(", ")));
            }
        }
        msg.push_str(&format!(
            "\n  the model's parameters: {}",
            params
                .iter()
                .map(|(n, s)| format!("{n} {s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        bail!(msg);
    }
    struct Set<'a> {
        path: ParamPath,
        chosen: &'a BTreeMap<String, String>,
        dict: &'a StateDict,
    }
    impl ModuleMapper for Set<'_> {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some((shape, values)) = self
                .chosen
                .get(&self.path.dotted())
                .and_then(|k| self.dict.get(k))
            else {
                return p;
            };
            p.map(|old| {
                let grad = old.is_require_grad();
                let t = Tensor::<D>::from_data(
                    TensorData::new(values.clone(), shape.clone()),
                    &old.device(),
                );
                if grad {
                    t.require_grad()
                } else {
                    t
                }
            })
        }
    }
    Ok(model.map(&mut Set {
        path: ParamPath::default(),
        chosen: &chosen,
        dict,
    }))
}

/// Marks the parameters matching `globs` as not trained (no gradient, so no optimizer state
/// either); a glob that matches nothing is an error listing the parameters.
pub fn freeze<M: Module>(model: M, globs: &[String]) -> Result<M> {
    if globs.is_empty() {
        return Ok(model);
    }
    let names: Vec<String> = param_names(&model).into_iter().map(|p| p.0).collect();
    for g in globs {
        if !names.iter().any(|n| glob_match(g, n)) {
            bail!(
                "model.freeze: '{g}' matches no parameter; the model has: {}",
                names.join(", ")
            );
        }
    }
    struct Freeze<'a> {
        path: ParamPath,
        globs: &'a [String],
    }
    impl ModuleMapper for Freeze<'_> {
        fn enter_module(&mut self, name: &str, container: &str) {
            self.path.enter(name, container);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let name = self.path.dotted();
            if self.globs.iter().any(|g| glob_match(g, &name)) {
                p.set_require_grad(false)
            } else {
                p
            }
        }
    }
    Ok(model.map(&mut Freeze {
        path: ParamPath::default(),
        globs,
    }))
}
