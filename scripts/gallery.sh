#!/usr/bin/env bash
# Regenerates every figure in docs/img/ (the README's galleries) from fresh runs, with the
# commands the README's captions give (scaled-down sizes; a few minutes on 2 cores).
# report.png needs headless Chromium (scripts/setup-chromium.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$repo/target}/release/ezflt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
ez() { "$bin" -q "$@"; }
# Copies the one figure matching a glob to docs/img/<name>; fails if none or several match.
take() {
  local pattern=$1 name=$2
  # shellcheck disable=SC2206
  local found=($pattern)
  if [ ${#found[@]} -ne 1 ] || [ ! -f "${found[0]}" ]; then
    echo "gallery: expected one file for $pattern, found: ${found[*]}" >&2
    exit 1
  fi
  cp "${found[0]}" "$repo/docs/img/$name"
  echo "docs/img/$name  <-  ${found[0]}"
}

# Paper reproductions (experiments/).
ez -m experiment=purification adv.train=false,true hydra.sweep.dir=pur
take 'pur/0/plots/alignment_layers.0.weight_atoms.png' purification_clean.png
take 'pur/1/plots/alignment_layers.0.weight_atoms.png' purification_adversarial.png
take 'pur/1/plots/sparsity_layers.0.weight_atoms.png' purification_sparsity.png
ez -m experiment=benign_overfitting data.n_train=10,20,40,80,160 data.snr=0.1,0.2,0.4,0.8 \
  seed=0,1,2 hydra.sweep.dir=benign
ez plot benign --metric test_acc
take 'benign/plots/phase_test_acc.png' benign_phase_diagram.png
ez train experiment=grokking hydra.run.dir=grok
take 'grok/plots/curves.png' grokking_curves.png
take 'grok/plots/best_alignment_*.png' grokking_fourier.png
# Sparse parity: the default init and a 10x smaller first layer, 3 seeds each, overlaid,
# for the full 10,000 steps (overlays end where the first seed stops).
ez -m experiment=sparse_parity seed=0,1,2 early_stopping.monitor=null hydra.sweep.dir=parity
ez -m experiment=sparse_parity seed=0,1,2 early_stopping.monitor=null \
  'model.layers=[{linear: {out: 256, init: 0.0091}}, relu, {linear: out}]' lr=0.02 \
  hydra.sweep.dir=parity_small
ez plot parity parity_small --band minmax --out parity_cmp
take 'parity_cmp/overlay_test_acc.png' sparse_parity_accuracy.png
take 'parity_cmp/overlay_subspace_0.weight_relevant.png' sparse_parity_progress.png
# Deep linear networks: the staircase of mode strengths with 2 and 3 layers.
ez train experiment=deep_linear hydra.run.dir=linear2
take 'linear2/plots/modes.png' deep_linear_two_layers.png
ez train experiment=deep_linear hydra.run.dir=linear3 model.init=1e-2 epochs=4000 \
  'model.layers=[{linear: {out: 20, bias: false}}, {linear: {out: 20, bias: false}}, {linear: {out: out, bias: false}}]'
take 'linear3/plots/modes.png' deep_linear_three_layers.png
# Lazy vs rich: test error, weight change and alignment against the init scale, 3 seeds.
ez -m experiment=lazy_rich model.scale=0.01,0.03,0.1,0.3,1,3,10,30,100 seed=0,1,2 \
  hydra.sweep.dir=lazy
ez plot lazy --metric test_rel_mse,change_w,align_weighted_w_directions --log-x --out lazy_plots
take 'lazy_plots/sweep_vs_model.scale.png' lazy_rich.png
ez train experiment=cae_anomaly hydra.run.dir=cae
take 'cae/plots/best_alignment_kernels_features.png' cae_kernel_alignment.png

# The plots gallery.
ez train model=two_layer_cnn data=signal_noise batch_size=full lr=0.1 epochs=300 data.snr=0.5 \
  hydra.run.dir=signal
take 'signal/plots/best_alignment_filters_signal.png' benign_signal_alignment.png
take 'signal/plots/evolution_filters.png' evolution_filters.png
ez train model=two_layer_cnn data=signal_noise batch_size=full lr=0.1 epochs=300 data.snr=0.1 \
  hydra.run.dir=noise
take 'noise/plots/best_alignment_filters_noise.png' harmful_noise_memorisation.png
ez train data=digits model.widths=[64] optimizer=adam lr=3e-3 epochs=30 hydra.run.dir=digits
take 'digits/plots/input_space_layers.0.weight.png' input_space_digits.png
take 'digits/plots/curves.png' curves_digits.png
ez -m data.noise=0.5,2.0,4.0 lr=0.01,0.03,0.1 seed=0,1 epochs=2 hydra.sweep.dir=grid
ez plot grid
take 'grid/plots/phase_test_acc.png' sweep_phase.png
# Seeds as a mean with a band, one colour per learning rate; and the report page of that sweep.
ez -m lr=0.02,0.1,0.5 seed=0,1,2 epochs=8 hydra.sweep.dir=multirun/lr-sweep
ez plot multirun/lr-sweep
take 'multirun/lr-sweep/plots/overlay_test_acc.png' overlay_seeds.png
# A tracked summary across runs: signal recovery per SNR, 3 seeds each.
ez -m model=two_layer_cnn data=signal_noise batch_size=full lr=0.1 epochs=300 data.snr=0.1,0.5 \
  seed=0,1,2 hydra.sweep.dir=snr
ez plot snr
take 'snr/plots/overlay_recovery_filters_signal.png' overlay_recovery.png
"$bin" report multirun/lr-sweep >/dev/null
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1000 \
  --screenshot="$repo/docs/img/report.png" "file://$work/multirun/lr-sweep/report.html" 2>/dev/null
echo "docs/img/report.png  <-  multirun/lr-sweep/report.html"
