#!/usr/bin/env bash
# partnergate side-by-side benchmark, in one command:
#   bench/run.sh                  full run (about 20 s per load scenario), writes bench/results/latest.json
#   BENCH_QUICK=1 bench/run.sh    a few seconds per scenario, writes bench/results/quick.json
#
# Steps: release build -> fresh home in a temp dir -> 10,000-participant demo caseload ->
# gateway on loopback -> reads, mixed, sync_10k, registrations, audit_verify_1m -> nginx with the
# same TLS setup serving one real read body -> the same generator against nginx -> summary table
# with ratios and bench/results/*.json. Every process it starts is stopped on exit.
#
# Knobs (environment): BENCH_QUICK=1, BENCH_SECONDS (per load scenario), BENCH_CONNECTIONS
# (default 32), BENCH_PARTICIPANTS (default 10000), BENCH_KEEP=1 (keep the temp dir),
# BENCH_NO_BUILD=1 (use the existing release binary), BENCH_BIN (another partnergate binary),
# BENCH_SERVER_BIN (a binary to run only the gateway with, e.g. an older build, while BENCH_BIN
# still generates the load and writes the summary),
# NGINX (path of the nginx binary), BENCH_DATABASE=postgres (the same run on a throwaway
# PostgreSQL cluster, plus reads and registrations through two instances; writes postgres.json).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATABASE=${BENCH_DATABASE:-sqlite}
if [ "$DATABASE" = postgres ] && [ -z "${PARTNERGATE_TEST_DATABASE_URL:-}" ]; then
    exec "$ROOT/tests/postgres/with-cluster.sh" "$0" "$@"
fi
if [ "$DATABASE" = postgres ]; then export PARTNERGATE_DATABASE_URL=$PARTNERGATE_TEST_DATABASE_URL; fi
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then DEFAULT_SECS=3; else DEFAULT_SECS=20; fi
SECS=${BENCH_SECONDS:-$DEFAULT_SECS}
CONNS=${BENCH_CONNECTIONS:-32}
PARTICIPANTS=${BENCH_PARTICIPANTS:-10000}
if [ "$QUICK" = 1 ]; then OUT_JSON=$ROOT/bench/results/quick.json; else OUT_JSON=$ROOT/bench/results/latest.json; fi
if [ "$DATABASE" = postgres ]; then OUT_JSON=${OUT_JSON%.json}-postgres.json; fi

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# ---- 1. build ---------------------------------------------------------------------------------
cd "$ROOT"
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    say "cargo build --release --locked"
    T=$(now)
    cargo build --release --locked
    BUILD_S=$(since "$T")
else
    BUILD_S=0
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
BIN=${BENCH_BIN:-${TARGET_DIR:-$ROOT/target}/release/partnergate}
[ -x "$BIN" ] || die "no release binary at $BIN"
SERVER_BIN=${BENCH_SERVER_BIN:-$BIN}
[ -x "$SERVER_BIN" ] || die "no gateway binary at $SERVER_BIN"
LOADAVG_START=$(cut -d' ' -f1 /proc/loadavg)
"$BIN" bench --help >/dev/null 2>&1 || die "$BIN has no 'bench' subcommand yet"

# ---- 2. a fresh home, and cleanup of everything we start --------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/partnergate-bench.XXXXXX")
chmod 755 "$WORK"
HOME_DIR=$WORK/home
RES=$WORK/results
mkdir -p "$HOME_DIR" "$RES" "$WORK/www/v1/participants" "$WORK/nginx"
GW_PID=
GW2_PID=
NGX_PID=
stop() { # stop PID: TERM, wait up to 5 s, then KILL
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop "$NGX_PID"
    stop "$GW_PID"
    stop "$GW2_PID"
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
        echo "bench/run.sh: logs and data kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "init in $HOME_DIR"
"$SERVER_BIN" --home "$HOME_DIR" init --policy-dir "$ROOT/policies" >"$WORK/init.log" 2>&1 ||
    { cat "$WORK/init.log" >&2; die "init failed"; }
CERTS=$HOME_DIR/certs

# ---- 3. the caseload ----------------------------------------------------------------------------
say "demo caseload of $PARTICIPANTS participants"
T=$(now)
"$SERVER_BIN" --home "$HOME_DIR" demo --no-serve --participants "$PARTICIPANTS" >"$WORK/demo.log" 2>&1 ||
    { tail -20 "$WORK/demo.log" >&2; die "demo load failed"; }
DEMO_S=$(since "$T")
echo "loaded in ${DEMO_S}s" >&2

# ---- 4. the gateway -----------------------------------------------------------------------------
say "serve"
# `prepare` looks up every trajectgezel case at once; the per-client look-up limit is for CRMs.
export PARTNERGATE_LOOKUP_PER_MINUTE=1000000 PARTNERGATE_LOOKUP_BURST=1000000
"$SERVER_BIN" --home "$HOME_DIR" serve --listen 127.0.0.1:0 --health-listen 127.0.0.1:0 \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
GW_PID=$!
API=
HEALTH=
DEADLINE=$((SECONDS + 60))
while [ -z "$API" ] || [ -z "$HEALTH" ]; do
    kill -0 "$GW_PID" 2>/dev/null || { cat "$WORK/serve.err" >&2; die "the gateway exited"; }
    [ $SECONDS -lt $DEADLINE ] || die "the gateway did not report its addresses within 60 s"
    API=$(sed -n 's|^partnergate: api listening on \(https://[^ ]*\).*|\1|p' "$WORK/serve.out" | head -1)
    HEALTH=$(sed -n 's|^partnergate: health listening on \(http://[^ ]*\).*|\1|p' "$WORK/serve.out" | head -1)
    [ -n "$API" ] && [ -n "$HEALTH" ] || sleep 0.1
done
until curl -fsS -o /dev/null "$HEALTH/healthz" 2>/dev/null; do
    kill -0 "$GW_PID" 2>/dev/null || die "the gateway exited"
    [ $SECONDS -lt $DEADLINE ] || die "/healthz not ready within 60 s"
    sleep 0.1
done
echo "api $API, health $HEALTH, pid $GW_PID" >&2

bench() { # bench SCENARIO [args...]: one run, JSON into $RES/SCENARIO.json, table on stderr
    local scenario=$1
    shift
    "$BIN" bench --scenario "$scenario" --certs "$CERTS" --connections "$CONNS" \
        --seconds "$SECS" --json "$RES/$scenario.json" "$@" >&2
}
rss_mb() { # rss_mb FIELD: VmHWM or VmRSS of the gateway, in MB
    awk -v f="$1:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$GW_PID/status"
}

# ---- 5. the scenarios ---------------------------------------------------------------------------
say "prepare: the trajectgezel's pids and one typical read body"
bench prepare --url "$API" --participants "$PARTICIPANTS" --pids-file "$WORK/pids.txt" \
    --sample-out "$WORK/www/v1/participants/sample"
FAILED=()
run_or_note() { # a scenario that may fail (e.g. an endpoint still being built) without ending the run
    local scenario=$1
    bench "$@" || { FAILED+=("$scenario"); echo "bench/run.sh: $scenario failed; continuing" >&2; }
}
say "reads ($CONNS connections, ${SECS}s)"
HWM_AFTER=() # the gateway's peak memory after each scenario, to see which one raises it
hwm_after() { HWM_AFTER+=("--extra" "hwm_after_$1_mb=$(rss_mb VmHWM)"); }
hwm_after prepare
run_or_note reads --url "$API" --pids-file "$WORK/pids.txt"
RSS_HWM=$(rss_mb VmHWM)
RSS_NOW=$(rss_mb VmRSS)
echo "gateway VmHWM ${RSS_HWM} MB, VmRSS ${RSS_NOW} MB" >&2
hwm_after reads
say "mixed"
run_or_note mixed --url "$API" --pids-file "$WORK/pids.txt"
hwm_after mixed
say "sync_10k"
run_or_note sync_10k --url "$API"
hwm_after sync_10k
say "registrations"
run_or_note registrations --url "$API"
hwm_after registrations
if [ "$DATABASE" = postgres ]; then . "$ROOT/bench/two-instances.sh"; fi
say "audit_verify_1m"
run_or_note audit_verify_1m --url "$API"
hwm_after audit_verify_1m
RSS_END=$(rss_mb VmHWM)
stop "$GW_PID"
GW_PID=

# ---- 6. nginx, same TLS, same generator ---------------------------------------------------------
NGINX=${NGINX:-$(command -v nginx || true)}
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
    say "installing nginx-light"
    if command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light >/dev/null 2>&1; } || true
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
if [ -x "$NGINX" ]; then
    for _ in $(seq 50); do # a free loopback port
        PORT=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || break
    done
    sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$PORT|g" -e "s|@CERTS@|$CERTS|g" \
        "$ROOT/bench/nginx.conf.template" >"$WORK/nginx.conf"
    chmod -R a+rX "$WORK/www"
    say "nginx on 127.0.0.1:$PORT ($(wc -c <"$WORK/www/v1/participants/sample") byte body)"
    "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx.conf" -e "$WORK/nginx/error.log" \
        >"$WORK/nginx/stdout.log" 2>&1 &
    NGX_PID=$!
    NG_URL=https://127.0.0.1:$PORT
    DEADLINE=$((SECONDS + 20))
    until curl -fsS -o /dev/null --cacert "$CERTS/ca.pem" --cert "$CERTS/clients/crm.jobandco.pem" \
        --key "$CERTS/clients/crm.jobandco.key" "$NG_URL/v1/participants/sample" 2>/dev/null; do
        kill -0 "$NGX_PID" 2>/dev/null || { cat "$WORK/nginx/error.log" >&2; die "nginx exited"; }
        [ $SECONDS -lt $DEADLINE ] || die "nginx not ready within 20 s"
        sleep 0.1
    done
    say "static against nginx ($CONNS connections, ${SECS}s)"
    run_or_note static --url "$NG_URL" --path /v1/participants/sample
    stop "$NGX_PID"
    NGX_PID=
else
    echo "bench/run.sh: no nginx; skipping the side-by-side baseline" >&2
    FAILED+=(nginx)
fi

# ---- 7. summary ---------------------------------------------------------------------------------
say "summary"
"$BIN" bench --scenario summary --results-dir "$RES" --server-rss-mb "${RSS_HWM:-0}" \
    --server-hwm-mb "${RSS_END:-0}" --json "$OUT_JSON" "${HWM_AFTER[@]}" \
    --extra "quick=$QUICK" --extra "seconds_per_scenario=$SECS" \
    --extra "participants=$PARTICIPANTS" --extra "build_s=$BUILD_S" --extra "demo_load_s=$DEMO_S" \
    --extra "server_rss_now_mb=${RSS_NOW:-0}" --extra "server_hwm_end_mb=${RSS_END:-0}" \
    --extra "loadavg_start=$LOADAVG_START" --extra "loadavg_end=$(cut -d' ' -f1 /proc/loadavg)" \
    --extra "failed=${FAILED[*]:-none}" --extra "database=$DATABASE"
if [ "$DATABASE" = postgres ]; then two_instances_ratios "$OUT_JSON"; fi
echo "written: $OUT_JSON" >&2
[ ${#FAILED[@]} -eq 0 ] || die "some steps failed: ${FAILED[*]}"
