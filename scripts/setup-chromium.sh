#!/usr/bin/env bash
# Installs headless Chromium (Debian's package) for the test that loads `ezflt report`'s page
# in a real browser. Idempotent: installs only when missing.
set -euo pipefail
if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
chromium --version
