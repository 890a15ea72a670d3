#!/usr/bin/env bash
# Installs the Debian packages wispy needs outside Python:
#   qemu-user + arm64 cross C/C++ runtime  run aarch64 IREE tools (wispy.runtime.arm64)
#   gcc + libc6-dev                         build the QEMU instruction-count plugin
#   mesa-vulkan-drivers + libvulkan1        lavapipe, a CPU Vulkan device (wispy.runtime.vulkan)
#   espeak-ng + sox                         synthesise speech for the accuracy benchmarks
#   wamerican                               word list wispy/data/words.txt is built from
# Idempotent: does nothing (quietly) when every package is installed; runs
# apt-get update only when something is missing. Needs root or sudo.
set -euo pipefail

PACKAGES=(
  qemu-user
  libc6-arm64-cross
  libstdc++6-arm64-cross
  libgcc-s1-arm64-cross
  gcc
  libc6-dev
  mesa-vulkan-drivers
  libvulkan1
  espeak-ng
  sox
  wamerican
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup_system.sh: apt-get not found; install these packages yourself: ${missing[*]}" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "setup_system.sh: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "setup_system.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
