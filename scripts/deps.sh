#!/usr/bin/env bash
# Installs the Debian 12 packages Citadel needs to build and test.
# Idempotent: does nothing when everything is already present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libpcre2-dev libjansson-dev libcmocka-dev)
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
