//! Config-file unit tests: `parse` then `config::check`, each error read back as a located
//! `ConfigError` (file, line, key path).

use super::*;
use crate::config::{Origin, Timeouts};

/// Parsed and checked; a check error is turned back into a located `ConfigError`.
pub(super) fn full(text: &str) -> Result<Config, ConfigError> {
    let mut c = parse("t.toml", text)?;
    match super::super::check(&mut c) {
        Ok(()) => Ok(c),
        Err(e) => Err(match e.origin.map(|o| *o) {
            Some(Origin::File {
                file,
                line,
                col,
                key,
            }) => ConfigError {
                file,
                line,
                col,
                field: key,
                message: e.message,
            },
            _ => ConfigError {
                file: "t.toml".into(),
                line: 0,
                col: 0,
                field: e.field,
                message: e.message,
            },
        }),
    }
}

pub(super) fn err(text: &str) -> ConfigError {
    full(text).expect_err("should be rejected")
}

#[test]
fn minimal_file() {
    let c = full("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n").unwrap();
    assert_eq!(c.clusters[0].endpoints[0].addr.port(), 9);
    assert_eq!(c.timeouts, Timeouts::default());
}

#[test]
fn bad_duration_names_line_and_field() {
    let e = err(
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[timeouts]\nconnect = \"3x\"\n",
    );
    assert_eq!((e.line, e.field.as_str()), (4, "timeouts.connect"));
    assert!(e.message.contains("invalid duration"), "{e}");
}

#[test]
fn uring_setup_modes_and_a_bad_one() {
    let base = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[shards]\n";
    for (text, want) in [
        ("plain", super::super::UringSetup::Plain),
        ("coop-taskrun", super::super::UringSetup::CoopTaskrun),
        ("defer-taskrun", super::super::UringSetup::DeferTaskrun),
        ("sqpoll:20", super::super::UringSetup::Sqpoll(20)),
    ] {
        let c = full(&format!("{base}uring_setup = \"{text}\"\n")).unwrap();
        assert_eq!(c.shards.uring_setup, want);
        assert_eq!(want.to_string(), text);
    }
    let e = err(&format!("{base}uring_setup = \"sqpoll\"\n"));
    assert_eq!((e.line, e.field.as_str()), (4, "shards.uring_setup"));
    assert!(e.message.contains("defer-taskrun, coop-taskrun"), "{e}");
}

#[test]
fn idle_buffer_time_and_lean_above() {
    let base = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[shards]\n";
    let c = full(&format!(
        "{base}idle_buffer_time = \"0\"\nlean_above = 10\n"
    ))
    .unwrap();
    assert_eq!(c.shards.idle_buffer_time, std::time::Duration::ZERO);
    assert_eq!(c.shards.lean_above, 10);
    let c = full(base).unwrap();
    assert_eq!(c.shards.idle_buffer_time, std::time::Duration::from_secs(1));
    assert_eq!(c.shards.lean_above, 256);
    let e = err(&format!("{base}idle_buffer_time = \"soon\"\n"));
    assert_eq!((e.line, e.field.as_str()), (4, "shards.idle_buffer_time"));
}

#[test]
fn unknown_field() {
    let e = err("listen = [\"127.0.0.1:0\"]\n[pool]\nmax_idel = 3\n");
    assert_eq!((e.line, e.field.as_str()), (3, "pool.max_idel"));
    assert!(e.message.contains("unknown field"), "{e}");
}

/// Unknown keys and invalid values name a key the same way: `routes[1].x`, `listen[1]`.
#[test]
fn one_key_path_style() {
    let cases: &[(&str, &str, usize)] = &[
        ("[[routes]]\ncluster = \"a\"\n[[routes]]\ncluster = \"b\"\nnmae = \"x\"\n", "routes[1].nmae", 16),
        ("[[routes]]\ncluster = \"a\"\nrate_limit = { rate = \"1/s\", burt = 2 }\n", "routes[0].rate_limit.burt", 14),
        ("[[routes]]\ncluster = \"a\"\nmax_body = \"big\"\n", "routes[0].max_body", 14),
        ("[[clusters]]\nname = \"c\"\nendpoints = [\"127.0.0.1:5\"]\n[clusters.breaker]\nfailurs = 1\n", "clusters[2].breaker.failurs", 16),
    ];
    for (tail, field, line) in cases {
        let e = err(&format!("{TWO_CLUSTERS}{tail}"));
        assert_eq!((e.field.as_str(), e.line), (*field, *line), "{tail}: {e}");
    }
    let e = err("listen = [\"127.0.0.1:0\",\n  \"nope\"]\nupstreams = [\"127.0.0.1:9\"]\n");
    assert_eq!((e.field.as_str(), e.line), ("listen[1]", 2), "{e}");
    let e = err("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\", 7]\n");
    assert_eq!((e.field.as_str(), e.line), ("upstreams[1]", 2), "{e}");
}

/// Start-up checks on file values point at the value that cannot be had.
#[test]
fn duplicate_listen_and_admin_clash_name_the_second_entry() {
    let e = err("listen = [\"127.0.0.1:7001\"]\nupstreams = [\"127.0.0.1:9\"]\n[[listeners]]\naddr = \"0.0.0.0:7001\"\n");
    assert_eq!((e.field.as_str(), e.line), ("listeners[0].addr", 4), "{e}");
    assert!(
        e.message
            .contains("overlaps 127.0.0.1:7001 (also listen[0] at t.toml:1:11)"),
        "{e}"
    );
    let e = err("listen = [\"127.0.0.1:7001\"]\nupstreams = [\"127.0.0.1:9\"]\nadmin = \"127.0.0.1:7001\"\n");
    assert_eq!((e.field.as_str(), e.line), ("admin", 3), "{e}");
    let e = err("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\naccess_log = \"/nonexistent-dir/a.log\"\n");
    assert_eq!((e.field.as_str(), e.line), ("access_log", 3), "{e}");
    assert!(e.message.contains("/nonexistent-dir does not exist"), "{e}");
}

#[test]
fn wrong_type() {
    let e = err("[shards]\ncount = \"two\"\n");
    assert_eq!((e.line, e.field.as_str()), (2, "shards.count"));
}

#[test]
fn bad_listen_and_limits() {
    let e = err("listen = [\"nope\"]\nupstreams = [\"127.0.0.1:9\"]\n");
    assert_eq!((e.line, e.field.as_str()), (1, "listen[0]"));
    let e = err(
        "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n[shards]\nbuffer_size = 10\n",
    );
    assert_eq!((e.line, e.field.as_str()), (4, "shards.buffer_size"));
}

#[test]
fn syntax_error_has_position() {
    let e = err("listen = [\n");
    assert!(e.line >= 1, "{e}");
}

pub(super) const TWO_CLUSTERS: &str = "listen = [\"127.0.0.1:0\"]\n\
[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\", \"127.0.0.1:2 weight=3\"]\nlb = \"weighted\"\n\
[[clusters]]\nname = \"b\"\nendpoints = [\"127.0.0.1:3\"]\n[clusters.health_check]\ncheck = \"http:/hc\"\nexpect = \"2xx\"\n";

#[test]
fn clusters_and_routes() {
    let text = format!("{TWO_CLUSTERS}[[routes]]\nname = \"api\"\npath_prefix = \"/api/\"\ncluster = \"b\"\nrewrite_prefix = \"/\"\nrate_limit = {{ rate = \"10/s\", burst = 5 }}\n[[routes]]\npath = \"/hz\"\ndirect = {{ status = 200, body = \"ok\" }}\n[[routes]]\ncluster = \"a\"\n");
    let c = full(&text).unwrap();
    assert_eq!(c.clusters.len(), 2);
    assert_eq!(c.clusters[0].endpoints[1].weight, 3);
    assert!(matches!(
        c.clusters[1].health.as_ref().map(|h| &h.kind),
        Some(super::super::ProbeKind::Http {
            expect: (200, 299),
            ..
        })
    ));
    assert_eq!(c.routes.len(), 3);
    assert_eq!(c.routes[0].cluster, Some(1));
    assert_eq!(c.routes[1].cluster, None);
    assert!(c.routes[1].direct.is_some());
    assert_eq!(c.routes[2].name, "route2");
}

#[test]
fn route_errors_name_entry_and_line() {
    let cases: &[(&str, &str, usize)] = &[
        ("[[routes]]\ncluster = \"nope\"\n", "routes[0].cluster", 13),
        (
            "[[routes]]\ncluster = \"a\"\npath = \"x\"\n",
            "routes[0].path",
            14,
        ),
        (
            "[[routes]]\ncluster = \"a\"\npath = \"/x\"\npath_prefix = \"/y\"\n",
            "routes[0].path_prefix",
            15,
        ),
        (
            "[[routes]]\ncluster = \"a\"\nrate_limit = { rate = \"fast\" }\n",
            "routes[0].rate_limit.rate",
            14,
        ),
        (
            "[[routes]]\ncluster = \"a\"\nretry = { on = [\"500\"] }\n",
            "routes[0].retry.on",
            14,
        ),
        (
            "[[routes]]\ncluster = \"a\"\nrequest_headers_add = { \"content-length\" = \"1\" }\n",
            "routes[0].request_headers_add",
            14,
        ),
        ("[[routes]]\npath = \"/x\"\n", "routes[0].cluster", 12),
    ];
    for (tail, field, line) in cases {
        let e = err(&format!("{TWO_CLUSTERS}{tail}"));
        assert_eq!((e.field.as_str(), e.line), (*field, *line), "{tail}: {e}");
    }
}

#[test]
fn cluster_errors_name_entry() {
    let e = err("listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\nlb = \"fastest\"\n");
    assert_eq!((e.field.as_str(), e.line), ("clusters[0].lb", 5), "{e}");
    let e = err("listen = [\"127.0.0.1:0\"]\n[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1 weight=0\"]\n");
    assert_eq!(e.field, "clusters[0].endpoints", "{e}");
    let e = err(&format!(
        "{TWO_CLUSTERS}[[clusters]]\nname = \"a\"\nendpoints = [\"127.0.0.1:1\"]\n"
    ));
    assert_eq!(e.field, "clusters[2].name", "{e}");
}

#[test]
fn operations_settings() {
    let c = full("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\nadmin = \"off\"\naccess_log = \"stdout\"\nsteer = \"client-ip\"\ntrusted_proxies = [\"10.0.0.0/8\"]\ntrace = true\n").unwrap();
    assert_eq!(c.admin, None);
    assert_eq!(c.access_log, super::super::AccessLogTarget::Stdout);
    assert!(c.steer_client_ip && c.trace_start);
    assert_eq!(c.trusted_proxies.len(), 1);
    let e = err("listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\ntrusted_proxies = [\"10.0.0.1/8\"]\n");
    assert_eq!((e.field.as_str(), e.line), ("trusted_proxies[0]", 3), "{e}");
}

#[test]
fn head_rules_settings() {
    let base = "listen = [\"127.0.0.1:0\"]\nupstreams = [\"127.0.0.1:9\"]\n";
    let c = full(base).unwrap();
    assert_eq!(c.head_rules, crate::http::HeadRules::default());
    let c = full(&format!(
        "{base}strict_http = true\nunderscores_in_headers = \"reject\"\n"
    ))
    .unwrap();
    assert!(c.head_rules.strict);
    assert_eq!(c.head_rules.underscores, crate::http::Underscores::Reject);
    let e = err(&format!("{base}underscores_in_headers = \"allow\"\n"));
    assert_eq!((e.line, e.field.as_str()), (3, "underscores_in_headers"));
    assert!(e.message.contains("drop, pass or reject"), "{e}");
    let e = err(&format!("{base}strict_http = \"yes\"\n"));
    assert_eq!((e.line, e.field.as_str()), (3, "strict_http"), "{e}");
}

#[test]
fn zero_or_huge_values_that_would_break_the_proxy_are_rejected() {
    let cases: &[(&str, &str)] = &[
        ("[[clusters]]\nname = \"z\"\nendpoints = [\"127.0.0.1:4\"]\nmax_pending = 0\n", "clusters[2].max_pending"),
        ("[[clusters]]\nname = \"z\"\nendpoints = [\"127.0.0.1:4\"]\nresolve_interval = \"0\"\n", "clusters[2].resolve_interval"),
        ("[[clusters]]\nname = \"z\"\nendpoints = [\"127.0.0.1:4\"]\n[clusters.health_check]\ncheck = \"tcp\"\ninterval = \"0\"\n", "clusters[2].health_check.interval"),
        ("[[routes]]\ncluster = \"a\"\ntimeouts = { upstream = \"0\" }\n", "routes[0].timeouts.upstream"),
        ("[[routes]]\ncluster = \"a\"\ntimeouts = { body = \"200h\" }\n", "routes[0].timeouts.body"),
    ];
    for (tail, field) in cases {
        let e = err(&format!("{TWO_CLUSTERS}{tail}"));
        assert_eq!(e.field, *field, "{tail}: {e}");
    }
}
