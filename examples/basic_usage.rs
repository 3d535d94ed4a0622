//! Your model, your loop, ezflt's tracker: a two-layer burn MLP learns a single-index
//! teacher y = tanh(<w*, x>), and the tracker records how its first layer turns toward w*.
//!
//! Run: `cargo run --release --example basic_usage -- /tmp/basic_usage`

use burn::module::{Module, Param};
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use ezflt::plots::{self, At, Stat, Style};
use ezflt::{FeatureTracker, GroundTruth, Schedule, TrackOptions};

/// A dense layer with PyTorch's `[out, in]` weight: each row of `hidden.weight` is one
/// neuron's input weights, comparable with w*.
#[derive(Module, Debug)]
struct Dense {
    weight: Param<Tensor<2>>,
}

impl Dense {
    fn new(input: usize, output: usize, device: &Device) -> Dense {
        let bound = 1.0 / (input as f64).sqrt();
        let w = Tensor::<2>::random(
            [output, input],
            Distribution::Uniform(-bound, bound),
            device,
        );
        Dense {
            weight: Param::from_tensor(w),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val().transpose())
    }
}

/// Any burn module: the tracker finds parameters by module path (`hidden.weight`).
#[derive(Module, Debug)]
struct Mlp {
    hidden: Dense,
    out: Dense,
}

impl Mlp {
    fn new(dim: usize, width: usize, device: &Device) -> Mlp {
        Mlp {
            hidden: Dense::new(dim, width, device),
            out: Dense::new(width, 1, device),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out.forward(self.hidden.forward(x).tanh())
    }
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "outputs/basic_usage".into());
    let (dim, width, n, epochs, batch) = (10, 16, 512, 10, 32);
    let device = Device::flex().autodiff();
    device.seed(0);

    // The teacher direction w* = e_0 and data x ~ N(0, I), y = tanh(<w*, x>).
    let mut w_star = vec![0.0f32; dim];
    w_star[0] = 1.0;
    let x = Tensor::<2>::random([n, dim], Distribution::Normal(0.0, 1.0), &device);
    let y = x.clone().narrow(1, 0, 1).tanh();

    let mut model = Mlp::new(dim, width, &device);
    let mut optim = SgdConfig::new().init();
    let mut tracker = FeatureTracker::new(
        &dir,
        TrackOptions::default()
            .layers(["hidden.weight"])
            .schedule(Schedule::Every(4))
            .ground_truth(GroundTruth::new("teacher", 1, dim, w_star)?),
    )?;
    let steps_per_epoch = n / batch;
    tracker.start(&model, epochs, steps_per_epoch)?;
    for epoch in 0..epochs {
        tracker.on_epoch_start(epoch);
        let mut epoch_loss = 0.0;
        for b in 0..steps_per_epoch {
            let xb = x.clone().narrow(0, b * batch, batch);
            let yb = y.clone().narrow(0, b * batch, batch);
            let loss = (model.forward(xb) - yb).powf_scalar(2.0).mean();
            epoch_loss += loss.clone().into_scalar::<f32>() / steps_per_epoch as f32;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(0.1, model, grads);
            tracker.on_batch_end(&model, b)?;
        }
        println!("epoch {epoch}: loss {epoch_loss:.4}");
    }
    let archive = tracker.finish(&model)?;

    // Read it back: every snapshot with its step and epoch.
    let feature = tracker.get_feature("hidden.weight")?;
    let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
    let first = feature.get(0);
    let at5 = feature.at_epoch(5).expect("epoch 5 was recorded");
    let last = feature.latest().expect("the final step is always recorded");
    println!(
        "{} snapshots of {} {:?} in {}",
        feature.len(),
        feature.name(),
        feature.shape(),
        archive.display()
    );
    println!(
        "||W||: {:.3} at step {}, {:.3} at the end of epoch 5 (step {}), {:.3} at step {}",
        norm(first.values),
        first.step,
        norm(at5.values),
        at5.step,
        norm(last.values),
        last.step
    );

    let style = Style::default();
    println!(
        "{}",
        plots::evolution(&dir, "hidden.weight", Stat::Norm, &style)?.display()
    );
    println!(
        "{}",
        plots::heatmap(&dir, "hidden.weight", At::Epoch(9), &style)?.display()
    );
    for f in plots::alignment(&dir, "hidden.weight", &style)? {
        println!("{}", f.display());
    }
    Ok(())
}
