#!/usr/bin/env bash
# Make `docker-compose` available for the compose-file checks in tests/unit/test_deploy.py.
# Idempotent: does nothing when it is already on PATH. Installs Debian's package (1.29, which
# validates the file against the Compose specification) as root, or through passwordless sudo.
set -euo pipefail

if command -v docker-compose >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "docker-compose is missing and there is no apt-get here: install docker-compose" \
         "(Compose v1.29+, or a 'docker-compose' wrapper for 'docker compose') and rerun." >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "docker-compose is missing: run 'apt-get install -y docker-compose' as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
docker-compose version --short
