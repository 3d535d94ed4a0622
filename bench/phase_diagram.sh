#!/usr/bin/env bash
# The 75-run benign-overfitting phase diagram (issue 17's target): ezflt's sweep with default
# settings (local launcher, one worker per core) against the same runs as a plain PyTorch 2.9
# script split over as many processes, in one run, interleaved. Wall time includes start-up
# (Python's `import torch`, ezflt's composition) and, for ezflt, tracking and the figures.
#   bash bench/phase_diagram.sh            # 3 rounds
#   ROUNDS=5 bash bench/phase_diagram.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
PROCS=${PROCS:-$(nproc)}
venv="${EZFLT_TORCH_VENV:-$HOME/.cache/ezflt/venv-torch}"
PY="$venv/bin/python"
[ -x "$PY" ] || { echo "run bash scripts/setup-torch.sh first (PyTorch 2.9.0 reference)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
BIN="$target/release/ezflt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
ez=(); py=()
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  "$BIN" -m experiment=benign_overfitting data.n_train=10,20,40,80,160 data.snr=0.1,0.2,0.3,0.5,0.8 \
    seed=0,1,2 hydra.sweep.dir="$work/sweep$r" >/dev/null
  t1=$(now)
  for k in $(seq 0 $((PROCS - 1))); do "$PY" bench/phase_diagram.py --rank "$k" --procs "$PROCS" >/dev/null & done
  wait
  t2=$(now)
  ez+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')")
  py+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.2f", b-a}')")
  echo "round $r: ezflt ${ez[-1]} s, PyTorch ${py[-1]} s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
e=$(median "${ez[@]}"); p=$(median "${py[@]}")
echo "75 runs, $PROCS processes: ezflt $e s, PyTorch $p s: ezflt is $(awk -v a="$e" -v b="$p" 'BEGIN{printf "%.2fx", b/a}') as fast (median of $ROUNDS rounds)"
