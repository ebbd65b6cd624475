# Sourced by the build_*.sh scripts of tests/services (not run on its own).
# use_cached_or_lock BIN OUT_DIR: print BIN and end the script when it is built already; otherwise
# hold OUT_DIR's build lock (file descriptor 9, so concurrent callers build once) and check again.
use_cached_or_lock() {
    local bin="$1" out="$2"
    if [[ -x "$bin" ]]; then
        echo "$bin"
        exit 0
    fi
    mkdir -p "$out"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$out/.build.lock"
        flock 9
        if [[ -x "$bin" ]]; then
            echo "$bin"
            exit 0
        fi
    fi
}
