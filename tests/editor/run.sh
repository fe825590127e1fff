#!/usr/bin/env bash
# The extension's integration tests inside a real VS Code (code-server 4.100.3 = VS Code 1.100.3),
# driven by headless Debian chromium, with the real language client and the real Python server:
#   1. set-up (tests/editor/setup.sh: apt + npm, a no-op when done), unless SKIP_SETUP=1
#   2. build and package the extension: tinyforge-<version>.vsix
#   3. install the .vsix into a fresh code-server (profile, extensions and workspace in a temp dir)
#   4. open a workspace with the installed extension as the development extension and the mocha
#      suite (client/test/integration) as its tests; driver.js waits and answers the tests'
#      requests for screenshots and DOM checks. Two sessions: "main" (interpreter set in the
#      workspace) and "managed-env" (none set: the extension makes its own environment)
#   5. print "editor: N passed, N failed" over both
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
mkdir -p "$D/home" "$D/ext" "$D/ws/.vscode"
cp -r "$repo/fixtures/lsp/over_budget" "$D/ws/over_budget"
printf '{\n  "tinyforge.python.interpreter": "%s"\n}\n' "$PYTHON" > "$D/ws/.vscode/settings.json"
ARTIFACTS=${TINYFORGE_ARTIFACTS:-$repo/artifacts/editor}
rm -rf "$ARTIFACTS"; mkdir -p "$ARTIFACTS"

run_cs() { # code-server with its state in $D only
  HOME=$D/home XDG_CONFIG_HOME=$D/xdg XDG_DATA_HOME=$D/xdg XDG_CACHE_HOME=$D/xdg/cache \
    "$CODE_SERVER" --user-data-dir "$D/user-main" --extensions-dir "$D/ext" "$@"
}
run_cs --install-extension "$repo/$VSIX" > "$D/install.log" 2>&1
if ! run_cs --list-extensions --show-versions 2>/dev/null | grep -qx "tinyforge.tinyforge@$VERSION"; then
  cat "$D/install.log"; echo "editor: 0 passed, 1 failed (the .vsix did not install)"; exit 1
fi
EXT_DIR=$D/ext/tinyforge.tinyforge-$VERSION
echo "installed $VSIX into code-server ($EXT_DIR)"

# One editor session: code-server on a free loopback port in its own process group (setsid:
# it leaves watcher children behind otherwise), the driver, then the group killed.
# usage: session NAME WORKSPACE [VAR=value …] (extra environment for code-server and so the
# extension host and the Python server)
session() {
  local name=$1 ws=$2; shift 2
  local port answers=$D/answers-$name
  port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  mkdir -p "$answers"
  env "$@" HOME="$D/home" XDG_CONFIG_HOME="$D/xdg" XDG_DATA_HOME="$D/xdg" XDG_CACHE_HOME="$D/xdg/cache" TMPDIR="$D" \
    TINYFORGE_E2E_DIR="$answers" TINYFORGE_SUITE="$name" setsid \
    "$CODE_SERVER" --auth none --bind-addr "127.0.0.1:$port" --disable-telemetry --disable-update-check \
    --disable-workspace-trust --user-data-dir "$D/user-$name" --extensions-dir "$D/ext" "$ws" > "$D/code-server-$name.log" 2>&1 &
  SPID=$!
  trap 'kill -- -$SPID 2>/dev/null' EXIT
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
  TINYFORGE_E2E_DIR=$answers TINYFORGE_ARTIFACTS=$ARTIFACTS TINYFORGE_SUITE=$name \
    node "$here/driver.js" "http://127.0.0.1:$port" "$EXT_DIR" "$repo/client/out/test/integration/index.js" "$ws"
  local rc=$?
  kill -- -"$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; trap - EXIT
  cp "$D/code-server-$name.log" "$ARTIFACTS/" 2>/dev/null
  find "$D/user-$name/logs" -name '*.log' \( -path '*exthost*' -o -name '*TinyForge*' \) -exec cp {} "$ARTIFACTS/" \; 2>/dev/null
  node -e "const c=require('$answers/counts.json');console.log(c.passed, c.failed)" 2>/dev/null >> "$D/counts" || echo "0 1" >> "$D/counts"
  return $rc
}

mkdir -p "$D/user-main/User" "$D/user-managed-env/User"
cp "$here/settings.json" "$D/user-main/User/settings.json"
cp "$here/settings.json" "$D/user-managed-env/User/settings.json"
# The same interpreter in the user's settings: one only the workspace sets asks the user first.
node -e 'const [f, p] = process.argv.slice(1), s = require(f); s["tinyforge.python.interpreter"] = p;
  require("fs").writeFileSync(f, JSON.stringify(s, null, 2))' "$D/user-main/User/settings.json" "$PYTHON"
: > "$D/counts"
session main "$D/ws"; RC=$?
# No interpreter configured: the extension makes its own environment; pip meets an index that
# does not answer (loopback port 9) and must fail fast with a clear message.
mkdir -p "$D/ws-managed"
cp "$repo/fixtures/lsp/over_budget/platformio.ini" "$D/ws-managed/"
session managed-env "$D/ws-managed" PIP_INDEX_URL=http://127.0.0.1:9/simple PIP_RETRIES=0 PIP_TIMEOUT=2 \
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 || RC=1
read -r PASSED FAILED < <(awk '{p+=$1; f+=$2} END {print p+0, f+0}' "$D/counts")
t2=$(date +%s)
echo "editor tests: build+package $((t1 - t0)) s, editor sessions $((t2 - t1)) s; screenshots and logs in $ARTIFACTS (scratch: $D)"
echo "editor: $PASSED passed, $FAILED failed"
[ "$RC" = 0 ] && [ "$FAILED" = 0 ] && [ "${KEEP_E2E:-0}" != 1 ] && rm -rf "$D"
[ "$RC" = 0 ] && [ "$FAILED" = 0 ]
