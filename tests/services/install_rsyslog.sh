#!/usr/bin/env bash
# Debian's rsyslog with its TLS network stream drivers (gtls, ossl) for the alert outputs' syslog
# test (tests/integration/test_outputs_syslog.py): the test starts its own rsyslogd, unprivileged
# in the sense that it listens on a free loopback port with a generated configuration and writes to
# a file of the test; the system's syslog configuration is never used. Idempotent.
set -euo pipefail

rsyslogd_path="$(command -v rsyslogd || echo /usr/sbin/rsyslogd)"
if [[ -x "$rsyslogd_path" ]] && ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1; then
    exit 0
fi
"$(dirname "$0")/apt_install.sh" rsyslog rsyslog-gnutls
"$rsyslogd_path" -v | head -1 || true
