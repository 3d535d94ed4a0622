//! ezflt's trainer over your own model, with the callbacks a CLI run uses: metrics files, a
//! progress bar, checkpoints, feature tracking and W&B (offline here: `ezflt sync` uploads
//! it later; set WANDB_MODE=online and a key to stream instead). Then a heatmap of the first
//! layer at epoch 9 and its comparison across epochs 0, 5 and 9.
//!
//! Run: `cargo run --release --example trainer_callbacks -- /tmp/trainer_callbacks`

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::tensor::Distribution;
use ezflt::callbacks::{Checkpoints, FeatureTracking, MetricsFiles, ProgressBar, Wandb};
use ezflt::plots::{self, At, Style};
use ezflt::{Dataset, Net, Optimizer, Schedule, Split, Task, TrackOptions, Trainer};

#[derive(Module, Debug)]
struct Dense {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
}

impl Dense {
    fn new(input: usize, output: usize, device: &Device) -> Dense {
        let b = 1.0 / (input as f64).sqrt();
        Dense {
            weight: Param::from_tensor(Tensor::random(
                [output, input],
                Distribution::Uniform(-b, b),
                device,
            )),
            bias: Param::from_tensor(Tensor::zeros([output], device)),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose()) + self.bias.val().unsqueeze::<2>()
    }
}

/// Your network: implement `Net` (flat samples in, one output per class out).
#[derive(Module, Debug)]
struct TwoLayer {
    first: Dense,
    second: Dense,
}

impl Net for TwoLayer {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.second
            .forward(burn::tensor::activation::relu(self.first.forward(x)))
    }
}

/// A uniform number in [0, 1) from a counter (splitmix64): no RNG crate needed.
fn uniform(state: &mut u64) -> f32 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

/// Three noisy clusters in 8 dimensions, labels 0..2.
fn clusters(n: usize, seed: u64) -> Split {
    let mut state = seed;
    let (mut x, mut y) = (vec![], vec![]);
    for i in 0..n {
        let class = i % 3;
        for d in 0..8 {
            let centre = if d == class { 3.0 } else { 0.0 };
            let noise = uniform(&mut state) + uniform(&mut state) + uniform(&mut state) - 1.5;
            x.push(centre + 1.5 * noise);
        }
        y.push(class as i64);
    }
    Split::new(x, y, n)
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "outputs/trainer_callbacks".into());
    let data = Dataset::new(
        "clusters",
        &[8],
        Task::Classify { classes: 3 },
        clusters(600, 0),
        clusters(300, 1),
    );
    let device = Device::flex();
    device.seed(0);
    let ad = device.clone().autodiff();
    let model = TwoLayer {
        first: Dense::new(8, 12, &ad),
        second: Dense::new(12, 3, &ad),
    };
    let wandb = Wandb::new("ezflt-examples", &dir)?.offline();
    let fitted = Trainer::new(model, Optimizer::sgd(0.05).momentum(0.9, false))
        .batch_size(32)
        .device(device)
        .callback(MetricsFiles::new(&dir, 5)?)
        .callback(ProgressBar::default())
        .callback(Checkpoints::new(&dir, 5)?)
        .callback(FeatureTracking::new(
            &dir,
            TrackOptions::default()
                .layers(["first.weight"])
                .schedule(Schedule::PerEpoch),
        )?)
        .callback(wandb)
        .fit(&data, 10, None)?;
    println!(
        "{:?} after {} steps: {:?}",
        fitted.outcome.status, fitted.outcome.steps, fitted.outcome.last_eval
    );

    let style = Style::default();
    println!("{}", plots::curves(&dir, &style)?.display());
    println!(
        "{}",
        plots::heatmap(&dir, "first.weight", At::Epoch(9), &style)?.display()
    );
    println!(
        "{}",
        plots::comparison(&dir, "first.weight", &[0, 5, 9], &style)?.display()
    );
    Ok(())
}
