#!/usr/bin/env bash
# Test set-up: Debian's headless-capable `chromium`, used by tests/integration/test_report.py
# to open the `stagelog report` page. Idempotent; installs only when missing (needs root or
# passwordless sudo on a fresh machine).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
command -v chromium >/dev/null
