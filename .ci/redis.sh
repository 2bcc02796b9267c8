#!/usr/bin/env bash
# Starts (or reuses) a throwaway Redis from Debian's packages for the tests, on
# 127.0.0.1:$REDIS_PORT, no persistence. Prints its URL.
# Usage: .ci/redis.sh start | stop
set -euo pipefail
REDIS_PORT="${TOLLGATE_TEST_REDIS_PORT:-56379}"
URL="redis://127.0.0.1:$REDIS_PORT"

case "${1:-start}" in
  start)
    if ! command -v redis-server >/dev/null 2>&1; then
      echo "installing redis-server from Debian's packages" >&2
      apt_install=(apt-get install -y --no-install-recommends redis-server)
      if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && "${apt_install[@]}" >&2; else sudo apt-get update -qq >&2 && sudo "${apt_install[@]}" >&2; fi
    fi
    if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
      redis-server --daemonize yes --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        --logfile "/tmp/tollgate-redis-$REDIS_PORT.log" >&2
      for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    echo "$URL"
    ;;
  stop)
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    ;;
esac
