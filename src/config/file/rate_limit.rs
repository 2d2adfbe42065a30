//! A route's `rate_limit = { rate, burst, key, scope, redis, sync, on_error }` table: the raw
//! spanned form and its check into a `RateLimit`; errors name `routes[N].rate_limit.FIELD` and
//! the line. Main thread, when a config file is read (startup, `--check`, reload).

use serde::Deserialize;
use toml::Spanned;

use super::entry::{err, positive, EntryError, S};
use crate::config::{GlobalLimit, OnError, RateKey, RateLimit, RedisUrl, Scope, DEFAULT_SYNC};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    rate: Spanned<String>,
    burst: Option<u32>,
    key: S<String>,
    scope: S<String>,
    redis: S<String>,
    sync: S<String>,
    on_error: S<String>,
}

/// Checks one route's rate limit; `f` names a field of this route (`routes[2].` + key).
pub fn check(r: RawRateLimit, f: impl Fn(&str) -> String) -> Result<RateLimit, EntryError> {
    let rate = r
        .rate
        .get_ref()
        .parse()
        .map_err(|m| (r.rate.span(), f("rate_limit.rate"), m))?;
    let key = match r.key {
        None => RateKey::ClientIp,
        Some(k) => RateKey::parse(k.get_ref()).map_err(|m| (k.span(), f("rate_limit.key"), m))?,
    };
    let burst = r.burst.unwrap_or(0);
    let scope = match &r.scope {
        None => Scope::Local,
        Some(s) => Scope::parse(s.get_ref()).map_err(|m| (s.span(), f("rate_limit.scope"), m))?,
    };
    let global = match scope {
        Scope::Local => {
            let shared = [
                (&r.redis, "redis"),
                (&r.sync, "sync"),
                (&r.on_error, "on_error"),
            ];
            if let Some((Some(v), name)) = shared.into_iter().find(|(v, _)| v.is_some()) {
                return err(
                    v.span(),
                    f(&format!("rate_limit.{name}")),
                    "only with scope = \"global\"",
                );
            }
            None
        }
        Scope::Global => Some(global(r.redis, r.sync, r.on_error, r.scope, &f)?),
    };
    Ok(RateLimit {
        rate,
        burst,
        key,
        global,
    })
}

fn global(
    redis: S<String>,
    sync: S<String>,
    on_error: S<String>,
    scope: S<String>,
    f: &impl Fn(&str) -> String,
) -> Result<GlobalLimit, EntryError> {
    let redis = match redis {
        Some(u) => {
            RedisUrl::parse(u.get_ref()).map_err(|m| (u.span(), f("rate_limit.redis"), m))?
        }
        None => {
            let span = scope.map(|s| s.span()).unwrap_or(0..0);
            return err(
                span,
                f("rate_limit.redis"),
                "scope = \"global\" needs redis = URL",
            );
        }
    };
    let sync = positive(sync, || f("rate_limit.sync"))?.unwrap_or(DEFAULT_SYNC);
    let on_error = match on_error {
        None => OnError::Allow,
        Some(o) => {
            OnError::parse(o.get_ref()).map_err(|m| (o.span(), f("rate_limit.on_error"), m))?
        }
    };
    Ok(GlobalLimit {
        redis,
        sync,
        on_error,
    })
}
