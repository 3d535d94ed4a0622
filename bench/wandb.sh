#!/usr/bin/env bash
# Does W&B logging slow training? One run of each, interleaved over ROUNDS: logger=none;
# logger=wandb against a server answering at once; against one answering every request after
# 2 s; against no server (connection refused). A W&B row every step (log_every=1) and a
# tracker snapshot every 10 steps. Reports the run time (summary.json duration_s: from the
# start, which waits for the first UpsertBucket as wandb.init does, to the end of training,
# before the upload backlog is waited for) and the median step, with the ratio to logger=none.
#   bash bench/wandb.sh          ROUNDS=5 bash bench/wandb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
BIN="$target/release/ezflt"
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
for d in 0 2; do
  python3 bench/slow_wandb.py "$work/port$d" "$d" & pids+=($!)
done
sleep 1
fast="http://127.0.0.1:$(cat "$work/port0")"
slow="http://127.0.0.1:$(cat "$work/port2")"
dead="http://127.0.0.1:9"
export WANDB_API_KEY=0123456789abcdef0123456789abcdef0123456789abcdef HOME="$work"
common=(threads=1 data.dim=100 data.classes=10 data.n_train=20000 data.n_test=1000 model.widths=[128]
  batch_size=64 epochs=3 log_every=1 checkpoint_every=0 plot=none tracker.schedule=every tracker.track_frequency=10)
wb=(logger=wandb logger.wandb.finish_timeout_s=1 logger.wandb.request_timeout_s=10)

# "train_s step_ms" of one run.
run_s() {
  rm -rf "$work/run"
  "$BIN" hydra.run.dir="$work/run" "${common[@]}" "$@" >/dev/null 2>&1
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"{s['duration_s']}:{s['step_ms_median']}\")" "$work/run/summary.json"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A T S
for _ in $(seq "$ROUNDS"); do
  for k in none fast slow down; do
    case $k in
      none) r=$(run_s logger=none) ;;
      fast) r=$(WANDB_BASE_URL=$fast run_s "${wb[@]}") ;;
      slow) r=$(WANDB_BASE_URL=$slow run_s "${wb[@]}") ;;
      down) r=$(WANDB_BASE_URL=$dead run_s "${wb[@]}") ;;
    esac
    T[$k]+="${r%%:*} "
    S[$k]+="${r##*:} "
  done
done
t0=$(median ${T[none]}); s0=$(median ${S[none]})
printf '%-28s %10s %8s %12s %8s\n' "logger" "train s" "ratio" "step ms" "ratio"
for k in none fast slow down; do
  t=$(median ${T[$k]}); s=$(median ${S[$k]})
  printf '%-28s %10.3f %8.3f %12.4f %8.3f\n' "$k" "$t" "$(echo "$t / $t0" | bc -l)" "$s" "$(echo "$s / $s0" | bc -l)"
done
