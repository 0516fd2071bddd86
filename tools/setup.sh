#!/usr/bin/env bash
# Installs the Debian packages dcl needs to build and test (idempotent).
set -euo pipefail
pkgs=(build-essential pkg-config bc
      libdnnl-dev libopenblas-dev
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
      libpng-dev libjpeg-dev libcjson-dev libyaml-dev libmicrohttpd-dev
      libopenmpi-dev openmpi-bin
      python3-skimage python-matplotlib-data chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
