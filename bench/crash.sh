#!/usr/bin/env bash
# Crash cycles: mixed load, kill -9 at a random moment, restart, check that nothing
# acknowledged was lost and that the audit log is whole. Not part of `cargo test`.
#
#   bench/crash.sh                 20 cycles (CRASH_CYCLES), prints one line per cycle and a total
#
# Each cycle: start the gateway -> mixed load (registrations, PATCH with If-Match, reads, sync;
# bench/crash_load.py, CRASH_WORKERS threads) -> kill -9 the gateway after a random 2 to
# CRASH_MAX_SECONDS seconds -> stop the load -> offline `partnergate audit export` and
# `partnergate audit verify` with the public key -> restart -> bench/crash_load.py check:
# every acknowledged write is there, every answered request id has its audit record, no
# half-written participant, the live chain verifies. The restarted gateway takes the next
# cycle's load; the last one is stopped cleanly.
#
# Knobs (environment): CRASH_CYCLES (20), CRASH_WORKERS (4), CRASH_MAX_SECONDS (8),
# CRASH_SEED (random; printed, so a run can be repeated), CRASH_KEEP=1 (keep the temp dir),
# CRASH_NO_BUILD=1 (use the existing debug binary), CRASH_BIN (another partnergate binary).
# Needs python3 (standard library only) and, for the build, cargo.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CYCLES=${CRASH_CYCLES:-20}
WORKERS=${CRASH_WORKERS:-4}
MAX_SECONDS=${CRASH_MAX_SECONDS:-8}
SEED=${CRASH_SEED:-$RANDOM}
RANDOM=$SEED

die() { printf 'bench/crash.sh: %s\n' "$*" >&2; exit 1; }

cd "$ROOT"
if [ "${CRASH_NO_BUILD:-0}" != 1 ] && [ -z "${CRASH_BIN:-}" ]; then
    cargo build --release --locked --bin partnergate >&2
fi
BIN=${CRASH_BIN:-$ROOT/target/release/partnergate}
[ -x "$BIN" ] || die "no binary at $BIN"
command -v python3 >/dev/null || die "python3 is needed for the load driver"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/partnergate-crash.XXXXXX")
HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR"
GW_PID=
LOAD_PID=
cleanup() {
    [ -n "$LOAD_PID" ] && kill -KILL "$LOAD_PID" 2>/dev/null || true
    [ -n "$GW_PID" ] && kill -KILL "$GW_PID" 2>/dev/null || true
    if [ "${CRASH_KEEP:-0}" = 1 ] || [ "${FAILED:-0}" = 1 ]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

"$BIN" --home "$HOME_DIR" init --policy-dir "$ROOT/policies" >"$WORK/init.log" 2>&1 ||
    die "init failed: $(cat "$WORK/init.log")"

start() { # starts the gateway on free ports; sets GW_PID and URL
    : >"$WORK/serve.out"
    "$BIN" --home "$HOME_DIR" serve --listen 127.0.0.1:0 --health-listen 127.0.0.1:0 \
        >"$WORK/serve.out" 2>>"$WORK/serve.log" &
    GW_PID=$!
    local i
    for i in $(seq 300); do
        URL=$(sed -n 's|^partnergate: api listening on https://\(.*\)$|https://localhost:\1|p' "$WORK/serve.out" |
            sed 's|localhost:127.0.0.1:|localhost:|')
        HEALTH=$(sed -n 's|^partnergate: health listening on http://\(.*\)$|\1|p' "$WORK/serve.out")
        if [ -n "$URL" ] && [ -n "$HEALTH" ]; then return 0; fi
        kill -0 "$GW_PID" 2>/dev/null || die "the gateway did not start: $(tail -5 "$WORK/serve.log")"
        sleep 0.1
    done
    die "the gateway did not say where it listens within 30 s"
}

LEDGER=$WORK/ledger.jsonl
DB=$HOME_DIR/data/partnergate.db
PUB=$HOME_DIR/certs/audit-signing.pub
: >"$LEDGER"
passed=0
failed=0
T0=$(date +%s)
echo "crash cycles: $CYCLES, workers $WORKERS, kill after 2..${MAX_SECONDS} s, seed $SEED"
start
for cycle in $(seq "$CYCLES"); do
    python3 "$ROOT/bench/crash_load.py" load "$URL" "$HOME_DIR/certs" "$LEDGER" "$WORKERS" \
        "$((SEED * 100 + cycle))" 2>>"$WORK/load.log" &
    LOAD_PID=$!
    # A random moment, in tenths of a second, from 2 s to MAX_SECONDS.
    wait_ds=$((20 + RANDOM % ((MAX_SECONDS - 2) * 10 + 1)))
    sleep "$((wait_ds / 10)).$((wait_ds % 10))"
    kill -KILL "$GW_PID"
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
    kill -KILL "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=

    # The chain as a DPO checks it: offline export (signed part) and verification.
    verify="ok"
    if ! "$BIN" --home "$HOME_DIR" audit export --out "$WORK/export.jsonl" >>"$WORK/verify.log" 2>&1 ||
        ! "$BIN" audit verify --public-key "$PUB" "$WORK/export.jsonl" >>"$WORK/verify.log" 2>&1; then
        verify="FAILED"
    fi

    start
    if summary=$(python3 "$ROOT/bench/crash_load.py" check "$URL" "$HOME_DIR/certs" "$LEDGER" "$DB" 2>>"$WORK/load.log") &&
        [ "$verify" = ok ]; then
        result=ok
        passed=$((passed + 1))
    else
        result=FAILED
        failed=$((failed + 1))
        FAILED=1
    fi
    line=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1] or "{}")
print("acknowledged participants %5s  lost writes %s  answered %6s  unaudited %s  half-written %s  audit records %6s" % (
    s.get("acknowledged_participants"), s.get("lost_writes"), s.get("answered"),
    s.get("unaudited"), s.get("half_written"), s.get("audit_records")))
for p in s.get("problems", []):
    print("    " + p)
' "${summary:-}")
    printf 'cycle %2d: killed after %d.%d s  offline verify %s  %s  %s\n' \
        "$cycle" "$((wait_ds / 10))" "$((wait_ds % 10))" "$verify" "$line" "$result"
    summary=
done
kill -TERM "$GW_PID"
wait "$GW_PID" 2>/dev/null || true
GW_PID=
printf 'total: %d cycles, %d passed, %d failed, %d answered requests, %d s\n' \
    "$CYCLES" "$passed" "$failed" "$(wc -l <"$LEDGER")" "$(($(date +%s) - T0))"
[ "$failed" = 0 ]
