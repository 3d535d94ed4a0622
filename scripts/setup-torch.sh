#!/usr/bin/env bash
# Creates .venv-torch with PyTorch 2.9.0 from PyPI: the LibTorch that burn-tch 0.22 builds
# against (feature `tch`) and the reference for bench/. Idempotent; about 7 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
# Outside the clone, so every checkout (and CI) shares one install and one libtorch path:
# changing that path makes cargo rebuild torch-sys and every burn crate.
venv="${EZFLT_TORCH_VENV:-$HOME/.cache/ezflt/venv-torch}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.9.0")' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "torch==2.9.0" numpy
"$venv/bin/python" -c 'import torch; print("torch", torch.__version__, "in", torch.__file__)'
