#!/usr/bin/env bash
# Starts (or reuses) a throwaway PostgreSQL from Debian's packages for the tests,
# on 127.0.0.1:$PGPORT, trust auth, database tollgate_test. Prints its URL.
# Usage: .ci/postgres.sh start | reset | stop
set -euo pipefail
# Below Linux's ephemeral range (32768-60999): a port in it can be the local
# end of some connection when the server starts (a CI run failed so, after the
# SQLite suite's many connections), and then the server cannot bind it.
PGPORT="${TOLLGATE_TEST_PGPORT:-25432}"
# The port actually used: another one when $PGPORT is held by something that
# does not answer as PostgreSQL (a server frozen in another session, say).
STATE="/tmp/tollgate-pg-$PGPORT.port"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)

use_port() {
  PORT="$1"
  if [ "$PORT" = "$PGPORT" ]; then PGDATA="${TOLLGATE_TEST_PGDATA:-/tmp/tollgate-pg-$PORT}"; else PGDATA="/tmp/tollgate-pg-$PORT"; fi
  URL="postgres://postgres@127.0.0.1:$PORT/tollgate_test"
}
use_port "$(cat "$STATE" 2>/dev/null || echo "$PGPORT")"

# Something accepts connections on the port (whatever it is).
held() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
  start)
    if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
      echo "installing postgresql from Debian's packages" >&2
      apt_install=(apt-get install -y --no-install-recommends postgresql)
      if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && "${apt_install[@]}" >&2; else sudo apt-get update -qq >&2 && sudo "${apt_install[@]}" >&2; fi
      bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    fi
    answers() { as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$1" -t 2; }
    use_port "$PGPORT"
    for _ in $(seq 20); do
      if answers "$PORT" || ! held "$PORT"; then break; fi
      echo "port $PORT is held by something that does not answer as PostgreSQL; trying $((PORT + 1))" >&2
      use_port $((PORT + 1))
    done
    echo "$PORT" >"$STATE"
    # A server already answering on the port is reused, whoever started it: pg_ctl's
    # own status check cannot see a postmaster started in another PID namespace.
    if ! answers "$PORT"; then
      start_pg() {
        if [ ! -f "$PGDATA/PG_VERSION" ]; then
          mkdir -p "$PGDATA"
          [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDATA"
          as_pg "$bin/initdb" -D "$PGDATA" --auth=trust -U postgres >/dev/null
        fi
        as_pg "$bin/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
          -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >&2
      }
      if ! start_pg; then
        # A data directory left by a server that was killed (or is held by one we
        # cannot see) is thrown away: it only ever holds test data.
        echo "postgres did not start; its log says:" >&2
        tail -n 5 "$PGDATA/server.log" >&2 || true
        if as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 5; then
          echo "a server answers on $PORT after all; using it" >&2
        else
          rm -rf "$PGDATA" "/tmp/.s.PGSQL.$PORT" "/tmp/.s.PGSQL.$PORT.lock"
          start_pg
        fi
      fi
    fi
    as_pg "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='tollgate_test'" | grep -q 1 \
      || as_pg "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres tollgate_test
    echo "$URL"
    ;;
  reset)
    as_pg "$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "DROP DATABASE IF EXISTS tollgate_test WITH (FORCE)" >&2
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres tollgate_test
    echo "$URL"
    ;;
  stop)
    [ -n "$bin" ] && as_pg "$bin/pg_ctl" -D "$PGDATA" -m fast stop >&2 || true
    ;;
esac
