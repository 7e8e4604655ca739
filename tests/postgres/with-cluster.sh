#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster, then stops and removes the cluster.
#
#   tests/postgres/with-cluster.sh cargo test --locked --test integration
#
# The cluster is made with the distribution's PostgreSQL (`apt-get install postgresql` when it
# is missing and we are root), runs as an unprivileged user (postgres refuses to run as root),
# listens on a free loopback port with trust authentication for one superuser, and lives in a
# temporary folder. The command gets PARTNERGATE_TEST_DATABASE_URL pointing at it; the tests
# make one database per installation there.
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bindir" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed: run 'sudo apt-get install postgresql'" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi

dir=$(mktemp -d /tmp/partnergate-pg.XXXXXX)
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  id partnergate-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin partnergate-pg
  chown partnergate-pg "$dir"
  as_owner=(runuser -u partnergate-pg --)
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U partnergate --auth=trust --encoding=UTF8 >"$dir/initdb.log"
# Many test installations run at once, each gateway with up to 17 connections.
"${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400 -c synchronous_commit=on" \
  start >/dev/null

export PARTNERGATE_TEST_DATABASE_URL="postgres://partnergate@127.0.0.1:$port/postgres"
echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)"
set +e
"$@"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "== last lines of the PostgreSQL log" >&2
  tail -20 "$dir/server.log" >&2 || true
fi
exit "$status"
