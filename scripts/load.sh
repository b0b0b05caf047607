#!/usr/bin/env bash
# A reproducible HTTP load test of the axum example server (issue 13).
#
#   scripts/load.sh [USERS] [CONCURRENCY]        (defaults: 1000 users, 8 in flight)
#
# Builds the axum example and the load client (examples/load) in release, then for
# each store in SF_LOAD_STORES (default "sqlite memory"): starts the server on a
# free port of 127.0.0.1 with a fresh temporary database, enrols USERS accounts
# through the JSON API, and measures the password step, the second-factor step and
# the full login (successful requests per second, p50, p99). Every phase is bounded
# by SF_LOAD_SECS seconds (default 30) and by its count. Nothing listens beyond
# loopback, and the temporary files are removed at the end.
#
# The server runs with SF_INSECURE_FAST_HASH=1 (Argon2 at 8 KiB, 1 pass): with the
# real parameters the password step, not the store, would be all that is measured.
# The server refuses that switch unless it listens on a loopback address.
set -euo pipefail

users=${1:-1000}
concurrency=${2:-8}
max_secs=${SF_LOAD_SECS:-30}
stores=${SF_LOAD_STORES:-sqlite memory}

cd "$(dirname "$0")/.."
cargo build --release --quiet -p secondfactor-example-axum -p secondfactor-example-load
bin=${CARGO_TARGET_DIR:-target}/release

tmp=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
for store in $stores; do
    case $store in
        sqlite) db="sqlite://$tmp/load-$$.db" ;;
        memory) db="memory:" ;;
        *) echo "unknown store $store (sqlite or memory)" >&2; exit 2 ;;
    esac
    rm -f "$tmp"/load-*.db* "$tmp/out"
    SF_ADDR=127.0.0.1:0 SF_INSECURE_FAST_HASH=1 DATABASE_URL="$db" \
        SF_MASTER_KEY=$(head -c 32 /dev/urandom | base64) \
        "$bin/secondfactor-example-axum" >"$tmp/out" 2>"$tmp/server-$store.log" &
    server=$!
    url=
    for _ in $(seq 300); do
        url=$(sed -n 's/^listening on \(http:\/\/[0-9.:]*\)$/\1/p' "$tmp/out" 2>/dev/null || true)
        [ -n "$url" ] && break
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$url" ]; then
        echo "the server did not start:" >&2
        cat "$tmp/server-$store.log" >&2
        exit 1
    fi
    echo
    echo "== axum example, $store store ($db), $url"
    "$bin/secondfactor-example-load" "$url" "$users" "$concurrency" "$max_secs"
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=
done
