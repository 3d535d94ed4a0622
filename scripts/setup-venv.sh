#!/usr/bin/env bash
# Creates .venv with the reference implementations the differential tests compare against
# (hydra-core 1.3.2, and numpy to open the feature archives, from PyPI). Idempotent: does nothing when they are already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && .venv/bin/python -c "import hydra, numpy, sys; sys.exit(hydra.__version__ != '1.3.2')" 2>/dev/null; then
  exit 0
fi
"$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check "hydra-core==1.3.2" numpy
.venv/bin/python -c "import hydra; print('hydra-core', hydra.__version__, 'ready in .venv')"
