#!/usr/bin/env bash
# Install Debian packages for the test services, as root or through sudo:
#   tests/services/apt_install.sh PACKAGE...
# Every install script of tests/services calls this once it knows something is missing.
set -euo pipefail
(($#)) || { echo "apt_install.sh: name the packages to install" >&2; exit 2; }
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "apt_install.sh: $* missing and this user cannot run apt-get (no root, no sudo)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2
$SUDO apt-get install -y -q --no-install-recommends "$@" >&2
