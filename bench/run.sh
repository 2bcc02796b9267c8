#!/usr/bin/env bash
# Tollgate benchmark: one command, one run, one report.
#
#   bench/run.sh
#
# Builds the gateway and the bench tools, starts mock-upstream (--no-record),
# the passthrough reference proxy and Tollgate (auth + request logging on), all
# on 127.0.0.1, and measures, for (1) direct to the mock, (2) through
# passthrough, (3) through Tollgate:
#   - latency percentiles at concurrency 1            (wrk -t1 -c1)
#   - requests/s at saturation                        (wrk -t2 -c64)
#   - CPU time per request of the proxy process       (/proc/PID/stat)
#   - the same saturation run with accept-encoding: gzip, br
#   - streaming time-to-first-token                   (bench/src/bin/ttft.rs)
#   - RSS idle and under load                         (/proc/PID/status)
# Then, with limits and the response cache: a second Tollgate sharing counters
# and cache through Redis (redis-server on a free port) beside the first
# (in-process counters, local cache); for each, a virtual key without limits,
# one with rpm/tpm/max_parallel_requests (and a deployment rpm/max_parallel_requests),
# and cache hits, measured at saturation and at a fixed ~BENCH_RATE requests/s
# (wrk with a per-connection delay) for p50/p99 and p99 added over no limits.
# Prints a markdown report and writes it to bench/results/latest.md.
#
# Env knobs: BENCH_DURATION (s per wrk run, default 10), BENCH_CONNS (default 64),
# BENCH_TTFT_N (default 300), BENCH_SKIP_BUILD=1, BENCH_TIME_LIMIT (s, default 480,
# the bound on everything after the build), BENCH_QUIET_WAIT (s, default 60: how long
# to wait for other processes to stop using the CPU before measuring), BENCH_RATE
# (requests/s of the fixed-rate runs, default 1000), BENCH_RATE_ROUNDS (default 3) and
# BENCH_RATE_DURATION (s per fixed-rate run, default 5).
# Needs wrk (apt-get install -y wrk), curl, awk; sqlite3 and redis-server optional
# (without redis-server the Redis rows are left out).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate/target}"
BIN="$CARGO_TARGET_DIR/release"

DUR="${BENCH_DURATION:-10}"
CONNS="${BENCH_CONNS:-64}"
TTFT_N="${BENCH_TTFT_N:-300}"
TIME_LIMIT="${BENCH_TIME_LIMIT:-480}"
RATE="${BENCH_RATE:-1000}"
RATE_ROUNDS="${BENCH_RATE_ROUNDS:-3}"
RATE_DUR="${BENCH_RATE_DURATION:-5}"
QUIET_WAIT="${BENCH_QUIET_WAIT:-60}"

# ---------------------------------------------------------------- phase 1: build
if [[ "${BENCH_PHASE:-}" != "measure" ]]; then
    command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install -y wrk)" >&2; exit 1; }
    if [[ "${BENCH_SKIP_BUILD:-0}" != "1" ]]; then
        echo "bench: building (cargo build --release -p server -p tollgate-bench -p app, as make build does, so nothing is rebuilt) ..." >&2
        (cd "$ROOT" && cargo build --release -p server -p tollgate-bench -p app) >&2
    fi
    for b in tollgate mock-upstream passthrough ttft; do
        [[ -x "$BIN/$b" ]] || { echo "bench: missing $BIN/$b" >&2; exit 1; }
    done
    # Everything after the build is bounded in time; on expiry timeout sends
    # SIGTERM and the trap below stops every child.
    BENCH_PHASE=measure exec timeout -k 10 "$TIME_LIMIT" "$0" "$@"
fi

# -------------------------------------------------------------- phase 2: measure
WORK="$(mktemp -d /tmp/tollgate-bench.XXXXXX)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.2
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

log() { echo "bench: $*" >&2; }

# start NAME CMD... : runs CMD in $WORK with stdout in NAME.out; sets STARTED_PID.
start() {
    local name="$1"; shift
    (cd "$WORK" && exec "$@") >"$WORK/$name.out" 2>"$WORK/$name.err" &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}
# wait_url NAME : waits for "... listening on http://..." and prints the URL.
wait_url() {
    local name="$1" url=""
    for _ in $(seq 1 150); do
        url="$(grep -o 'listening on http://[0-9.:]*' "$WORK/$name.out" 2>/dev/null | head -1 | sed 's/listening on //')" || true
        [[ -n "$url" ]] && { echo "$url"; return 0; }
        sleep 0.1
    done
    log "$name did not start; stderr:"; cat "$WORK/$name.err" >&2; exit 1
}

cpu_ticks() { # utime+stime of a process (all threads), clock ticks
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
status_kb() { # status_kb PID VmRSS|VmHWM
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}
CLK_TCK="$(getconf CLK_TCK)"
NCPU="$(nproc)"
sys_ticks() { # "busy total task-busy" jiffies of the whole machine; task-busy leaves out
    # irq/softirq time, which the kernel charges to no process (loopback traffic is mostly ours)
    awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6, $2 + $3 + $4 + $9 }' /proc/stat
}
busy_pct_1s() { # % of the whole machine busy during the next second
    local a b
    a="$(sys_ticks)"; sleep 1; b="$(sys_ticks)"
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[2] - x[2];
        printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }'
}
own_ticks() { # CPU ticks of this script, its reaped children (wrk, ttft, ...) and the servers
    local t=0 pid
    times >"$WORK/times.txt"
    t="$(awk -v hz="$CLK_TCK" '{ for (i = 1; i <= NF; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } }
        END { printf "%d", s * hz }' "$WORK/times.txt")"
    for pid in "$MOCK_PID" "$PT_PID" "$TG_PID" "$TGN_PID" ${TGR_PID:-} ${REDIS_PID:-}; do t=$((t + $(cpu_ticks "$pid"))); done
    echo "$t"
}

BODY='{"model":"bench","messages":[{"role":"user","content":"hello world"}],"max_tokens":16}'
PATH_CHAT="/v1/chat/completions"

# wrk script: POST body; done() prints one machine-readable RESULT line.
make_lua() { # make_lua FILE [extra header lines]
    cat >"$1" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
$2
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d p50=%d p90=%d p99=%d p999=%d max=%d mean=%.1f non2xx=%d sockerr=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
}
make_lua "$WORK/post.lua" ""
make_lua "$WORK/post_gzip.lua" 'wrk.headers["Accept-Encoding"] = "gzip, br"'

# wrk_run NAME URL THREADS CONNS DURATION LUA : output in $WORK/wrk_NAME.txt
wrk_run() {
    local name="$1" url="$2" t="$3" c="$4" d="$5" lua="$6"
    timeout -k 5 $((d + 20)) wrk -t"$t" -c"$c" -d"${d}s" --timeout 2s --latency -s "$lua" "$url$PATH_CHAT" \
        >"$WORK/wrk_$name.txt" 2>&1 || { log "wrk $name failed:"; cat "$WORK/wrk_$name.txt" >&2; exit 1; }
}
# field NAME KEY : a value from the RESULT line of wrk run NAME
field() { grep '^RESULT' "$WORK/wrk_$1.txt" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
rps() { awk -v r="$(field "$1" requests)" -v d="$(field "$1" duration_us)" 'BEGIN { printf "%.0f", r / (d / 1e6) }'; }

# ------------------------------------------------------------------- start all
log "work dir $WORK"
# The machine has few cores: wait (bounded) until other processes leave them alone.
BUSY_BEFORE="$(busy_pct_1s)"
waited=0
while (( BUSY_BEFORE > 15 && waited < QUIET_WAIT )); do
    (( waited == 0 )) && log "machine is ${BUSY_BEFORE}% busy with other work; waiting up to ${QUIET_WAIT} s for it to calm down"
    sleep 4; waited=$((waited + 5)); BUSY_BEFORE="$(busy_pct_1s)"
done
log "machine ${BUSY_BEFORE}% busy before start (waited ${waited} s)"
start mock "$BIN/mock-upstream" --port 0 --no-record --first-token-delay-ms 0 --inter-chunk-delay-ms 0
MOCK_PID=$STARTED_PID; MOCK_URL="$(wait_url mock)"
start passthrough "$BIN/passthrough" --port 0 --upstream "$MOCK_URL"
PT_PID=$STARTED_PID; PT_URL="$(wait_url passthrough)"
# `bench` is the plain group the main table measures; `bench-limited` has a
# deployment rpm and max_parallel_requests (far above the load: reserved, never
# refused). The cache is on for requests that ask (`mode: default_off`).
tollgate_config() { # tollgate_config CACHE_TYPE
    cat <<EOF
model_list:
  - model_name: bench
    litellm_params: {model: openai/gpt-4o-mini, api_base: $MOCK_URL/v1, api_key: sk-upstream}
  - model_name: bench-limited
    litellm_params: {model: openai/gpt-4o-mini, api_base: $MOCK_URL/v1, api_key: sk-upstream, rpm: 100000000, max_parallel_requests: 100000}
litellm_settings:
  cache: true
  cache_params: {type: $1, mode: default_off, ttl: 600}
EOF
}
tollgate_config local >"$WORK/config.yaml"
start tollgate env TOLLGATE_MASTER_KEY=sk-bench DATABASE_URL="sqlite://$WORK/bench.db" TOLLGATE_LOG=warn \
    "$BIN/tollgate" serve --config "$WORK/config.yaml" --port 0
TG_PID=$STARTED_PID; TG_URL="$(wait_url tollgate)"
log "mock $MOCK_URL (pid $MOCK_PID), passthrough $PT_URL (pid $PT_PID), tollgate $TG_URL (pid $TG_PID)"
# The same storing no request log of successful calls (general_settings.disable_spend_logs):
# what the store's log costs, measured in the same run.
{ tollgate_config local; printf 'general_settings:\n  disable_spend_logs: true\n'; } >"$WORK/config_nolog.yaml"
start tollgate_nolog env TOLLGATE_MASTER_KEY=sk-bench DATABASE_URL="sqlite://$WORK/bench_nolog.db" TOLLGATE_LOG=warn \
    "$BIN/tollgate" serve --config "$WORK/config_nolog.yaml" --port 0
TGN_PID=$STARTED_PID; TGN_URL="$(wait_url tollgate_nolog)"
# The same with counters and cache in Redis (a private redis-server), if there is one.
TGR_URL=""
if command -v redis-server >/dev/null; then
    REDIS_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 56399)"
    start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
    REDIS_PID=$STARTED_PID
    for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    tollgate_config redis >"$WORK/config_redis.yaml"
    start tollgate_redis env TOLLGATE_MASTER_KEY=sk-bench DATABASE_URL="sqlite://$WORK/bench_redis.db" TOLLGATE_LOG=warn \
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT" "$BIN/tollgate" serve --config "$WORK/config_redis.yaml" --port 0
    TGR_PID=$STARTED_PID; TGR_URL="$(wait_url tollgate_redis)"
    log "tollgate with Redis $TGR_URL (pid $TGR_PID), redis-server :$REDIS_PORT (pid $REDIS_PID)"
else
    log "no redis-server: the Redis rows are left out"
fi

# Sanity: every target answers 200 with the mock's reply.
for url in "$MOCK_URL" "$PT_URL" "$TG_URL" "$TGN_URL"; do
    code="$(curl -s -o "$WORK/sanity.json" -w '%{http_code}' -m 5 "$url$PATH_CHAT" \
        -H 'content-type: application/json' -H 'authorization: Bearer sk-bench' -d "$BODY")"
    if [[ "$code" != 200 ]] || ! grep -q 'Mock reply to: hello world' "$WORK/sanity.json"; then
        log "sanity check failed for $url: HTTP $code"; cat "$WORK/sanity.json" >&2; exit 1
    fi
done
# Does Tollgate compress when asked? (content-encoding of a reply to accept-encoding: gzip, br)
TG_CE="$(curl -s -D - -o /dev/null -m 5 "$TG_URL$PATH_CHAT" -H 'content-type: application/json' \
    -H 'authorization: Bearer sk-bench' -H 'accept-encoding: gzip, br' -d "$BODY" \
    | tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')"
TG_CE="${TG_CE:-none}"

# ------------------------------------------------------------------- warm up
SYS0="$(sys_ticks)"; OWN0="$(own_ticks)"
log "warming up (2 s each)"
for t in "mock $MOCK_URL" "passthrough $PT_URL" "tollgate $TG_URL" "tollgate_nolog $TGN_URL"; do
    set -- $t
    wrk_run "warm_$1" "$2" 1 8 2 "$WORK/post.lua"
done
sleep 1
TG_RSS_IDLE="$(status_kb "$TG_PID" VmRSS)"
TG_HWM_IDLE="$(status_kb "$TG_PID" VmHWM)"
PT_RSS_IDLE="$(status_kb "$PT_PID" VmRSS)"

# ------------------------------------------------------- concurrency 1 latency
for t in "direct $MOCK_URL" "passthrough $PT_URL" "tollgate $TG_URL"; do
    set -- $t
    log "latency at concurrency 1: $1 (${DUR} s)"
    wrk_run "c1_$1" "$2" 1 1 "$DUR" "$WORK/post.lua"
    sleep 1
done

# ------------------------------------------------------------------ saturation
# rss_sampler PID FILE : max VmRSS (kB) seen while running, every 100 ms
rss_sampler() {
    local pid="$1" file="$2" max=0 v
    while kill -0 "$pid" 2>/dev/null; do
        v="$(status_kb "$pid" VmRSS 2>/dev/null || echo 0)"
        (( v > max )) && { max=$v; echo "$max" >"$file"; }
        sleep 0.1
    done
}
# sat NAME URL LUA PROC_PID : saturation run; records CPU ticks of PROC_PID (0 = none)
sat() {
    local name="$1" url="$2" lua="$3" pid="$4" before after mb ma sampler
    log "saturation (-t2 -c$CONNS, ${DUR} s): $name"
    before=0; [[ "$pid" != 0 ]] && before="$(cpu_ticks "$pid")"
    mb="$(cpu_ticks "$MOCK_PID")"
    echo 0 >"$WORK/rssmax_$name"
    sampler=""
    if [[ "$pid" != 0 ]]; then
        rss_sampler "$pid" "$WORK/rssmax_$name" & sampler=$!; PIDS+=("$sampler")
    fi
    wrk_run "sat_$name" "$url" 2 "$CONNS" "$DUR" "$lua"
    # 1 s settle, so batched work triggered by the run (request-log writes) is counted
    sleep 1
    [[ -n "$sampler" ]] && { kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; }
    after=0; [[ "$pid" != 0 ]] && after="$(cpu_ticks "$pid")"
    ma="$(cpu_ticks "$MOCK_PID")"
    echo "$((after - before))" >"$WORK/cpu_$name"
    echo "$((ma - mb))" >"$WORK/mockcpu_$name"
}
sat direct "$MOCK_URL" "$WORK/post.lua" 0
sat passthrough "$PT_URL" "$WORK/post.lua" "$PT_PID"
sat tollgate "$TG_URL" "$WORK/post.lua" "$TG_PID"
sat tollgate_gzip "$TG_URL" "$WORK/post_gzip.lua" "$TG_PID"
sat tollgate_nolog "$TGN_URL" "$WORK/post.lua" "$TGN_PID"
TG_RSS_AFTER="$(status_kb "$TG_PID" VmRSS)"
TG_HWM="$(status_kb "$TG_PID" VmHWM)"
PT_HWM="$(status_kb "$PT_PID" VmHWM)"

# ----------------------------------------------------------------------- TTFT
for t in "direct $MOCK_URL" "passthrough $PT_URL" "tollgate $TG_URL"; do
    set -- $t
    log "streaming TTFT, $TTFT_N sequential requests: $1"
    timeout -k 5 120 "$BIN/ttft" --url "$2$PATH_CHAT" --key sk-bench -n "$TTFT_N" --warmup 20 \
        >"$WORK/ttft_$1.txt" 2>"$WORK/ttft_$1.err" || { log "ttft $1 failed:"; cat "$WORK/ttft_$1.err" >&2; exit 1; }
done
ttft() { # ttft NAME METRIC KEY
    grep "^$2_us " "$WORK/ttft_$1.txt" | tr ' ' '\n' | awk -F= -v k="$3" '$1 == k { print $2 }'
}

# --------------------------------------------------- limits and the response cache
# new_key URL JSON : a virtual key made through /key/generate
new_key() {
    curl -s -m 5 "$1/key/generate" -H 'content-type: application/json' -H 'authorization: Bearer sk-bench' -d "$2" \
        | grep -o '"key":"sk-[^"]*"' | cut -d'"' -f4
}
LIMITS='{"rpm_limit": 100000000, "tpm_limit": 100000000000, "max_parallel_requests": 100000}'
BODY_LIMITED="${BODY/\"bench\"/\"bench-limited\"}"
BODY_CACHED="${BODY%\}}, \"cache\": {\"use-cache\": true}}"
# Per connection, wait so that RATE_CONNS connections together send about RATE requests/s.
RATE_CONNS=10
RATE_DELAY_MS=$(( 1000 * RATE_CONNS / RATE ))
# The wait is drawn between 0 and twice that, so that the connections do not
# fall into step and send their requests in bursts.
RATE_LUA="math.randomseed(os.time())
delay = function() return math.random(0, $((2 * RATE_DELAY_MS))) end"
# variant_lua FILE KEY BODY [rate]
variant_lua() {
    local extra="wrk.headers[\"Authorization\"] = \"Bearer $2\"
wrk.body = '$3'"
    [[ "${4:-}" == rate ]] && extra+="
$RATE_LUA"
    make_lua "$1" "$extra"
}
variants() { # variants NAME URL : lua files for plain, limits and cache runs against URL
    local name="$1" url="$2" plain limited mode
    plain="$(new_key "$url" '{"key_alias": "bench-plain"}')"
    limited="$(new_key "$url" "$LIMITS")"
    [[ -n "$plain" && -n "$limited" ]] || { log "could not make keys on $url"; exit 1; }
    for mode in "" rate; do
        variant_lua "$WORK/${name}_plain${mode:+_rate}.lua" "$plain" "$BODY" "$mode"
        variant_lua "$WORK/${name}_limits${mode:+_rate}.lua" "$limited" "$BODY_LIMITED" "$mode"
        variant_lua "$WORK/${name}_cache${mode:+_rate}.lua" "$plain" "$BODY_CACHED" "$mode"
    done
    # Sanity: limits are applied (x-ratelimit headers) and the cache answers.
    curl -s -D "$WORK/h_$name" -o /dev/null -m 5 "$url$PATH_CHAT" -H 'content-type: application/json' \
        -H "authorization: Bearer $limited" -d "$BODY_LIMITED"
    grep -qi '^x-ratelimit-limit-requests' "$WORK/h_$name" || { log "$name: no x-ratelimit headers with limits"; exit 1; }
    for _ in 1 2; do
        curl -s -D "$WORK/h_$name" -o /dev/null -m 5 "$url$PATH_CHAT" -H 'content-type: application/json' \
            -H "authorization: Bearer $plain" -d "$BODY_CACHED"
        sleep 0.2
    done
    grep -qi '^x-tollgate-cache-hit: true' "$WORK/h_$name" || { log "$name: the cache did not answer"; exit 1; }
}
SETUPS="tg $TG_URL"
[[ -n "$TGR_URL" ]] && SETUPS+=" tgr $TGR_URL"
set -- $SETUPS
while (( $# )); do
    variants "$1" "$2"
    for v in plain limits cache; do
        log "saturation (-t2 -c$CONNS, ${DUR} s): $1 $v"
        wrk_run "sat_$1_$v" "$2" 2 "$CONNS" "$DUR" "$WORK/$1_$v.lua"
        sleep 1
    done
    shift 2
done
make_lua "$WORK/rate.lua" "$RATE_LUA"
# Rounds alternate the setups, so that a burst of other work on the machine
# falls on all of them alike; each figure is the median over the rounds.
RATE_NAMES="direct passthrough $(set -- $SETUPS; while (( $# )); do echo "$1_plain $1_limits $1_cache"; shift 2; done)"
for r in $(seq 1 "$RATE_ROUNDS"); do
    log "fixed rate (~$RATE/s, ${RATE_DUR} s each), round $r of $RATE_ROUNDS"
    wrk_run "rate_direct_r$r" "$MOCK_URL" 1 "$RATE_CONNS" "$RATE_DUR" "$WORK/rate.lua"
    wrk_run "rate_passthrough_r$r" "$PT_URL" 1 "$RATE_CONNS" "$RATE_DUR" "$WORK/rate.lua"
    set -- $SETUPS
    while (( $# )); do
        for v in plain limits cache; do
            wrk_run "rate_$1_${v}_r$r" "$2" 1 "$RATE_CONNS" "$RATE_DUR" "$WORK/$1_${v}_rate.lua"
        done
        shift 2
    done
done
# One RESULT line per setup: counts summed, latencies the median of the rounds.
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for n in $RATE_NAMES; do
    line="RESULT"
    for k in requests duration_us bytes non2xx sockerr; do
        line+=" $k=$(for r in $(seq 1 "$RATE_ROUNDS"); do field "rate_${n}_r$r" "$k"; done | awk '{ s += $1 } END { print s }')"
    done
    for k in p50 p90 p99 p999 max; do
        line+=" $k=$(for r in $(seq 1 "$RATE_ROUNDS"); do field "rate_${n}_r$r" "$k"; done | median)"
    done
    echo "$line" >"$WORK/wrk_rate_$n.txt"
done

SYS1="$(sys_ticks)"; OWN1="$(own_ticks)"
# Share of the machine used by processes other than this benchmark while it measured.
FOREIGN="$(awk -v a="$SYS0" -v b="$SYS1" -v o0="$OWN0" -v o1="$OWN1" 'BEGIN {
    split(a, x, " "); split(b, y, " "); f = (y[3] - x[3]) - (o1 - o0); if (f < 0) f = 0;
    printf "%.0f", 100 * f / (y[2] - x[2]) }')"

# Request-log rows written by Tollgate (best effort; the writer batches).
LOG_ROWS="n/a (no sqlite3)"
if command -v sqlite3 >/dev/null; then
    LOG_ROWS="$(sqlite3 "file:$WORK/bench.db?mode=ro" "SELECT count(*) FROM request_logs" 2>/dev/null || echo '?')"
fi

# --------------------------------------------------------------------- report
us() { # human latency from µs
    awk -v v="$1" 'BEGIN { if (v >= 10000 || v <= -10000) printf "%.1f ms", v / 1000; else printf "%d µs", v }'
}
mb() { awk -v v="$1" 'BEGIN { printf "%.1f MB", v / 1024 }'; }
cpu_per_req() { # µs of CPU per request
    awk -v t="$(cat "$WORK/cpu_$1")" -v hz="$CLK_TCK" -v r="$(field "sat_$1" requests)" \
        'BEGIN { printf "%.0f", (t / hz * 1e6) / r }'
}
mock_cpu_per_req() {
    awk -v t="$(cat "$WORK/mockcpu_$1")" -v hz="$CLK_TCK" -v r="$(field "sat_$1" requests)" \
        'BEGIN { printf "%.0f µs", (t / hz * 1e6) / r }'
}
mark() { # mark OK-CONDITION(awk expr over v) VALUE
    awk -v v="$2" "BEGIN { print (($1) ? \"✅\" : \"❌\") }"
}

D_P99="$(field c1_direct p99)"; P_P99="$(field c1_passthrough p99)"; T_P99="$(field c1_tollgate p99)"
ADD_P99_T=$((T_P99 - D_P99)); ADD_P99_P=$((P_P99 - D_P99))
D_P50="$(field c1_direct p50)"; P_P50="$(field c1_passthrough p50)"; T_P50="$(field c1_tollgate p50)"
RPS_D="$(rps sat_direct)"; RPS_P="$(rps sat_passthrough)"; RPS_T="$(rps sat_tollgate)"; RPS_TG="$(rps sat_tollgate_gzip)"
RATIO="$(awk -v a="$RPS_T" -v b="$RPS_P" 'BEGIN { printf "%.1f", 100 * a / b }')"
RATIO_GZ="$(awk -v a="$RPS_TG" -v b="$RPS_P" 'BEGIN { printf "%.1f", 100 * a / b }')"
RPS_TN="$(rps sat_tollgate_nolog)"; CPU_TN="$(cpu_per_req tollgate_nolog)"
RATIO_N="$(awk -v a="$RPS_TN" -v b="$RPS_P" 'BEGIN { printf "%.1f", 100 * a / b }')"
CPU_P="$(cpu_per_req passthrough)"; CPU_T="$(cpu_per_req tollgate)"; CPU_TG="$(cpu_per_req tollgate_gzip)"
BPR_T="$(awk -v b="$(field sat_tollgate bytes)" -v r="$(field sat_tollgate requests)" 'BEGIN { printf "%.0f", b / r }')"
BPR_TG="$(awk -v b="$(field sat_tollgate_gzip bytes)" -v r="$(field sat_tollgate_gzip requests)" 'BEGIN { printf "%.0f", b / r }')"
TT_D50="$(ttft direct ttft p50)"; TT_P50="$(ttft passthrough ttft p50)"; TT_T50="$(ttft tollgate ttft p50)"
TT_D99="$(ttft direct ttft p99)"; TT_P99="$(ttft passthrough ttft p99)"; TT_T99="$(ttft tollgate ttft p99)"
HD_D50="$(ttft direct headers p50)"; HD_T50="$(ttft tollgate headers p50)"; HD_P50="$(ttft passthrough headers p50)"
TG_RSS_LOAD="$(cat "$WORK/rssmax_tollgate" "$WORK/rssmax_tollgate_gzip" | sort -n | tail -1)"
PT_RSS_LOAD="$(cat "$WORK/rssmax_passthrough")"
ERRS=""
for n in c1_direct c1_passthrough c1_tollgate sat_direct sat_passthrough sat_tollgate sat_tollgate_gzip sat_tollgate_nolog rate_direct rate_passthrough \
    $(set -- $SETUPS; while (( $# )); do for v in plain limits cache; do echo "sat_$1_$v rate_$1_$v"; done; shift 2; done); do
    e="$(( $(field "$n" non2xx) + $(field "$n" sockerr) ))"
    [[ "$e" != 0 ]] && ERRS+="$n: $e non-2xx/socket errors; "
done
for n in direct passthrough tollgate; do
    e="$(grep -o 'errors=[0-9]*' "$WORK/ttft_$n.txt" | cut -d= -f2)"
    [[ "$e" != 0 ]] && ERRS+="ttft $n: $e errors; "
done

GIT_REV="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
GIT_DIRTY="$(cd "$ROOT" && git status --porcelain 2>/dev/null | wc -l)"
CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"

LIMITS_REPORT="$WORK/limits.md"
{
echo "### Limits and the response cache"
echo
echo "Saturation: wrk -t2 -c$CONNS -d${DUR}s. Fixed rate: wrk -t1 -c$RATE_CONNS -d${RATE_DUR}s, each connection waiting a random 0–$((2 * RATE_DELAY_MS)) ms (mean $RATE_DELAY_MS ms) between requests (about $RATE requests/s); $RATE_ROUNDS rounds that alternate the setups, each figure the median over the rounds."
echo "No limits: a virtual key without limits, group \`bench\`. Limits: a key with rpm_limit, tpm_limit and max_parallel_requests (so its prompt is counted) calling \`bench-limited\`, whose deployment has rpm and max_parallel_requests: every request reserves and settles all of them. Cache: \`cache: {use-cache: true}\`, the same request each time, so every request after the first is a hit."
echo
echo "| Setup | requests/s at saturation | at fixed rate: requests/s | p50 | p99 | p99 added over no limits | Target | |"
echo "|---|---:|---:|---:|---:|---:|---|---|"
echo "| direct (mock) | $(rps sat_direct) | $(rps rate_direct) | $(us "$(field rate_direct p50)") | $(us "$(field rate_direct p99)") | | | |"
echo "| passthrough | $(rps sat_passthrough) | $(rps rate_passthrough) | $(us "$(field rate_passthrough p50)") | $(us "$(field rate_passthrough p99)") | | | |"
set -- $SETUPS
while (( $# )); do
    where="in-process counters, local cache"; [[ "$1" == tgr ]] && where="Redis counters and cache"
    base="$(field "rate_$1_plain" p99)"
    for v in plain limits cache; do
        p99="$(field "rate_$1_$v" p99)"
        added=""; target=""; ok=""
        [[ "$v" != plain ]] && added="$(us $((p99 - base)))"
        if [[ "$1" == tgr && "$v" == limits ]]; then target="≤ 1 ms"; ok="$(mark 'v <= 1000' $((p99 - base)))"; added="**$added**"; fi
        label="no limits"; [[ "$v" == limits ]] && label="limits"; [[ "$v" == cache ]] && label="cache hits"
        echo "| Tollgate, $where: $label | $(rps "sat_$1_$v") | $(rps "rate_$1_$v") | $(us "$(field "rate_$1_$v" p50)") | $(us "$p99") | $added | $target | $ok |"
    done
    shift 2
done
if [[ -z "$TGR_URL" ]]; then
    echo "| Tollgate with Redis | no redis-server on this machine | | | | | ≤ 1 ms | not measured |"
fi
} >"$LIMITS_REPORT"

REPORT="$WORK/report.md"
{
echo "# Tollgate benchmark — $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo
echo "Host: $(nproc) CPU ($CPU_MODEL), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); git $GIT_REV ($GIT_DIRTY changed paths); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)."
echo "Everything on 127.0.0.1, client + proxy + mock share the same cores. Mock: zero delay, --no-record."
echo "Tollgate: master key auth, request logging to SQLite on (batched). Same POST body everywhere (max_tokens 16, ~430-byte JSON reply)."
echo
echo "| Metric | Direct (mock) | Passthrough | Tollgate | Target | |"
echo "|---|---:|---:|---:|---|---|"
echo "| c=1 latency p50 (wrk -t1 -c1 -d${DUR}s) | $(us "$D_P50") | $(us "$P_P50") | $(us "$T_P50") | | |"
echo "| c=1 latency p90 | $(us "$(field c1_direct p90)") | $(us "$(field c1_passthrough p90)") | $(us "$(field c1_tollgate p90)") | | |"
echo "| c=1 latency p99 | $(us "$D_P99") | $(us "$P_P99") | $(us "$T_P99") | | |"
echo "| c=1 latency p99.9 | $(us "$(field c1_direct p999)") | $(us "$(field c1_passthrough p999)") | $(us "$(field c1_tollgate p999)") | | |"
echo "| c=1 requests/s | $(rps c1_direct) | $(rps c1_passthrough) | $(rps c1_tollgate) | | |"
echo "| **added p99 vs direct** (c=1) | — | $(us "$ADD_P99_P") | **$(us "$ADD_P99_T")** | ≤ 100 µs | $(mark 'v <= 100' "$ADD_P99_T") |"
echo "| added p50 vs direct (c=1) | — | $(us $((P_P50 - D_P50))) | $(us $((T_P50 - D_P50))) | | |"
echo "| saturation requests/s (wrk -t2 -c$CONNS -d${DUR}s) | $RPS_D | $RPS_P | $RPS_T | | |"
echo "| saturation p99 | $(us "$(field sat_direct p99)") | $(us "$(field sat_passthrough p99)") | $(us "$(field sat_tollgate p99)") | | |"
echo "| **requests/s, Tollgate / passthrough** | — | 100% | **${RATIO}%** | ≥ 80% | $(mark 'v >= 80' "$RATIO") |"
echo "| saturation requests/s with accept-encoding: gzip, br | — | — | $RPS_TG (${RATIO_GZ}%) | | |"
echo "| reply bytes/request (incl. headers), plain / gzip,br | — | — | $BPR_T / $BPR_TG; content-encoding: $TG_CE | not compressed | $( [[ "$TG_CE" == none && "$BPR_T" == "$BPR_TG" ]] && echo ✅ || echo ❌ ) |"
echo "| **proxy CPU time per request** (utime+stime, saturation run + 1 s) | — | $CPU_P µs | **$CPU_T µs** (gzip run: $CPU_TG µs) | | |"
echo "| with \`disable_spend_logs\` (no request log of successful calls stored): requests/s, ratio, CPU per request | — | — | $RPS_TN (${RATIO_N}%), $CPU_TN µs | | |"
echo "| mock CPU per request in the same run | $(mock_cpu_per_req direct) | $(mock_cpu_per_req passthrough) | $(mock_cpu_per_req tollgate) | | |"
echo "| streaming: response head p50 ($TTFT_N sequential) | $(us "$HD_D50") | $(us "$HD_P50") | $(us "$HD_T50") | | |"
echo "| streaming: TTFT p50 (first data: event with content) | $(us "$TT_D50") | $(us "$TT_P50") | $(us "$TT_T50") | | |"
echo "| streaming: TTFT p99 | $(us "$TT_D99") | $(us "$TT_P99") | $(us "$TT_T99") | | |"
echo "| **added TTFT vs direct** p50 / p99 | — | $(us $((TT_P50 - TT_D50))) / $(us $((TT_P99 - TT_D99))) | **$(us $((TT_T50 - TT_D50))) / $(us $((TT_T99 - TT_D99)))** | | |"
echo "| RSS idle (VmRSS after start + warm-up) | — | $(mb "$PT_RSS_IDLE") | $(mb "$TG_RSS_IDLE") | | |"
echo "| **RSS under load** (max VmRSS sampled every 100 ms) | — | $(mb "$PT_RSS_LOAD") | **$(mb "$TG_RSS_LOAD")** | ≤ 64 MB | $(mark 'v <= 65536' "$TG_RSS_LOAD") |"
echo "| peak RSS (VmHWM at end; idle VmHWM) / VmRSS at end | — | $(mb "$PT_HWM") | $(mb "$TG_HWM") ($(mb "$TG_HWM_IDLE")) / $(mb "$TG_RSS_AFTER") | | |"
echo
echo "Noise: machine ${BUSY_BEFORE}% busy just before the run; other processes used ${FOREIGN}% of the machine while it measured$( (( FOREIGN > 10 )) && echo ' — **numbers are disturbed, rerun on a quiet machine**')."
echo
echo "Errors: ${ERRS:-none (all runs: 0 non-2xx, 0 socket errors)}. Tollgate request-log rows after the run: ${LOG_ROWS}."
echo
echo
cat "$LIMITS_REPORT"
echo
echo "Command: \`bench/run.sh\` (BENCH_DURATION=$DUR BENCH_CONNS=$CONNS BENCH_TTFT_N=$TTFT_N BENCH_RATE=$RATE BENCH_RATE_ROUNDS=$RATE_ROUNDS BENCH_RATE_DURATION=$RATE_DUR)."
} >"$REPORT"

mkdir -p "$BENCH_DIR/results"
cp "$REPORT" "$BENCH_DIR/results/latest.md"
cat "$REPORT"
log "written to bench/results/latest.md"
