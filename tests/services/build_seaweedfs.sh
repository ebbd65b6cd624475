#!/usr/bin/env bash
# Build SeaweedFS's `weed` (Apache-2.0) for the tests' S3-compatible object store.
#
# Sources come only from the Go module proxy: `go install MODULE/weed@VERSION`
# is refused (its go.mod has replace directives), so the module is fetched with
# `go mod download -json`, copied writable, and built with `go build ./weed`.
# Pure Go (CGO off), stripped.
#
# Result: ${IOMT_AD_CACHE:-$HOME/.cache/iomt-ad}/seaweedfs/<version>/weed
# If the binary is already there this script returns immediately.
# Logs go to stderr; the last line of stdout is the binary path.
#
# Env:
#   IOMT_AD_CACHE              cache root (default ~/.cache/iomt-ad)
#   IOMT_AD_SEAWEEDFS_VERSION  seaweedfs module version
#                              (default v0.0.0-20261109003541-7506e5f91cd6)
set -euo pipefail

VERSION="${IOMT_AD_SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
CACHE_ROOT="${IOMT_AD_CACHE:-$HOME/.cache/iomt-ad}"
OUT_DIR="$CACHE_ROOT/seaweedfs/$VERSION"
BIN="$OUT_DIR/weed"
MODULE="github.com/seaweedfs/seaweedfs"

log() { printf '[build_seaweedfs] %s\n' "$*" >&2; }

# shellcheck source=build_cache.sh
source "$(dirname "$0")/build_cache.sh"
use_cached_or_lock "$BIN" "$OUT_DIR"  # prints BIN and ends here when it is built

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { log "ERROR: go not on PATH (need a recent Go toolchain)"; exit 1; }
log "go: $(go version)"

# ---------------------------------------------------------------- go env
export GO111MODULE=on GOWORK=off CGO_ENABLED=0
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

# ---------------------------------------------------------------- build
log "building weed $VERSION (cold build: ~8 min on 2 cores)"
start=$(date +%s)
(
    cd "$SRC"
    go build -ldflags "-s -w" -o "$OUT_DIR/weed.tmp" ./weed
) >&2
mv "$OUT_DIR/weed.tmp" "$BIN"
# The copied sources are only needed to build; the module cache keeps the originals.
rm -rf "$WORK"
log "built $BIN in $(($(date +%s) - start))s ($(du -h "$BIN" | cut -f1))"
"$BIN" version >&2 || true

echo "$BIN"
