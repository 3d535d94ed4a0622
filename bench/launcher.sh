#!/usr/bin/env bash
# Launch overhead and parallel efficiency of sweeps, in one run: 40 small jobs (an MLP on
# the bundled digits, 60 epochs, about 150 ms each) with the
# local launcher at n_jobs=1 and n_jobs=2 (one thread per job), against Hydra 1.3's basic
# launcher running a comparable numpy task (bench/hydra_task, hydra-core from .venv).
# Overhead per job = (sweep wall time - sum of the jobs' own task times) / jobs.
#   bash bench/launcher.sh           JOBS=80 bash bench/launcher.sh
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-40}
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
BIN="$(pwd)/$target/release/ezflt"
[ -x "$BIN" ] || BIN="$target/release/ezflt"
bash scripts/setup-venv.sh >/dev/null
PY="$(pwd)/.venv/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seeds=$(seq -s, 0 $((JOBS - 1)))

ezflt_sweep() { # n_jobs -> "wall task_sum"
  rm -rf "$work/sw"
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$work" && "$BIN" -m hydra.sweep.dir=sw hydra.launcher.n_jobs="$1" hydra.launcher.threads_per_job=1 \
    "seed=$seeds" data=digits epochs=60 model.widths=[64] plot=none tracker=none checkpoint_every=0 >/dev/null)
  t1=$(date +%s.%N)
  local tasks
  tasks=$(cat "$work"/sw/*/summary.json | grep -o '"duration_s": [0-9.e-]*' | cut -d' ' -f2 | paste -sd+ | bc -l)
  echo "$(echo "$t1 - $t0" | bc -l) $tasks"
}

hydra_sweep() {
  rm -rf "$work/hy" && mkdir -p "$work/hy"
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$work/hy" && "$PY" "$OLDPWD/bench/hydra_task/app.py" -m "seed=$seeds" hydra.sweep.dir=sw >/dev/null 2>&1)
  t1=$(date +%s.%N)
  echo "$(echo "$t1 - $t0" | bc -l) $(paste -sd+ "$work/hy/tasks.txt" | bc -l)"
}

read -r w1 s1 <<<"$(ezflt_sweep 1)"
read -r w2 s2 <<<"$(ezflt_sweep 2)"
read -r wh sh <<<"$(hydra_sweep)"
printf '%-34s %9s %11s %16s\n' "$JOBS jobs" "wall_s" "tasks_s" "overhead/job_ms"
printf '%-34s %9.2f %11.2f %16.1f\n' "ezflt local n_jobs=1" "$w1" "$s1" "$(echo "($w1 - $s1) * 1000 / $JOBS" | bc -l)"
printf '%-34s %9.2f %11.2f %16s\n' "ezflt local n_jobs=2" "$w2" "$s2" "-"
printf '%-34s %9.2f %11.2f %16.1f\n' "hydra 1.3 basic launcher (python)" "$wh" "$sh" "$(echo "($wh - $sh) * 1000 / $JOBS" | bc -l)"
printf 'speed-up of 2 workers over 1: %.2fx\n' "$(echo "$w1 / $w2" | bc -l)"
