#!/usr/bin/env bash
# Starts (or reuses) a throwaway Redis from Debian's packages for the tests, on
# 127.0.0.1:$REDIS_PORT, no persistence. Prints its URL.
# Usage: .ci/redis.sh start | stop
set -euo pipefail
# Below Linux's ephemeral range (32768-60999): a port in it can be the local
# end of some connection when the server starts (a CI run failed so, after the
# SQLite suite's many connections), and then the server cannot bind it.
REDIS_PORT="${TOLLGATE_TEST_REDIS_PORT:-26379}"
# The port actually used: another one when $REDIS_PORT is held by something that
# does not answer as Redis (a server frozen in another session, say).
STATE="/tmp/tollgate-redis-$REDIS_PORT.port"
PORT=$(cat "$STATE" 2>/dev/null || echo "$REDIS_PORT")

answers() { timeout 3 redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; }
# Something accepts connections on the port (whatever it is).
held() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "${1:-start}" in
  start)
    if ! command -v redis-server >/dev/null 2>&1; then
      echo "installing redis-server from Debian's packages" >&2
      apt_install=(apt-get install -y --no-install-recommends redis-server)
      if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && "${apt_install[@]}" >&2; else sudo apt-get update -qq >&2 && sudo "${apt_install[@]}" >&2; fi
    fi
    PORT="$REDIS_PORT"
    for _ in $(seq 20); do
      if answers "$PORT" || ! held "$PORT"; then break; fi
      echo "port $PORT is held by something that does not answer as Redis; trying $((PORT + 1))" >&2
      PORT=$((PORT + 1))
    done
    echo "$PORT" >"$STATE"
    if ! answers "$PORT"; then
      redis-server --daemonize yes --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --logfile "/tmp/tollgate-redis-$PORT.log" >&2
      for _ in $(seq 50); do answers "$PORT" && break; sleep 0.1; done
    fi
    timeout 10 redis-cli -p "$PORT" flushall >/dev/null
    echo "redis://127.0.0.1:$PORT"
    ;;
  stop)
    timeout 5 redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    ;;
esac
