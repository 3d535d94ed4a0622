#!/usr/bin/env bash
# Issue 17's table: ms per training step of an MLP 784-W-10 (SGD, cross-entropy) for each
# width W x batch size, ezflt Flex with threads=1, threads=2 and the default (threads=null),
# LibTorch CPU when the tch build exists, and PyTorch 2.9 eager with 1 and 2 threads, all in
# one run, interleaved. Ratios are Flex / PyTorch at the same thread count (below 1: ezflt
# faster). Needs scripts/setup-torch.sh's venv.
#   bash bench/mlp_table.sh              # 1 round, 100 timed steps a cell
#   ROUNDS=3 STEPS=200 bash bench/mlp_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-1}
STEPS=${STEPS:-100}
venv="${EZFLT_TORCH_VENV:-$HOME/.cache/ezflt/venv-torch}"
PY="$venv/bin/python"
[ -x "$PY" ] || { echo "run bash scripts/setup-torch.sh first (PyTorch 2.9.0 reference)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
FLEX="$target/release/ezflt"
TCH="${EZFLT_TCH_BIN:-${target}-tch/release/ezflt}"
[ -x "$TCH" ] || TCH=""
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ezflt's median step time and the threads it used (summary.json).
ez() { # bin backend threads width batch
  rm -rf "$work/run"
  "$1" hydra.run.dir="$work/run" backend="$2" threads="$3" data.dim=784 data.classes=10 \
    data.n_train=$(( $5 * 4 > 6400 ? $5 * 4 : 6400 )) data.n_test=64 model.widths=["$4"] \
    batch_size="$5" max_steps=$((STEPS + 20)) log_every=100000 eval_every=100000 \
    checkpoint_every=0 tracker=none plot=none lr=0.01 >/dev/null
  "$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print('%.3f/%d' % (s['step_ms_median'], s['threads']))" "$work/run/summary.json"
}
torch_ms() { "$PY" bench/pytorch_step.py --model mlp --width "$1" --batch "$2" --threads "$3" --steps "$STEPS" --warmup 20; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ms() { echo "${1%/*}"; }

echo "| W x batch | Flex 1 thread | Flex threads=2 | Flex default (threads used) | LibTorch CPU 1 / 2 | PyTorch 1 / 2 | Flex / PyTorch, 1 / 2 threads |"
echo "|---|---|---|---|---|---|---|"
for cell in "128 64" "512 64" "512 256" "2048 64" "2048 256" "2048 1024"; do
  set -- $cell
  f1=(); f2=(); fd=(); t1=(); t2=(); p1=(); p2=(); used=1
  for _ in $(seq "$ROUNDS"); do
    f1+=("$(ms "$(ez "$FLEX" flex 1 "$1" "$2")")")
    f2+=("$(ms "$(ez "$FLEX" flex 2 "$1" "$2")")")
    r=$(ez "$FLEX" flex null "$1" "$2"); fd+=("$(ms "$r")"); used=${r#*/}
    if [ -n "$TCH" ]; then
      t1+=("$(ms "$(ez "$TCH" tch 1 "$1" "$2")")"); t2+=("$(ms "$(ez "$TCH" tch 2 "$1" "$2")")")
    fi
    p1+=("$(torch_ms "$1" "$2" 1)"); p2+=("$(torch_ms "$1" "$2" 2)")
  done
  a=$(median "${f1[@]}"); b=$(median "${f2[@]}"); c=$(median "${fd[@]}")
  x=$(median "${p1[@]}"); y=$(median "${p2[@]}")
  tch="-"; [ -n "$TCH" ] && tch="$(median "${t1[@]}") / $(median "${t2[@]}")"
  echo "| $1 x $2 | $a | $b | $c ($used) | $tch | $x / $y | $(awk -v a="$a" -v b="$x" -v c="$b" -v d="$y" 'BEGIN{printf "%.2fx / %.2fx", a/b, c/d}') |"
done
echo "(median ms per step over $STEPS steps after 20 warm-up, median of $ROUNDS round(s); $(nproc) cores; $(date +%F))"
