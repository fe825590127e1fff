#!/usr/bin/env bash
# Installs what the editor tests need, offline except for apt/npm, and only what is missing:
#   - Debian: chromium, ripgrep and code-server's native build deps (scripts/system-deps.sh)
#   - npm (top level): the extension's own dev tools (package-lock.json)
#   - npm (tests/editor): code-server 4.100.3 (a real VS Code 1.100.3) and playwright-core
# Re-runs are no-ops: each npm install is keyed on its package-lock.json.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/tests/editor
cd "$repo"

bash scripts/system-deps.sh

stamp_ok() { # stamp lock: the stamp holds the lock's hash
  [ -f "$1" ] && [ "$(cat "$1")" = "$(sha256sum "$2" | cut -d' ' -f1)" ]
}

bash scripts/client-setup.sh

if ! stamp_ok "$here/node_modules/.tinyforge-stamp" "$here/package-lock.json"; then
  echo "npm ci (code-server + playwright-core, ~40 s)"
  # code-server's postinstall fetches ripgrep from a host this machine cannot reach; it looks in
  # $TMPDIR/vscode-ripgrep-cache-<version>/ first, so put Debian's rg there.
  tmp=$(mktemp -d)
  mkdir -p "$tmp/vscode-ripgrep-cache-1.15.11"
  tar czf "$tmp/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg
  # As root npm drops privileges for scripts unless unsafe-perm; node-pty's build runs `npx
  # node-gyp` (yes); nodedir=/usr builds native modules against the installed Node's headers.
  (cd "$here" && TMPDIR=$tmp npm_config_unsafe_perm=true npm_config_yes=true npm_config_nodedir=/usr \
     npm ci --no-audit --no-fund --loglevel=error)
  rm -rf "$tmp"
  "$here/node_modules/.bin/code-server" --help >/dev/null
  sha256sum "$here/package-lock.json" | cut -d' ' -f1 > "$here/node_modules/.tinyforge-stamp"
fi
