//! Builds burn's optimizer from the plain spec, with PyTorch's defaults where burn's
//! differ (momentum dampening 0, Adam epsilon 1e-8), so results compare with PyTorch.

use super::{OptimKind, OptimSpec};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};

pub fn build(spec: &OptimSpec) -> ModuleOptimizer {
    let wd = (spec.weight_decay > 0.0).then(|| WeightDecayConfig::new(spec.weight_decay as f32));
    match spec.kind {
        OptimKind::Sgd {
            momentum,
            dampening,
            nesterov,
        } => SgdConfig::new()
            .with_weight_decay(wd)
            .with_momentum((momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(dampening)
                    .with_nesterov(nesterov)
            }))
            .init(),
        OptimKind::Adam { betas, eps } => AdamConfig::new()
            .with_beta_1(betas.0 as f32)
            .with_beta_2(betas.1 as f32)
            .with_epsilon(eps as f32)
            .with_weight_decay(wd)
            .init(),
        OptimKind::AdamW { betas, eps } => AdamWConfig::new()
            .with_beta_1(betas.0 as f32)
            .with_beta_2(betas.1 as f32)
            .with_epsilon(eps as f32)
            .with_weight_decay(spec.weight_decay as f32)
            .init(),
    }
}
