//! The global rate limit family, from the coordinator's record of the limits thread's news (not
//! shard snapshots): `shardgate_global_limit_errors_total{route}`, the syncs of a route's
//! admitted counts that did not reach Redis (down, slow or refusing); written after the shard
//! families at a scrape, and only when some route's limit is `scope = "global"`. Coordinator
//! thread.

use super::render::Exposition;

/// Appends the family to `out`: one sample per global route (nothing when there is none).
pub fn render_global_limits(errors: &[(String, u64)], out: &mut String) {
    if errors.is_empty() {
        return;
    }
    let mut w = Exposition(out);
    let name = "shardgate_global_limit_errors_total";
    w.family(
        name,
        "counter",
        "Syncs of a global rate limit that failed (Redis down, slow or refusing), by route.",
    );
    for (route, n) in errors {
        w.sample(name, &[("route", route)], None, n);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_sample_per_global_route_and_nothing_without_one() {
        let mut out = String::new();
        super::render_global_limits(&[("api".into(), 3), ("web".into(), 0)], &mut out);
        assert!(out.contains("# TYPE shardgate_global_limit_errors_total counter\n"));
        assert!(out.contains("shardgate_global_limit_errors_total{route=\"api\"} 3\n"));
        assert!(out.contains("shardgate_global_limit_errors_total{route=\"web\"} 0\n"));
        let mut none = String::new();
        super::render_global_limits(&[], &mut none);
        assert!(none.is_empty());
    }
}
