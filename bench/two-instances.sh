# Sourced by bench/run.sh when BENCH_DATABASE=postgres, after the one-instance scenarios: starts
# a second gateway on the same installation and database, and drives reads and registrations
# through both at once, half the connections each (a TCP balancer would spread them the same
# way). The figures go into the summary's run section (two_instances_*); two_instances_ratios
# adds their ratio to nginx once nginx has run.

say "second instance on the same PostgreSQL database"
"$SERVER_BIN" --home "$HOME_DIR" serve --listen 127.0.0.1:0 --health-listen 127.0.0.1:0 \
    >"$WORK/serve2.out" 2>"$WORK/serve2.err" &
GW2_PID=$!
API2=
DEADLINE=$((SECONDS + 60))
while [ -z "$API2" ]; do
    kill -0 "$GW2_PID" 2>/dev/null || { cat "$WORK/serve2.err" >&2; die "the second gateway exited"; }
    [ $SECONDS -lt $DEADLINE ] || die "the second gateway did not start within 60 s"
    API2=$(sed -n 's|^partnergate: api listening on \(https://[^ ]*\).*|\1|p' "$WORK/serve2.out" | head -1)
    [ -n "$API2" ] || sleep 0.1
done
HALF=$(((CONNS + 1) / 2))
two() { # two SCENARIO [args]: the scenario through both instances at once
    local scenario=$1 api pids=() pid
    shift
    for api in "$API" "$API2"; do
        "$BIN" bench --scenario "$scenario" --certs "$CERTS" --connections "$HALF" \
            --seconds "$SECS" --url "$api" --json "$WORK/two-$scenario-${api##*:}.json" "$@" >&2 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || FAILED+=("two_instances_$scenario"); done
    # Requests per second add up; the p99 is the worse of the two.
    HWM_AFTER+=($(python3 - "$WORK"/two-"$scenario"-*.json <<'PY'
import json, sys
runs = [json.load(open(f)) for f in sys.argv[1:]]
name = runs[0]["name"]
print("--extra", f"two_instances_{name}_rps={sum(r['rps'] for r in runs):.1f}")
print("--extra", f"two_instances_{name}_p99_ms={max(r['p99_ms'] for r in runs):.3f}")
print("--extra", f"two_instances_{name}_errors={sum(r['errors'] for r in runs)}")
PY
    ))
}
say "reads through two instances ($HALF connections each, ${SECS}s)"
two reads --pids-file "$WORK/pids.txt"
say "registrations through two instances ($HALF connections each, ${SECS}s)"
two registrations
stop "$GW2_PID"
GW2_PID=

two_instances_ratios() { # two_instances_ratios JSON: ratio of each two-instance figure to nginx
    python3 - "$1" <<'PY'
import json, sys
path = sys.argv[1]
d = json.load(open(path))
nginx = next((s for s in d["scenarios"] if s.get("name") == "nginx_static"), None)
if nginx:
    for name in ("reads", "registrations"):
        rps = d["run"].get(f"two_instances_{name}_rps")
        if rps is not None:
            d["run"][f"two_instances_{name}_ratio"] = round(rps / nginx["rps"], 3)
    json.dump(d, open(path, "w"), indent=2, sort_keys=True)
PY
}
