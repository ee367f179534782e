#!/usr/bin/env bash
# Install Debian's chromium, which tests/workflow opens the HTML report with (headless).
# Needs root (CI containers run as root) or sudo; does nothing when chromium is already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    chromium --version
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
chromium --version
