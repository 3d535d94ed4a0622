#!/usr/bin/env bash
# Batched sweeps (issue 18): the same sweeps batched and not (batch=off), interleaved in one
# run on the local launcher (one worker per core). The MLP sweep runs with the default
# batch=auto (so do the sequential MLP, with and without dropout, and the purification sweep:
# Adam and PGD per member);
# the CNN, two-layer CNN and mean-field sweeps, which auto leaves unbatched, with batches
# forced (batch=4 / 8 / 14), to show what stacking them costs. The 75-run
# benign-overfitting phase diagram is also timed against a sequential PyTorch 2.9 script
# (bench/phase_diagram.py in one process). Then the time per member-step of the default MLP
# as a batch grows (one worker, batch=K). Wall times include start-up, tracking and figures.
#   bash bench/batched.sh            # 3 rounds
#   ROUNDS=5 bash bench/batched.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
venv="${EZFLT_TORCH_VENV:-$HOME/.cache/ezflt/venv-torch}"
PY="$venv/bin/python"
[ -x "$PY" ] || { echo "run bash scripts/setup-torch.sh first (PyTorch 2.9.0 reference)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
BIN="$target/release/ezflt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2fx", b/a}'; }
seeds16=seed=$(seq -s, 0 15)

# name | batch setting | overrides
cases=(
  "16 seeds, default MLP|auto|$seeds16"
  "16 seeds, the default MLP as model=sequential|auto|model=sequential $seeds16"
  "16 seeds, the same with dropout 0.2|auto|model=sequential model.layers=[{linear:64},relu,{dropout:0.2},{linear:out}] $seeds16"
  "8 seeds, feature purification (MLP, Adam, l2 PGD; 4 epochs)|auto|experiment=purification epochs=4 seed=0,1,2,3,4,5,6,7"
  "8 seeds, image CNN on digits (momentum SGD)|4|model=cnn data=digits optimizer.momentum=0.9 seed=0,1,2,3,4,5,6,7"
  "16 seeds, benign-overfitting cell (n=40, SNR 0.3)|8|experiment=benign_overfitting data.n_train=40 data.snr=0.3 $seeds16"
  "75-run phase diagram|8|experiment=benign_overfitting data.n_train=10,20,40,80,160 data.snr=0.1,0.2,0.3,0.5,0.8 seed=0,1,2"
  "27-run lazy vs rich (9 scales x 3 seeds)|14|experiment=lazy_rich model.scale=0.01,0.03,0.1,0.3,1,3,10,30,100 seed=0,1,2"
)
for c in "${cases[@]}"; do
  name=${c%%|*}; rest=${c#*|}; batch=${rest%%|*}; read -ra args <<<"${rest#*|}"
  on=(); off=(); torch=()
  for r in $(seq "$ROUNDS"); do
    t0=$(now)
    "$BIN" -m "${args[@]}" hydra.launcher.batch="$batch" hydra.sweep.dir="$work/on$r" >/dev/null
    t1=$(now)
    "$BIN" -m "${args[@]}" hydra.launcher.batch=off hydra.sweep.dir="$work/off$r" >/dev/null
    t2=$(now)
    on+=("$(secs "$t0" "$t1")"); off+=("$(secs "$t1" "$t2")")
    if [[ $name == 75-run* ]]; then
      "$PY" bench/phase_diagram.py --rank 0 --procs 1 >/dev/null
      torch+=("$(secs "$t2" "$(now)")")
    fi
    rm -rf "$work/on$r" "$work/off$r"
  done
  b=$(median "${on[@]}"); u=$(median "${off[@]}")
  line="$name: batched (batch=$batch) $b s, unbatched $u s: batched is $(ratio "$b" "$u") as fast"
  if [ ${#torch[@]} -gt 0 ]; then
    p=$(median "${torch[@]}")
    line+="; sequential PyTorch $p s: $(ratio "$b" "$p")"
  fi
  echo "$line (median of $ROUNDS rounds)"
done

echo "Default MLP, one worker, batch=K: median ms per step of the batch, per member, and peak RSS"
# GNU time (Debian's `time` package) reports the peak resident memory of the worker.
timer=(); [ -x /usr/bin/time ] && timer=(/usr/bin/time -f %M -o "$work/rss")
for K in 1 4 16 64 256; do
  "${timer[@]}" "$BIN" -m seed=$(seq -s, 0 $((K - 1))) hydra.launcher.n_jobs=1 hydra.launcher.batch="$K" \
    plot=none tracker=none checkpoint_every=0 hydra.sweep.dir="$work/k$K" >/dev/null
  ms=$(sed -n 's/.*"step_ms_median": \([0-9.e-]*\).*/\1/p' "$work/k$K/0/summary.json")
  rss=$([ -f "$work/rss" ] && awk '{printf "%.0f MB", $1/1024}' "$work/rss" || echo "n/a")
  echo "  K=$K: $ms ms a step, $(awk -v m="$ms" -v k="$K" 'BEGIN{printf "%.4f", m/k}') ms per member-step, peak RSS $rss"
  rm -rf "$work/k$K"
done
