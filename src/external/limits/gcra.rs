//! One batch of admitted counts charged in Redis by one server-side Lua GCRA script, with the
//! clock from Redis `TIME` (hosts need no clock sync), answering per key how long it is over its
//! allowance. Runs on the limits thread, which owns the Redis connections (`thread`, `link`).

use std::time::Duration;

/// KEYS: one per limited key. ARGV[1]: the emission interval (µs per request), ARGV[2]: the
/// tolerance (burst × interval, µs), ARGV[3..]: the requests admitted per key since the last
/// batch. Each key's theoretical arrival time moves by cost × interval (the requests were already
/// served, so they always count); the answer per key is how many µs it stays over the allowance
/// (0: under it).
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tat = tat + tonumber(ARGV[i + 2]) * interval
  redis.call('SET', key, string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  local over = tat - now - tolerance - interval
  if over < 0 then over = 0 end
  out[i] = math.floor(over)
end
return out
"#;

/// A limit in GCRA terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// Microseconds between two requests at the steady rate.
    pub interval_us: u64,
    /// Requests allowed above the rate at once.
    pub burst: u32,
}

impl Gcra {
    pub fn new(per_second: f64, burst: u32) -> Gcra {
        Gcra {
            interval_us: (1_000_000.0 / per_second).round().max(1.0) as u64,
            burst,
        }
    }
}

/// Opens a connection whose connect, read and write each give up after `timeout`.
pub fn connect(url: &str, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let conn = redis::Client::open(url)?.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Charges `batch` (key, admitted count) under `limit` in one round trip; answers, in the same
/// order, how long each key is over its allowance (zero: not over).
pub fn charge(
    conn: &mut redis::Connection,
    limit: Gcra,
    batch: &[(&str, u64)],
) -> redis::RedisResult<Vec<Duration>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SCRIPT).arg(batch.len());
    for (key, _) in batch {
        cmd.arg(*key);
    }
    cmd.arg(limit.interval_us)
        .arg(limit.interval_us * u64::from(limit.burst));
    for (_, cost) in batch {
        cmd.arg(*cost);
    }
    let over: Vec<u64> = cmd.query(conn)?;
    Ok(over.into_iter().map(Duration::from_micros).collect())
}
