#!/usr/bin/env bash
# Installs the Debian packages TinyForge's tests use, when they are missing (needs root or sudo).
set -euo pipefail
needed=()
command -v g++ >/dev/null || needed+=(g++)
# Headless Neovim: an LSP client nobody here wrote, for tests/lsp/test_neovim.py.
command -v nvim >/dev/null || needed+=(neovim)
# The VS Code extension's editor tests (tests/editor): headless Chromium drives code-server, whose
# npm install compiles native modules against these headers and takes ripgrep from Debian.
command -v chromium >/dev/null || needed+=(chromium)
command -v rg >/dev/null || needed+=(ripgrep)
# Debian's ARM cross-compiler and its newlib C++ library: tests/test_deploy.py links the
# generated firmware sources for a Cortex-M, through `pio run` on a local platform.
command -v arm-none-eabi-g++ >/dev/null || needed+=(gcc-arm-none-eabi)
dpkg -s libstdc++-arm-none-eabi-newlib >/dev/null 2>&1 || needed+=(libstdc++-arm-none-eabi-newlib)
dpkg -s libnewlib-arm-none-eabi >/dev/null 2>&1 || needed+=(libnewlib-arm-none-eabi)
# `tinyforge verify`: the firmware runs on an emulated Cortex-M (mps2-an386/an500, semihosting),
# and the QEMU TCG plugin that counts instructions is built with the host gcc.
command -v qemu-system-arm >/dev/null || needed+=(qemu-system-arm)
# tests/test_fit_cluster.py: a Ray cluster inside a network namespace of the test's own
# (`unshare -n`, `nsenter` from util-linux; `ip link set lo up` from iproute2).
command -v ip >/dev/null || needed+=(iproute2)
command -v nsenter >/dev/null || needed+=(util-linux)
for pkg in libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || needed+=("$pkg")
done
if [ ${#needed[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${needed[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${needed[@]}"
