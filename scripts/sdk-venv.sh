#!/usr/bin/env bash
# Creates the Python venvs with the official client SDKs the tests drive our services with:
#   .venv/current   openai 3.x, anthropic 2.x, mcp 2.x   (the current majors)
#   .venv/previous  openai 2.x, anthropic 1.x, mcp 1.x   (the previous majors)
#   .venv/legacy    openai 1.x, anthropic 0.x            (what many projects still pin)
# Idempotent: a venv whose requirements file has not changed is kept. With arguments, only
# those venvs (`scripts/sdk-venv.sh current`); the tests call it so on first use.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
base="${STACK_SDK_VENVS:-$root/.venv}"
python="${PYTHON:-python3}"
mkdir -p "$base"
flavors=("$@")
[ ${#flavors[@]} -gt 0 ] || flavors=(current previous legacy)
for flavor in "${flavors[@]}"; do
  req="$root/tests/python/requirements-$flavor.txt"
  dir="$base/$flavor"
  stamp="$dir/.requirements"
  if [ -x "$dir/bin/python" ] && cmp -s "$req" "$stamp"; then
    echo "sdk-venv: $flavor is up to date"
    continue
  fi
  echo "sdk-venv: creating $dir"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
  "$dir/bin/pip" list --format=freeze 2>/dev/null | grep -iE '^(openai|anthropic|mcp|httpx)==' | sed "s/^/sdk-venv: $flavor: /"
done
