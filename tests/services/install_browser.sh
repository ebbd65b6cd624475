#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/dashboard): Debian's `chromium` package, driven by
# Playwright through executable_path. Idempotent: does nothing when /usr/bin/chromium is there.
# Playwright's own browser download (`playwright install`) is never used.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_browser.sh: $CHROMIUM is missing and this user cannot run apt-get (no root, no sudo)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation
"$CHROMIUM" --version
