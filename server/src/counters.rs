//! Counters every limit, cooldown and routing statistic is kept in: shared by
//! all Tollgate processes through Redis when it is configured, else (and while
//! Redis cannot be reached) kept in this process.
//!
//! Two kinds: per-minute windows (requests and tokens per minute, failures per
//! minute, usage per deployment) and open counters (requests in flight). A
//! reservation checks every counter it names against its limit and, only if
//! all have room, adds to all of them — in one Lua script on Redis, under one
//! lock here — so two processes can never both take the last unit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of a rate window.
pub const MINUTE: u64 = 60;
/// An open counter (requests in flight) left by a process that died is
/// forgotten after this long without use.
const OPEN_TTL_SECS: u64 = 900;
/// Beyond this many local counters, stale windows are swept.
const SWEEP_ABOVE: usize = 20_000;
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const REDIS_PROBE_EVERY: Duration = Duration::from_secs(1);

/// One counter a reservation touches.
#[derive(Debug, Clone)]
pub struct Check {
    /// Its name, e.g. `rpm:key:<token>`; the window is added by the store.
    pub name: String,
    /// Refuse when `used + amount` would pass it; `None` only counts.
    pub limit: Option<u64>,
    pub amount: u64,
    /// Per-minute window, or an open counter.
    pub windowed: bool,
}

/// A counter after a reservation: its value and the seconds until its window resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub used: u64,
    pub reset_in: u64,
    /// The window the amount went to (to settle it later); 0 for open counters.
    pub window: u64,
}

/// The first counter that had no room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub index: usize,
    pub used: u64,
    pub reset_in: u64,
}

/// A counter or flag to read without changing it.
#[derive(Debug, Clone)]
pub enum Probe {
    /// A per-minute counter, this minute.
    Window(String),
    /// An open counter.
    Open(String),
    /// A flag set for a while: the milliseconds it still holds (0 when unset).
    Flag(String),
}

/// Where counters live: Redis when configured and reachable, else this process.
pub struct Counters {
    local: Local,
    redis: Option<Arc<Shared>>,
}

impl Counters {
    /// In this process only.
    pub fn local() -> Counters {
        Counters {
            local: Local::default(),
            redis: None,
        }
    }

    /// Shared through Redis at `url`. Does not wait for Redis: until it
    /// answers, counting is per process (and said so loudly).
    pub fn with_redis(url: &str, prefix: &str) -> Result<Counters, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("REDIS_URL {}: {e}", redacted(url)))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("Redis {}: {e}", redacted(url)))?;
        Ok(Counters {
            local: Local::default(),
            redis: Some(Arc::new(Shared {
                conn,
                prefix: prefix.to_string(),
                up: AtomicBool::new(true),
                url: redacted(url),
                reserve: redis::Script::new(RESERVE_LUA),
                add: redis::Script::new(ADD_LUA),
                observe: redis::Script::new(OBSERVE_LUA),
            })),
        })
    }

    /// `None` without Redis; else whether it answered last time.
    pub fn redis_status(&self) -> Option<bool> {
        self.redis.as_ref().map(|r| r.up.load(Ordering::Relaxed))
    }

    /// Pings Redis every second while Tollgate runs, so an outage and the
    /// return are noticed (and logged) even without traffic.
    pub fn spawn_probe(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(shared) = self.redis.clone() else {
            return;
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(REDIS_PROBE_EVERY) => {}
                }
                let mut conn = shared.conn.clone();
                let ping: redis::RedisResult<String> =
                    tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("PING").query_async(&mut conn))
                        .await
                        .unwrap_or_else(|_| Err(timeout_error()));
                match ping {
                    Ok(_) => shared.mark_up(),
                    Err(e) => shared.mark_down(&e),
                }
            }
        });
    }

    /// Checks every counter and adds to all of them, or to none.
    pub async fn reserve(&self, checks: &[Check]) -> Result<Vec<Level>, Refused> {
        if checks.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(r) = self.shared() {
            match r.reserve(checks).await {
                Ok(out) => return out,
                Err(e) => r.mark_down(&e),
            }
        }
        self.local.reserve(checks, now_secs())
    }

    /// Adds `delta` (maybe negative) to counters reserved earlier, in the
    /// windows they were reserved in; open counters never go below zero.
    pub async fn add(&self, entries: &[(String, u64, i64)]) {
        if entries.is_empty() {
            return;
        }
        if let Some(r) = self.shared() {
            match r.add(entries).await {
                Ok(()) => return,
                Err(e) => r.mark_down(&e),
            }
        }
        self.local.add(entries);
    }

    /// Reads counters and flags in one round trip.
    pub async fn observe(&self, probes: &[Probe]) -> Vec<u64> {
        if probes.is_empty() {
            return Vec::new();
        }
        if let Some(r) = self.shared() {
            match r.observe(probes).await {
                Ok(out) => return out,
                Err(e) => r.mark_down(&e),
            }
        }
        self.local.observe(probes, now_secs())
    }

    /// Sets a flag for `ttl` (a deployment's cooldown).
    pub async fn flag(&self, name: &str, ttl: Duration) {
        if let Some(r) = self.shared() {
            match r.flag(name, ttl).await {
                Ok(()) => return,
                Err(e) => r.mark_down(&e),
            }
        }
        self.local.flag(name, ttl);
    }

    /// Takes `name` for `ttl` unless someone (any process, with Redis) holds
    /// it: whether this caller got it. One alert per event across processes.
    pub async fn claim(&self, name: &str, ttl: Duration) -> bool {
        if let Some(r) = self.shared() {
            let mut conn = r.conn.clone();
            let cmd = redis::cmd("SET")
                .arg(format!("{}{name}", r.prefix))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .to_owned();
            match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<Option<String>>(&mut conn))
                .await
                .unwrap_or_else(|_| Err(timeout_error()))
            {
                Ok(set) => return set.is_some(),
                Err(e) => r.mark_down(&e),
            }
        }
        self.local.claim(name, ttl)
    }

    /// A value kept in Redis (the response cache). `Err` when Redis is not
    /// configured or not answering: the caller goes on without it.
    pub async fn blob_get(&self, name: &str) -> Result<Option<Vec<u8>>, ()> {
        let r = self.shared().ok_or(())?;
        let mut conn = r.conn.clone();
        let cmd = redis::cmd("GET")
            .arg(format!("{}{name}", r.prefix))
            .to_owned();
        let out =
            tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<Option<Vec<u8>>>(&mut conn))
                .await
                .unwrap_or_else(|_| Err(timeout_error()));
        out.map_err(|e| r.mark_down(&e))
    }

    /// Keeps `value` under `name` for `ttl`; best effort.
    pub async fn blob_put(&self, name: &str, value: &[u8], ttl: Duration) {
        let Some(r) = self.shared() else {
            return;
        };
        let mut conn = r.conn.clone();
        let cmd = redis::cmd("SET")
            .arg(format!("{}{name}", r.prefix))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .to_owned();
        let out = tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<()>(&mut conn))
            .await
            .unwrap_or_else(|_| Err(timeout_error()));
        if let Err(e) = out {
            r.mark_down(&e);
        }
    }

    /// Deletes values by name; how many there were.
    pub async fn blob_del(&self, names: &[String]) -> Result<u64, String> {
        let r = self.shared().ok_or("Redis is not reachable")?;
        if names.is_empty() {
            return Ok(0);
        }
        let mut conn = r.conn.clone();
        let mut cmd = redis::cmd("DEL");
        for n in names {
            cmd.arg(format!("{}{n}", r.prefix));
        }
        tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<u64>(&mut conn))
            .await
            .unwrap_or_else(|_| Err(timeout_error()))
            .map_err(|e| e.to_string())
    }

    /// Deletes every value whose name starts with `prefix`; how many there were.
    pub async fn blob_clear(&self, prefix: &str) -> Result<u64, String> {
        let r = self.shared().ok_or("Redis is not reachable")?;
        let mut conn = r.conn.clone();
        let pattern = format!("{}{prefix}*", r.prefix);
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let scan = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .to_owned();
            let (next, keys): (u64, Vec<String>) =
                tokio::time::timeout(REDIS_TIMEOUT, scan.query_async(&mut conn))
                    .await
                    .unwrap_or_else(|_| Err(timeout_error()))
                    .map_err(|e| e.to_string())?;
            if !keys.is_empty() {
                let del = redis::cmd("UNLINK").arg(&keys).to_owned();
                deleted += tokio::time::timeout(REDIS_TIMEOUT, del.query_async::<u64>(&mut conn))
                    .await
                    .unwrap_or_else(|_| Err(timeout_error()))
                    .map_err(|e| e.to_string())?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn shared(&self) -> Option<&Shared> {
        self.redis
            .as_deref()
            .filter(|r| r.up.load(Ordering::Relaxed))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn timeout_error() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer within 500 ms",
    ))
}

/// A Redis URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// The in-process store: one lock, held for a few map operations.
#[derive(Default)]
struct Local {
    map: Mutex<HashMap<String, (u64, u64)>>,
    flags: Mutex<HashMap<String, std::time::Instant>>,
}

impl Local {
    fn observe(&self, probes: &[Probe], now: u64) -> Vec<u64> {
        let window = now / MINUTE;
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let flags = self.flags.lock().unwrap_or_else(|e| e.into_inner());
        let at = std::time::Instant::now();
        probes
            .iter()
            .map(|p| match p {
                Probe::Window(n) => match map.get(n) {
                    Some((w, v)) if *w == window => *v,
                    _ => 0,
                },
                Probe::Open(n) => map.get(n).map_or(0, |(_, v)| *v),
                Probe::Flag(n) => flags.get(n).map_or(0, |until| {
                    until.saturating_duration_since(at).as_millis() as u64
                }),
            })
            .collect()
    }

    fn flag(&self, name: &str, ttl: Duration) {
        let mut flags = self.flags.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        flags.retain(|_, until| *until > now);
        flags.insert(name.to_string(), now + ttl);
    }

    fn claim(&self, name: &str, ttl: Duration) -> bool {
        let mut flags = self.flags.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if flags.get(name).is_some_and(|until| *until > now) {
            return false;
        }
        flags.retain(|_, until| *until > now);
        flags.insert(name.to_string(), now + ttl);
        true
    }

    fn reserve(&self, checks: &[Check], now: u64) -> Result<Vec<Level>, Refused> {
        let window = now / MINUTE;
        let reset_in = MINUTE - now % MINUTE;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, (w, v)| *w == window || (*w == 0 && *v > 0));
        }
        let current = |map: &HashMap<String, (u64, u64)>, c: &Check| -> u64 {
            match map.get(&c.name) {
                Some((w, v)) if !c.windowed || *w == window => *v,
                _ => 0,
            }
        };
        for (index, c) in checks.iter().enumerate() {
            let used = current(&map, c);
            if c.amount > 0 && c.limit.is_some_and(|l| used + c.amount > l) {
                return Err(Refused {
                    index,
                    used,
                    reset_in: if c.windowed { reset_in } else { 0 },
                });
            }
        }
        let mut out = Vec::with_capacity(checks.len());
        for c in checks {
            let used = current(&map, c) + c.amount;
            let w = if c.windowed { window } else { 0 };
            if c.amount > 0 {
                map.insert(c.name.clone(), (w, used));
            }
            out.push(Level {
                used,
                reset_in: if c.windowed { reset_in } else { 0 },
                window: w,
            });
        }
        Ok(out)
    }

    fn add(&self, entries: &[(String, u64, i64)]) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for (name, window, delta) in entries {
            if let Some((w, v)) = map.get_mut(name) {
                if w == window {
                    *v = v.saturating_add_signed(*delta);
                }
            }
        }
    }
}

/// Redis: the connection, and whether it answered last time.
struct Shared {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    up: AtomicBool,
    url: String,
    reserve: redis::Script,
    add: redis::Script,
    observe: redis::Script,
}

impl Shared {
    async fn observe(&self, probes: &[Probe]) -> redis::RedisResult<Vec<u64>> {
        let mut inv = self.observe.prepare_invoke();
        for p in probes {
            let (name, kind) = match p {
                Probe::Window(n) => (n, "w"),
                Probe::Open(n) => (n, "o"),
                Probe::Flag(n) => (n, "f"),
            };
            inv.key(format!("{}{name}", self.prefix));
            inv.arg(kind);
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = tokio::time::timeout(REDIS_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .unwrap_or_else(|_| Err(timeout_error()))?;
        Ok(out.into_iter().map(|v| v.max(0) as u64).collect())
    }

    async fn flag(&self, name: &str, ttl: Duration) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("SET")
            .arg(format!("{}{name}", self.prefix))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .to_owned();
        tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<()>(&mut conn))
            .await
            .unwrap_or_else(|_| Err(timeout_error()))
    }

    fn mark_down(&self, e: &redis::RedisError) {
        crate::metrics::redis_error();
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::error!(
                redis = %self.url,
                error = %e,
                "Redis is unreachable: limits, cooldowns and usage are now counted per process until it returns"
            );
            crate::logs::export::service_event("redis", "unreachable", true, Some(e.to_string()));
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::warn!(redis = %self.url, "Redis answers again: counting is shared across processes again");
            crate::logs::export::service_event("redis", "restored", false, None);
        }
    }

    async fn reserve(&self, checks: &[Check]) -> redis::RedisResult<Result<Vec<Level>, Refused>> {
        let mut inv = self.reserve.prepare_invoke();
        for c in checks {
            inv.key(format!("{}{}", self.prefix, c.name));
        }
        for c in checks {
            inv.arg(c.limit.map(|l| l as i64).unwrap_or(-1))
                .arg(c.amount)
                .arg(if c.windowed { MINUTE } else { 0 });
        }
        inv.arg(OPEN_TTL_SECS);
        let mut conn = self.conn.clone();
        let out: Vec<i64> = tokio::time::timeout(REDIS_TIMEOUT, inv.invoke_async(&mut conn))
            .await
            .unwrap_or_else(|_| Err(timeout_error()))?;
        let u = |i: usize| out.get(i).copied().unwrap_or(0).max(0) as u64;
        if out.first() == Some(&0) {
            return Ok(Err(Refused {
                index: u(1).saturating_sub(1) as usize,
                used: u(2),
                reset_in: u(3),
            }));
        }
        Ok(Ok((0..checks.len())
            .map(|i| Level {
                used: u(1 + 3 * i),
                reset_in: u(2 + 3 * i),
                window: u(3 + 3 * i),
            })
            .collect()))
    }

    async fn add(&self, entries: &[(String, u64, i64)]) -> redis::RedisResult<()> {
        let mut inv = self.add.prepare_invoke();
        for (name, window, _) in entries {
            if *window == 0 {
                inv.key(format!("{}{name}", self.prefix));
            } else {
                inv.key(format!("{}{name}:{window}", self.prefix));
            }
        }
        for (_, window, delta) in entries {
            inv.arg(*delta).arg(u64::from(*window == 0));
        }
        let mut conn = self.conn.clone();
        tokio::time::timeout(REDIS_TIMEOUT, inv.invoke_async::<()>(&mut conn))
            .await
            .unwrap_or_else(|_| Err(timeout_error()))
    }
}

/// KEYS: counter names. ARGV: (limit or -1, amount, window seconds or 0) per
/// key, then the open counters' time to live. Returns `{0, index, used,
/// reset_in}` when a counter has no room, else `{1, used, reset_in, window, …}`.
/// The window comes from Redis's clock, so every process agrees on it.
const RESERVE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1])
local open_ttl = tonumber(ARGV[#KEYS * 3 + 1])
local names = {}
local used = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[i * 3 - 2])
  local amount = tonumber(ARGV[i * 3 - 1])
  local win = tonumber(ARGV[i * 3])
  local name = KEYS[i]
  if win > 0 then name = name .. ':' .. math.floor(now / win) end
  names[i] = name
  local cur = tonumber(redis.call('GET', name) or '0')
  if amount > 0 and limit >= 0 and cur + amount > limit then
    local reset = 0
    if win > 0 then reset = win - (now % win) end
    return {0, i, cur, reset}
  end
  used[i] = cur
end
local out = {1}
for i = 1, #KEYS do
  local amount = tonumber(ARGV[i * 3 - 1])
  local win = tonumber(ARGV[i * 3])
  local v = used[i]
  if amount > 0 then
    v = redis.call('INCRBY', names[i], amount)
    if win > 0 then
      redis.call('EXPIRE', names[i], win * 2)
    else
      redis.call('EXPIRE', names[i], open_ttl)
    end
  end
  local reset = 0
  local window = 0
  if win > 0 then
    reset = win - (now % win)
    window = math.floor(now / win)
  end
  out[#out + 1] = v
  out[#out + 1] = reset
  out[#out + 1] = window
end
return out
";

/// KEYS: counters (with their window). ARGV: (delta, 1 if open) per key.
/// Only existing counters change; open counters never go below zero.
const ADD_LUA: &str = r"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local v = redis.call('INCRBY', KEYS[i], ARGV[i * 2 - 1])
    if v < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
return 0
";

/// KEYS: counters and flags. ARGV: per key, `w` (this minute's window), `o`
/// (open counter) or `f` (flag: milliseconds left, 0 when unset).
const OBSERVE_LUA: &str = r"
local t = redis.call('TIME')
local window = math.floor(tonumber(t[1]) / 60)
local out = {}
for i = 1, #KEYS do
  local kind = ARGV[i]
  if kind == 'f' then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then ttl = 0 end
    out[i] = ttl
  else
    local name = KEYS[i]
    if kind == 'w' then name = name .. ':' .. window end
    out[i] = tonumber(redis.call('GET', name) or '0')
  end
end
return out
";

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, limit: Option<u64>, amount: u64, windowed: bool) -> Check {
        Check {
            name: name.into(),
            limit,
            amount,
            windowed,
        }
    }

    #[test]
    fn a_reservation_takes_all_or_nothing() {
        let l = Local::default();
        let now = 6_000;
        let both = [check("a", Some(2), 1, true), check("b", Some(1), 1, true)];
        let first = l
            .reserve(&both, now)
            .map(|v| v.iter().map(|x| x.used).collect::<Vec<_>>());
        assert_eq!(first, Ok(vec![1, 1]));
        // b is full: a must not be counted either.
        let second = l.reserve(&both, now + 1);
        assert_eq!(
            second,
            Err(Refused {
                index: 1,
                used: 1,
                reset_in: 59
            })
        );
        let a_only = l.reserve(&[check("a", Some(2), 1, true)], now + 2);
        assert_eq!(a_only.map(|v| v[0].used), Ok(2));
    }

    #[test]
    fn windows_reset_each_minute_and_open_counters_do_not() {
        let l = Local::default();
        let c = [check("w", Some(1), 1, true), check("o", Some(5), 1, false)];
        assert!(l.reserve(&c, 600).is_ok());
        assert!(l.reserve(&c, 659).is_err());
        let next = l
            .reserve(&c, 660)
            .map(|v| (v[0].used, v[1].used, v[0].window));
        assert_eq!(next, Ok((1, 2, 11)));
        l.add(&[("o".into(), 0, -5)]);
        let after = l
            .reserve(&[check("o", None, 0, false)], 661)
            .map(|v| v[0].used);
        assert_eq!(after, Ok(0), "open counters stop at zero");
    }

    #[test]
    fn settling_goes_to_the_window_reserved_in() {
        let l = Local::default();
        let r = l.reserve(&[check("t", Some(100), 30, true)], 120);
        let window = r.map(|v| v[0].window).unwrap_or_default();
        l.add(&[("t".into(), window, 12)]);
        let used = l
            .reserve(&[check("t", None, 0, true)], 121)
            .map(|v| v[0].used);
        assert_eq!(used, Ok(42));
        // A settlement for a past window changes nothing now.
        l.add(&[("t".into(), window - 1, 50)]);
        let used = l
            .reserve(&[check("t", None, 0, true)], 122)
            .map(|v| v[0].used);
        assert_eq!(used, Ok(42));
    }

    #[test]
    fn observing_reads_windows_open_counters_and_flags() {
        let l = Local::default();
        let _ = l.reserve(
            &[check("w", None, 3, true), check("o", None, 2, false)],
            600,
        );
        l.flag("f", Duration::from_secs(30));
        let probes = [
            Probe::Window("w".into()),
            Probe::Open("o".into()),
            Probe::Flag("f".into()),
            Probe::Flag("none".into()),
        ];
        let v = l.observe(&probes, 610);
        assert_eq!(&v[..2], &[3, 2]);
        assert!(v[2] > 29_000 && v[2] <= 30_000, "{v:?}");
        assert_eq!(v[3], 0);
        // Next minute, the window is empty again.
        assert_eq!(l.observe(&probes[..1], 660), vec![0]);
    }

    #[test]
    fn passwords_are_kept_out_of_logs() {
        assert_eq!(
            redacted("redis://:pw@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
    }
}
