#!/usr/bin/env bash
# Debian packages the Swift build itself needs (headers and libraries it links), installed before the first
# `swift build`; everything else is installed by `avatar setup`. Idempotent: does nothing when all are present.
set -euo pipefail
packages=(libsqlite3-dev libturbojpeg0-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "==> installing build dependencies: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo -n"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
