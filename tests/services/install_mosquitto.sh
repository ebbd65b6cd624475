#!/usr/bin/env bash
# Debian's mosquitto MQTT broker and its clients for the sensor's live-capture test (tests/sensor):
# the test starts its own broker on a free loopback port. Idempotent: nothing to do when installed.
set -euo pipefail

if command -v mosquitto >/dev/null 2>&1 && command -v mosquitto_pub >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_mosquitto.sh: mosquitto is missing and this user cannot run apt-get (no root, no sudo)" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends mosquitto mosquitto-clients
mosquitto -h | head -1 || true
