#!/usr/bin/env bash
# Installs what Citadel needs to build and test on Debian 12: the Debian
# packages, Node.js (the black-box HTTP tests use the official `openai` npm
# package as their client) and the npm packages of tests/http (npm ci, from
# its package-lock.json). Idempotent: does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential cmake pkg-config libpcre2-dev libjansson-dev libcmocka-dev libmicrohttpd-dev libsodium-dev curl)
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Any Node.js >= 18 with npm will do (Debian's, or one installed otherwise).
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ -f tests/http/package-lock.json ] && [ ! -d tests/http/node_modules ]; then
  (cd tests/http && npm ci --no-audit --no-fund --loglevel=error)
fi
