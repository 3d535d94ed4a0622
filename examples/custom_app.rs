//! Your own ezflt: register a model (and a dataset) by name, and the whole CLI works on them —
//! composition with your `conf/`, `--multirun`, the local and SLURM launchers, tracking,
//! plots, W&B, `plot` / `inspect` / `resume` / `sync`.
//!
//! Run: `cargo run --release --example custom_app -- model=my_net -m seed=0,1`
//! or:  `cargo run --release --example custom_app -- model=my_net data=noisy_parity model.width=64`

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use ezflt::{App, Config, Dataset, ModelIo, Net, Split, Task};

#[derive(Module, Debug)]
struct Dense {
    weight: Param<Tensor<2>>,
}

impl Dense {
    fn new(input: usize, output: usize, std: f64, device: &Device) -> Dense {
        let w = Tensor::random([output, input], Distribution::Normal(0.0, std), device);
        Dense {
            weight: Param::from_tensor(w),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose())
    }
}

/// A two-layer network with a squared activation, as in quadratic-network theory.
#[derive(Module, Debug)]
struct MyNet {
    first: Dense,
    second: Dense,
}

impl Net for MyNet {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.second.forward(self.first.forward(x).powf_scalar(2.0))
    }
}

/// `model=my_net`: reads its settings (`model.width`, `model.init_scale`) and builds on the
/// device it is given, for the data's input and output widths.
fn build(cfg: &Config, io: &ModelIo, device: &Device) -> anyhow::Result<MyNet> {
    let width = cfg.count("width", 32)?;
    let std = cfg.positive("init_scale", 0.1)?;
    let inputs: usize = io.sample_shape.iter().product();
    let outputs = io.task.outputs(inputs);
    Ok(MyNet {
        first: Dense::new(inputs, width, std, device),
        second: Dense::new(width, outputs, std, device),
    })
}

/// `data=noisy_parity`'s settings, read into your own struct.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ParitySettings {
    name: String,
    dim: usize,
    n: usize,
    /// ezflt passes it (or the run's seed) to the loader; here it is only type-checked.
    #[serde(rename = "seed")]
    _seed: Option<u64>,
}

/// `data=noisy_parity`: the label is whether x_0 x_1 > 0, the other coordinates are noise.
fn noisy_parity(cfg: &Config, seed: u64) -> anyhow::Result<Dataset> {
    let ParitySettings { name, dim, n, .. } = cfg.deserialize()?;
    if dim < 2 {
        anyhow::bail!("data.dim: noisy_parity needs dim >= 2, got {dim}");
    }
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let mut split = |n: usize| {
        let x: Vec<f32> = (0..n * dim).map(|_| next()).collect();
        let y = (0..n)
            .map(|i| i64::from(x[i * dim] * x[i * dim + 1] > 0.0))
            .collect();
        Split::new(x, y, n)
    };
    let (train, test) = (split(n), split(n));
    Ok(Dataset::new(&name, &[dim], Task::Binary, train, test))
}

fn main() {
    let app = App::new()
        .model(
            "my_net",
            "# hidden width\nwidth: 32\n# std of the N(0, s^2) init\ninit_scale: 0.1\n",
            build,
        )
        .data(
            "noisy_parity",
            "dim: 10\nn: 400\nseed: null\n",
            noisy_parity,
        );
    std::process::exit(app.run());
}
