#!/usr/bin/env bash
# The VS Code extension's npm tools (package-lock.json), installed only when the lock changed.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=node_modules/.tinyforge-stamp
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  echo "npm ci (extension tools)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > "$stamp"
fi
