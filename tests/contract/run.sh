#!/usr/bin/env bash
# Contract test: schemathesis (all checks) against a live gateway built from this tree, with
# each group of operations called by a client certificate and purpose that may call them.
# Exits non-zero on any failure. See tests/contract/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

bin=${PARTNERGATE_BIN:-$root/target/debug/partnergate}
seed=${CONTRACT_SEED:-20261101}
examples=${CONTRACT_EXAMPLES:-25}
venv=${CONTRACT_VENV:-$root/target/contract-venv}
version=4.32.5

if [ ! -x "$bin" ]; then
  cargo build --locked --bin partnergate
fi

# schemathesis in a virtual environment of its own (python3-venv on Debian when missing).
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv python3-pip >/dev/null
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port)
health_port=$(free_port)

"$bin" init --home "$work/home" --policy-dir "$root/policies" >/dev/null
# Enough look-ups that the run tests look-up itself, not only its rate limit (429 is
# documented and allowed all the same).
PARTNERGATE_LOOKUP_BURST=100000 PARTNERGATE_LOOKUP_PER_MINUTE=100000 \
  "$bin" serve --home "$work/home" --listen "127.0.0.1:$api_port" \
  --health-listen "127.0.0.1:$health_port" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$health_port/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.2
done

certs=$work/home/certs
base=https://localhost:$api_port
call() { # client purpose method path [body]
  curl -fsS --cacert "$certs/ca.pem" --cert "$certs/clients/$1.pem" --key "$certs/clients/$1.key" \
    -H "X-Purpose: $2" -H 'X-Acting-User: contract-test' -H 'Content-Type: application/json' \
    -X "$3" "$base$4" ${5:+-d "$5"}
}
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

# Test data: a participant (jobandco refers it, and so holds toeleider) and a DSR request.
export CONTRACT_PID
CONTRACT_PID=$(call crm.jobandco trajectory_guidance POST /v1/participants \
  '{"fields": {"identity.insz": "85.07.30-033.28", "identity.given_name": "Test"}}' | field pid)
export CONTRACT_DSR_ID
CONTRACT_DSR_ID=$(call dpo.stad-gent dsr_handling POST /v1/dsr \
  '{"kind": "access", "insz": "85.07.30-033.28", "received_at": "2026-01-05"}' | field id)
call crm.jobandco trajectory_guidance GET /v1/openapi.json >"$work/openapi.json"

# client, purpose, which operations (a regular expression on "METHOD /path")
groups=(
  "crm.jobandco trajectory_guidance ^(GET|POST|PATCH|DELETE) /v1/(me|openapi.json|participants.*|changes)$"
  "crm.ocmw-gent duplicate_check ^POST /v1/lookup$"
  "dpo.stad-gent audit ^GET /v1/audit.*$"
  "dpo.stad-gent dsr_handling ^(GET|POST) /v1/dsr.*$"
  "esf.jobandco esf_reporting ^GET /v1/reports/esf$"
)
failed=0
passed=0
for group in "${groups[@]}"; do
  read -r client purpose operations <<<"$group"
  if [ -n "${CONTRACT_ONLY:-}" ] && ! grep -qE -- "$CONTRACT_ONLY" <<<"$group"; then continue; fi
  echo "== schemathesis: $client, X-Purpose $purpose, operations $operations"
  set +e
  # From the temporary folder, so that schemathesis's cache (.schemathesis/) stays out of the tree.
  (cd "$work" && SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$root/tests/contract" \
    "$venv/bin/schemathesis" --config-file "$root/tests/contract/schemathesis.toml" run "$work/openapi.json" \
    --url "$base" --tls-verify "$certs/ca.pem" \
    --request-cert "$certs/clients/$client.pem" --request-cert-key "$certs/clients/$client.key" \
    -H "X-Purpose: $purpose" -H 'X-Acting-User: contract-test' \
    --include-name-regex "$operations" \
    --checks all --seed "$seed" --max-examples "$examples" --workers 1 \
    --no-color --suppress-health-check all ${CONTRACT_ARGS:-}) >"$work/st.log" 2>&1
  status=$?
  set -e
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    grep -E '^(  (Selected|Tested)|Test cases:|  [0-9]+ generated|=+ [0-9]+ passed)' "$work/st.log" || true
  else
    failed=$((failed + 1))
    grep -v '^\s*$' "$work/st.log"
  fi
done
# The gateway must have stayed up and answered no 500 (not_a_server_error checks that too).
kill -0 "$server"
echo "contract: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
