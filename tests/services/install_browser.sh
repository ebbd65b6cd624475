#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/dashboard): Debian's `chromium` package, driven by
# Playwright through executable_path. Idempotent: does nothing when /usr/bin/chromium is there.
# Playwright's own browser download (`playwright install`) is never used.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [[ -x "$CHROMIUM" ]]; then
    exit 0
fi
"$(dirname "$0")/apt_install.sh" chromium fonts-liberation
"$CHROMIUM" --version
