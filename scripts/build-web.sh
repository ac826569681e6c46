#!/usr/bin/env bash
# Type-checks the browser client (web/src, strict TypeScript) and bundles it into Public/app.js and
# Public/recorder-worklet.js with Debian's tsc (node-typescript) and esbuild. Both are installed by `avatar setup`.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in tsc esbuild; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found: run \`avatar setup\` (or apt-get install -y node-typescript esbuild)" >&2; exit 1; }
done
echo "==> web client: tsc (type-check) + esbuild (bundle)"
tsc -p web
esbuild web/src/main.ts --bundle --format=esm --target=es2020 --minify --sourcemap --log-level=warning --outfile=Public/app.js
esbuild web/src/recorder-worklet.ts --bundle --format=esm --target=es2020 --minify --log-level=warning --outfile=Public/recorder-worklet.js
ls -l Public/app.js Public/recorder-worklet.js | awk '{print "    " $9 ": " $5 " bytes"}'
