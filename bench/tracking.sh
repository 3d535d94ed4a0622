#!/usr/bin/env bash
# Cost of feature tracking, measured in one run: the MLP 784-128-10 on MNIST-sized data
# (60000 samples, batch 64, 5 epochs = 4690 steps) without tracking, with every-batch
# tracking of all weights (a 1.9 GB archive), and with the log schedule. Reports the whole
# run's wall time and the median step time (the archive's assembly at the end is in the
# wall time only); then peak memory with tracking at 5 vs 50 epochs (it must stay flat).
#   bash bench/tracking.sh          ROUNDS=5 bash bench/tracking.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
BIN="$target/release/ezflt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(threads=1 data.dim=784 data.classes=10 data.n_train=60000 data.n_test=1000 model.widths=[128]
  batch_size=64 lr=0.01 log_every=100 checkpoint_every=0)

# "wall_s step_ms" of one whole run (process start to exit; median step from summary.json).
run_s() {
  rm -rf "$work/run"
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" hydra.run.dir="$work/run" "${common[@]}" "$@" >/dev/null
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc):$(grep -o '"step_ms_median": [0-9.e-]*' "$work/run/summary.json" | cut -d' ' -f2)"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A W S
for _ in $(seq "$ROUNDS"); do
  for k in none every log; do
    case $k in
      none) r=$(run_s epochs=5 tracker=none) ;;
      every) r=$(run_s epochs=5 tracker.track_frequency=1 'tracker.layers=[]' tracker.max_bytes=4e9) ;;
      log) r=$(run_s epochs=5 tracker.schedule=log) ;;
    esac
    W[$k]+="${r%%:*} "
    S[$k]+="${r##*:} "
  done
done
wb=$(median ${W[none]}); sb=$(median ${S[none]})
printf '%-26s %9s %9s %10s %9s\n' "5 epochs (4690 steps)" "wall_s" "vs none" "step_ms" "vs none"
for k in none every log; do
  w=$(median ${W[$k]}); st=$(median ${S[$k]})
  printf '%-26s %9.3f %+8.1f%% %10.4f %+8.1f%%\n' "$k" "$w" "$(echo "($w / $wb - 1) * 100" | bc -l)" \
    "$st" "$(echo "($st / $sb - 1) * 100" | bc -l)"
done
echo "  every = all 101,770 weights every batch (4691 snapshots); log = first layer, 50 log-spaced steps"

printf '\n%-34s %12s\n' "peak RSS (6400 samples, every 10 steps, all weights)" "max RSS"
for e in 5 50; do
  rm -rf "$work/run"
  kb=$( { /usr/bin/time -f "%M" "$BIN" hydra.run.dir="$work/run" "${common[@]}" data.n_train=6400 epochs=$e tracker.track_frequency=10 'tracker.layers=[]' >/dev/null; } 2>&1 | tail -1)
  printf '%-34s %9s MB\n' "$e epochs" "$((kb / 1024))"
done
