#!/usr/bin/env bash
# Time per training step: ezflt (Flex, and LibTorch CPU when the tch build exists) against
# PyTorch 2.9 eager on the same models and shapes, in one run. Prints a table with ratios
# (ezflt / PyTorch: below 1 = ezflt faster). Needs scripts/setup-torch.sh's venv.
#   bash bench/train_step.sh            # threads=1, 3 interleaved rounds
#   THREADS=2 ROUNDS=5 bash bench/train_step.sh
#   DEVICE=cuda bash bench/train_step.sh   # on a GPU machine: tch CUDA vs PyTorch CUDA
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-500}
DEVICE=${DEVICE:-cpu}
venv="${EZFLT_TORCH_VENV:-$HOME/.cache/ezflt/venv-torch}"
PY="$venv/bin/python"
[ -x "$PY" ] || { echo "run bash scripts/setup-torch.sh first (PyTorch 2.9.0 reference)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
FLEX="$target/release/ezflt"
TCH="${EZFLT_TCH_BIN:-${target}-tch/release/ezflt}"
[ -x "$TCH" ] || { echo "(no tch build at $TCH: scripts/cargo-tch build --release adds the LibTorch column)"; TCH=""; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ezflt's own median step time (summary.json: step_ms_median), same shapes as pytorch_step.py.
ezflt_ms() { # bin backend model optim
  local bin=$1 backend=$2 model=$3 optim=$4 lr=0.01
  [ "$optim" = adam ] && lr=1e-3
  local common=(hydra.run.dir="$work/run" threads="$THREADS" backend="$backend" batch_size=64
    max_steps=$((STEPS + 50)) log_every=100000 eval_every=100000 checkpoint_every=0 optimizer="$optim" lr=$lr)
  [ "$DEVICE" = cuda ] && common+=(device=cuda:0)
  rm -rf "$work/run"
  if [ "$model" = mlp ]; then
    "$bin" "${common[@]}" data.dim=784 data.classes=10 data.n_train=6400 data.n_test=64 model.widths=[128] >/dev/null
  else
    "$bin" "${common[@]}" model=two_layer_cnn model.filters=32 data=signal_noise data.patches=16 data.dim=64 \
      data.n_train=6400 data.n_test=64 data.snr=0.1 >/dev/null
  fi
  "$PY" -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['step_ms_median'])" "$work/run/summary.json"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-10s %-5s %10s %10s %10s %12s %12s\n' model optim flex_ms tch_ms torch_ms flex/torch tch/torch
for case in "mlp sgd" "cnn sgd" "mlp adam" "cnn adam"; do
  set -- $case
  fl=(); tc=(); py=()
  for _ in $(seq "$ROUNDS"); do
    if [ "$DEVICE" = cpu ]; then fl+=("$(ezflt_ms "$FLEX" flex "$1" "$2")"); fi
    if [ -n "$TCH" ]; then tc+=("$(ezflt_ms "$TCH" tch "$1" "$2")"); fi
    py+=("$("$PY" bench/pytorch_step.py --model "$1" --optim "$2" --steps "$STEPS" --threads "$THREADS" --device "$DEVICE")")
  done
  f=$([ ${#fl[@]} -gt 0 ] && median "${fl[@]}" || echo nan)
  t=$([ ${#tc[@]} -gt 0 ] && median "${tc[@]}" || echo nan)
  p=$(median "${py[@]}")
  printf '%-10s %-5s %10s %10s %10s %12s %12s\n' "$1" "$2" "$f" "$t" "$p" \
    "$(awk -v a="$f" -v b="$p" 'BEGIN{ if (a=="nan") print "-"; else printf "%.2fx", a/b }')" \
    "$(awk -v a="$t" -v b="$p" 'BEGIN{ if (a=="nan") print "-"; else printf "%.2fx", a/b }')"
done
echo "(median ms per step over $STEPS steps after 50 warm-up, median of $ROUNDS interleaved rounds, threads=$THREADS, device=$DEVICE)"
