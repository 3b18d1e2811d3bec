#!/usr/bin/env bash
# Installs what rev needs on Debian 12 (bookworm): a C++20 compiler, CMake, Ninja, Eigen,
# xtensor, doctest, zlib, pkg-config (to test rev.pc) and the Fashion-MNIST data set. Uses sudo when not run as root.
set -euo pipefail
packages=(g++ cmake ninja-build libeigen3-dev libxtensor-dev doctest-dev zlib1g-dev pkg-config dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
