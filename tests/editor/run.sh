#!/usr/bin/env bash
# The extension's integration tests inside a real VS Code (code-server 4.100.3 = VS Code 1.100.3),
# driven by headless Debian chromium, with the real language client and the real Python server:
#   1. set-up (tests/editor/setup.sh: apt + npm, a no-op when done), unless SKIP_SETUP=1
#   2. build and package the extension: tinyforge-<version>.vsix
#   3. install the .vsix into a fresh code-server (profile, extensions and workspace in a temp dir)
#   4. open the workspace with the installed extension as the development extension and the mocha
#      suite (client/test/integration) as its tests; driver.js waits, answers the tests' requests
#      for screenshots and DOM checks, and prints "editor: N passed, N failed".
# Screenshots land in artifacts/editor/ (not committed). Exit status: 0 only when all passed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/tests/editor
cd "$repo"
t0=$(date +%s)
[ "${SKIP_SETUP:-0}" = 1 ] || bash "$here/setup.sh" || { echo "editor: 0 passed, 1 failed (set-up)"; exit 1; }
PYTHON=${TINYFORGE_PYTHON:-$repo/.venv/bin/python}
CODE_SERVER=$here/node_modules/.bin/code-server

set -e
node client/esbuild.mjs --tests
rm -f tinyforge-*.vsix
npx vsce --version >/dev/null
npm run -s package >/dev/null
VSIX=$(ls tinyforge-*.vsix)
VERSION=$(node -p "require('./package.json').version")
set +e
t1=$(date +%s)

D=$(mktemp -d "${TMPDIR:-/tmp}/tinyforge-e2e.XXXXXX")
mkdir -p "$D/home" "$D/user/User" "$D/ext" "$D/ws/.vscode" "$D/answers"
cp "$here/settings.json" "$D/user/User/settings.json"
cp -r "$repo/fixtures/lsp/over_budget" "$D/ws/over_budget"
printf '{\n  "tinyforge.python.interpreter": "%s"\n}\n' "$PYTHON" > "$D/ws/.vscode/settings.json"
ARTIFACTS=${TINYFORGE_ARTIFACTS:-$repo/artifacts/editor}
rm -rf "$ARTIFACTS"; mkdir -p "$ARTIFACTS"

run_cs() { # code-server with its state in $D only
  HOME=$D/home XDG_CONFIG_HOME=$D/xdg XDG_DATA_HOME=$D/xdg XDG_CACHE_HOME=$D/xdg/cache \
    "$CODE_SERVER" --user-data-dir "$D/user" --extensions-dir "$D/ext" "$@"
}
run_cs --install-extension "$repo/$VSIX" > "$D/install.log" 2>&1
if ! run_cs --list-extensions --show-versions 2>/dev/null | grep -qx "tinyforge.tinyforge@$VERSION"; then
  cat "$D/install.log"; echo "editor: 0 passed, 1 failed (the .vsix did not install)"; exit 1
fi
EXT_DIR=$D/ext/tinyforge.tinyforge-$VERSION
echo "installed $VSIX into code-server ($EXT_DIR)"

PORT=${PORT:-$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")}
# Own process group (setsid): code-server leaves watcher children behind otherwise.
HOME=$D/home XDG_CONFIG_HOME=$D/xdg XDG_DATA_HOME=$D/xdg XDG_CACHE_HOME=$D/xdg/cache TMPDIR=$D \
  TINYFORGE_E2E_DIR=$D/answers TINYFORGE_REPO=$repo setsid \
  "$CODE_SERVER" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry --disable-update-check \
  --disable-workspace-trust --user-data-dir "$D/user" --extensions-dir "$D/ext" "$D/ws" > "$D/code-server.log" 2>&1 &
SPID=$!
cleanup() { kill -- -"$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.2; done

TINYFORGE_E2E_DIR=$D/answers TINYFORGE_ARTIFACTS=$ARTIFACTS \
  node "$here/driver.js" "http://127.0.0.1:$PORT" "$EXT_DIR" "$repo/client/out/test/integration/index.js" "$D/ws"
RC=$?
cleanup; trap - EXIT
cp "$D/code-server.log" "$ARTIFACTS/code-server.log" 2>/dev/null
find "$D/user/logs" -name '*.log' -path '*exthost*' -exec cp {} "$ARTIFACTS/" \; 2>/dev/null
t2=$(date +%s)
echo "editor tests: build+package $((t1 - t0)) s, editor run $((t2 - t1)) s; screenshots and logs in $ARTIFACTS (scratch: $D)"
[ "$RC" = 0 ] && [ "${KEEP_E2E:-0}" != 1 ] && rm -rf "$D"
exit $RC
