#!/usr/bin/env bash
# Build a real InfluxDB OSS 2.x server (influxd) from source for the test suite.
#
# Sources come only from the Go module proxy (influxdb, flux, pkg-config
# modules) and crates.io (libflux, the Rust half of the Flux engine, built by
# cargo).  No web UI (built without the `assets` tag).
#
# Result: ${IOMT_AD_CACHE:-$HOME/.cache/iomt-ad}/influxd/<version>/influxd
# If the binary is already there this script returns immediately.
# Logs go to stderr; the last line of stdout is the binary path.
#
# Env:
#   IOMT_AD_CACHE            cache root (default ~/.cache/iomt-ad)
#   IOMT_AD_INFLUXD_VERSION  influxdb module version (default v2.7.12)
#   RUSTUP_TOOLCHAIN         rust toolchain to use (default: rustup's default;
#                            flux pins 1.72 in rust-toolchain.toml, which we
#                            override so no toolchain download is needed)
set -euo pipefail

VERSION="${IOMT_AD_INFLUXD_VERSION:-v2.7.12}"
CACHE_ROOT="${IOMT_AD_CACHE:-$HOME/.cache/iomt-ad}"
OUT_DIR="$CACHE_ROOT/influxd/${VERSION#v}"
BIN="$OUT_DIR/influxd"
MODULE="github.com/influxdata/influxdb/v2"

log() { printf '[build_influxd] %s\n' "$*" >&2; }

# shellcheck source=build_cache.sh
source "$(dirname "$0")/build_cache.sh"
use_cached_or_lock "$BIN" "$OUT_DIR"  # prints BIN and ends here when it is built

# ---------------------------------------------------------------- prerequisites
missing_pkgs=()
command -v pkg-config >/dev/null 2>&1 || missing_pkgs+=(pkg-config)
command -v gcc >/dev/null 2>&1 || missing_pkgs+=(gcc)
[[ -e /usr/include/stdio.h ]] || missing_pkgs+=(libc6-dev)
if ((${#missing_pkgs[@]})); then
    log "installing apt packages: ${missing_pkgs[*]}"
    "$(dirname "$0")/apt_install.sh" "${missing_pkgs[@]}"
fi

command -v go >/dev/null 2>&1 || { log "ERROR: go not on PATH (need Go >= 1.23)"; exit 1; }
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { log "ERROR: cargo not on PATH (need a Rust toolchain)"; exit 1; }

if [[ -z "${RUSTUP_TOOLCHAIN:-}" ]] && command -v rustup >/dev/null 2>&1; then
    RUSTUP_TOOLCHAIN="$(rustup default 2>/dev/null | awk '{print $1; exit}')"
    [[ -n "$RUSTUP_TOOLCHAIN" ]] || RUSTUP_TOOLCHAIN=stable
    export RUSTUP_TOOLCHAIN
fi
log "go: $(go version); rust: $(rustc --version) (RUSTUP_TOOLCHAIN=${RUSTUP_TOOLCHAIN:-unset})"

# ---------------------------------------------------------------- go env
export GO111MODULE=on GOWORK=off CGO_ENABLED=1
export GOFLAGS="-buildvcs=false -mod=mod"

WORK="$OUT_DIR/build"
SRC="$WORK/src"
mkdir -p "$WORK"

# ---------------------------------------------------------------- sources
if [[ ! -f "$SRC/go.mod" ]]; then
    log "downloading $MODULE@$VERSION from the Go module proxy"
    moddir="$(cd "$WORK" && go mod download -json "$MODULE@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    [[ -n "$moddir" && -d "$moddir" ]] || { log "ERROR: go mod download failed"; exit 1; }
    rm -rf "$SRC.tmp"
    cp -r "$moddir" "$SRC.tmp"
    chmod -R u+w "$SRC.tmp"
    mv "$SRC.tmp" "$SRC"
fi

# ---------------------------------------------------------------- helpers
# influxdata/pkg-config: a pkg-config wrapper that, when asked about `flux`,
# runs `cargo build --release` for libflux (copying the read-only module
# sources to $(go env GOCACHE)/pkgconfig first) and emits the link flags.
if [[ ! -x "$WORK/pkg-config" ]]; then
    log "building the influxdata/pkg-config wrapper"
    (cd "$SRC" && go build -o "$WORK/pkg-config.tmp" github.com/influxdata/pkg-config) >&2
    mv "$WORK/pkg-config.tmp" "$WORK/pkg-config"
fi

# flux-core has #![deny(warnings)] (feature "strict", on by default); newer
# rustc versions add lints (dead_code changes, mismatched_lifetime_syntaxes)
# that then fail the build.  RUSTFLAGS=--cap-lints does not reach host
# artifacts (flux-core is also a build-dependency) because pkg-config passes
# --target, so cap lints via a rustc wrapper instead.
cat >"$WORK/rustc-wrapper" <<'EOF'
#!/bin/sh
case " $* " in
  *" --cap-lints"*) exec "$@" ;;
  *" --crate-name "*) exec "$@" --cap-lints warn ;;
  *) exec "$@" ;;
esac
EOF
chmod +x "$WORK/rustc-wrapper"

# ---------------------------------------------------------------- build
log "building influxd $VERSION (cold build: ~10 min on 2 cores; libflux + Go)"
start=$(date +%s)
(
    cd "$SRC"
    PKG_CONFIG="$WORK/pkg-config" RUSTC_WRAPPER="$WORK/rustc-wrapper" \
        go build \
        -tags sqlite_foreign_keys,sqlite_json \
        -ldflags "-s -w -X main.version=${VERSION#v} -X main.commit=${VERSION}" \
        -o "$OUT_DIR/influxd.tmp" ./cmd/influxd
) >&2
mv "$OUT_DIR/influxd.tmp" "$BIN"
log "built $BIN in $(($(date +%s) - start))s ($(du -h "$BIN" | cut -f1))"
"$BIN" version >&2 || true

echo "$BIN"
