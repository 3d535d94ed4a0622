#!/usr/bin/env bash
# Times `--cfg job` of ezflt against Python Hydra (hydra-core 1.3.2) on the same conf tree,
# in the same run, and prints the ratio. Target: ezflt at least 50x faster.
# Usage: bash bench/compose_vs_hydra.sh [runs]   (needs scripts/setup-venv.sh and a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
bash scripts/setup-venv.sh >/dev/null
cargo build --release --quiet
BIN=$PWD/target/release/ezflt
PY=$PWD/.venv/bin/python
cd tests/fixtures/app
ARGS=(-cp conf --cfg job experiment=exp1 +db=mysql seed=3 lr=0.1)
time_it() { # prints mean seconds per run
  local start end
  start=$(date +%s.%N)
  for _ in $(seq "$RUNS"); do "$@" >/dev/null; done
  end=$(date +%s.%N)
  python3 -c "print(($end - $start) / $RUNS)"
}
# Same output first, or the timing means nothing.
diff <("$BIN" "${ARGS[@]}") <("$PY" app.py "${ARGS[@]}") >/dev/null || { echo "outputs differ"; exit 1; }
E=$(time_it "$BIN" "${ARGS[@]}")
H=$(time_it "$PY" app.py "${ARGS[@]}")
python3 -c "print(f'ezflt  --cfg job: {$E*1000:8.2f} ms/run'); print(f'hydra  --cfg job: {$H*1000:8.2f} ms/run'); print(f'ratio (hydra / ezflt): {$H/$E:.1f}x  (target >= 50x)')"
