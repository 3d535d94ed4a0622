#!/usr/bin/env bash
# Creates .venv with the reference implementations the differential tests compare against
# (hydra-core 1.3.2; numpy to open the feature archives; the official W&B client wandb 0.31.0,
# with pillow for its images), all from PyPI. Idempotent: does nothing when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
check='import hydra, numpy, wandb, PIL, sys; sys.exit(hydra.__version__ != "1.3.2" or wandb.__version__ != "0.31.0")'
if [ -x .venv/bin/python ] && .venv/bin/python -c "$check" 2>/dev/null; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "hydra-core==1.3.2" numpy "wandb==0.31.0" pillow
.venv/bin/python -c "$check"
.venv/bin/python -c "import hydra, wandb; print('hydra-core', hydra.__version__, 'and wandb', wandb.__version__, 'ready in .venv')"
