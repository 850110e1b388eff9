#!/usr/bin/env bash
# Debian's Chromium and its WebDriver (chromedriver), for the dashboard's browser test.
# Idempotent: nothing happens when both are installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium.sh: installing chromium and chromium-driver needs root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
