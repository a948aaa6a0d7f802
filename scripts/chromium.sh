#!/usr/bin/env bash
# Make sure a headless-capable Chromium is on PATH (Debian's `chromium` package).
# Idempotent: does nothing when one is already there. Prints the binary's path
# on stdout and exits 0, or says why on stderr and exits 1 (no root, no apt).
set -euo pipefail

find_chromium() {
  for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
  done
  return 1
}

if path=$(find_chromium); then
  echo "$path"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium.sh: no chromium on PATH and no apt-get to install it" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "chromium.sh: no chromium on PATH and not root (nor password-less sudo) to install it" >&2
    exit 1
  fi
fi

# Several test processes may call this at once; one installs, the others wait for it.
lock=/tmp/oversold-chromium-install.lock
exec 9>"$lock"
flock 9
if path=$(find_chromium); then
  echo "$path"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
{
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
} >&2 || { echo "chromium.sh: apt-get could not install chromium" >&2; exit 1; }

if path=$(find_chromium); then
  echo "$path"
  exit 0
fi
echo "chromium.sh: chromium was installed but is not on PATH" >&2
exit 1
