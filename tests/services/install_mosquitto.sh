#!/usr/bin/env bash
# Debian's mosquitto MQTT broker and its clients for the sensor's live-capture test (tests/sensor):
# the test starts its own broker on a free loopback port. Idempotent: nothing to do when installed.
set -euo pipefail

if command -v mosquitto >/dev/null 2>&1 && command -v mosquitto_pub >/dev/null 2>&1; then
    exit 0
fi
"$(dirname "$0")/apt_install.sh" mosquitto mosquitto-clients
mosquitto -h | head -1 || true
