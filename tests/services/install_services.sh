#!/usr/bin/env bash
# Install or build, once, the services the tests start themselves; cached under CACHE.
#   tests/services/install_services.sh [CACHE_DIR]
# - InfluxDB 2.x (influxd) built from the Go module proxy + crates.io (build_influxd.sh)
# - SeaweedFS's weed, the S3-compatible object store, built from the Go module proxy (build_seaweedfs.sh)
# - Debian's Chromium for the browser tests (install_browser.sh)
# - Debian's mosquitto MQTT broker and clients for the sensor's live-capture test (install_mosquitto.sh)
# - Debian's rsyslog (with its gtls driver), the syslog receiver of the alert outputs' tests (install_rsyslog.sh)
# - the openssl command, which makes the TLS tests' throwaway certificates (tests/helpers/tls.py)
# The Kafka broker comes from Maven Central with the other jars (conf/jars/fetch_jars.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export IOMT_AD_CACHE="${1:-${IOMT_AD_CACHE:-$HOME/.cache/iomt-ad}}"
"$here/build_influxd.sh" >/dev/null
"$here/build_seaweedfs.sh" >/dev/null
"$here/install_browser.sh"
"$here/install_mosquitto.sh" >/dev/null
"$here/install_rsyslog.sh" >/dev/null
command -v openssl >/dev/null 2>&1 || "$here/apt_install.sh" openssl
