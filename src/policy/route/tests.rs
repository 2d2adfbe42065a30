//! Unit tests of `route` (table-driven, no runtime).
use super::index::{same_bytes, same_bytes_nocase};
use super::*;

fn spec(host: &str, path: PathPattern) -> MatchSpec {
    MatchSpec {
        host: HostPattern::parse(host).unwrap(),
        path,
        ..MatchSpec::default()
    }
}

fn input<'a>(method: &'a str, host: &'a str, target: &'a str) -> RouteInput<'a> {
    RouteInput {
        method: method.as_bytes(),
        host: host.as_bytes(),
        target: target.as_bytes(),
        headers: &[],
    }
}

fn find(router: &Router, host: &str, target: &str) -> Option<usize> {
    router.find(&input("GET", host, target))
}

#[test]
fn host_patterns_parse() {
    let cases = [
        ("*", Ok(HostPattern::Any)),
        (
            "API.Example.com",
            Ok(HostPattern::Exact("api.example.com".into())),
        ),
        ("example.com.", Ok(HostPattern::Exact("example.com".into()))),
        (
            "*.Example.com",
            Ok(HostPattern::Suffix(".example.com".into())),
        ),
        ("[::1]", Ok(HostPattern::Exact("[::1]".into()))),
        ("", Err("empty host")),
        ("*.", Err("empty host")),
        ("a*.example.com", Err("'*' is only allowed")),
        ("*.*.example.com", Err("'*' is only allowed")),
        ("example.com:80", Err("no port")),
        ("exa mple.com", Err("invalid character")),
    ];
    for (text, want) in cases {
        match (HostPattern::parse(text), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{text:?}: {got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn host_matching_ignores_case_and_port() {
    let cases = [
        ("api.example.com", "API.example.COM:8443", true),
        ("api.example.com", "api.example.com.", true),
        ("api.example.com", "api.example.org", false),
        ("api.example.com", "", false),
        ("*.example.com", "a.b.Example.com", true),
        ("*.example.com", "example.com", false),
        ("*.example.com", "badexample.com", false),
        ("[::1]", "[::1]:8080", true),
        ("*", "", true),
    ];
    for (pattern, host, want) in cases {
        let r = Router::new(&[spec(pattern, PathPattern::Any)]);
        assert_eq!(find(&r, host, "/") == Some(0), want, "{pattern} vs {host}");
    }
}

#[test]
fn path_patterns_reject_bad_input() {
    type Parse = fn(&str) -> Result<PathPattern, String>;
    let cases: [(Parse, &str, &str); 11] = [
        (PathPattern::exact, "users", "must start with '/'"),
        (PathPattern::prefix, "", "must start with '/'"),
        (PathPattern::exact, "/a?b=1", "query is not matched"),
        (PathPattern::prefix, "/a b", "invalid character"),
        (PathPattern::template, "/users/{}", "empty parameter"),
        (PathPattern::template, "/users/{id", "unclosed"),
        (PathPattern::template, "/users/id}", "whole segment"),
        (PathPattern::template, "/users/x{id}", "whole segment"),
        (
            PathPattern::template,
            "/a/{id}/b/{id}",
            "duplicate parameter",
        ),
        (PathPattern::template, "/a/{i{d}}", "may use only"),
        (PathPattern::template, "/a/{i.d}", "may use only"),
    ];
    for (parse, text, want) in cases {
        let err = parse(text).unwrap_err();
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let t = PathPattern::template("/users/{id}/posts/{post_id}").unwrap();
    let PathPattern::Template(t) = t else {
        unreachable!()
    };
    assert_eq!(t.names().collect::<Vec<_>>(), ["id", "post_id"]);
    assert_eq!(t.source(), "/users/{id}/posts/{post_id}");
}

#[test]
fn path_matching() {
    let exact = PathPattern::exact;
    let prefix = PathPattern::prefix;
    let template = PathPattern::template;
    let cases: [(Result<PathPattern, String>, &str, bool); 20] = [
        (exact("/health"), "/health", true),
        (exact("/health"), "/health?full=1", true),
        (exact("/health"), "/health/", false),
        (exact("/health"), "/Health", false),
        (prefix("/api"), "/api", true),
        (prefix("/api"), "/api/v1/users", true),
        (prefix("/api"), "/api?x", true),
        (prefix("/api"), "/apix", false),
        (prefix("/api/"), "/api/x", true),
        (prefix("/api/"), "/api", false),
        (prefix("/"), "/anything", true),
        (template("/users/{id}/posts"), "/users/42/posts", true),
        (
            template("/users/{id}/posts"),
            "/users/42/posts?page=2",
            true,
        ),
        (template("/users/{id}/posts"), "/users//posts", false),
        (template("/users/{id}/posts"), "/users/42/posts/", false),
        (template("/users/{id}/posts"), "/users/42", false),
        (template("/users/{id}/posts"), "/users/4/2/posts", false),
        (template("/users/{id}"), "/users/42", true),
        (template("/"), "/", true),
        (exact("/"), "http://example.com?q", true),
    ];
    for (pattern, target, want) in cases {
        let r = Router::new(&[spec("*", pattern.clone().unwrap())]);
        assert_eq!(
            find(&r, "", target) == Some(0),
            want,
            "{pattern:?} vs {target}"
        );
    }
}

#[test]
fn leads_reject_only_non_matching_paths() {
    let cases = [
        (PathPattern::Any, "", true),
        (PathPattern::prefix("/api").unwrap(), "/api", true),
        (PathPattern::prefix("/api").unwrap(), "/ap", false),
        (
            PathPattern::prefix("/static/assets").unwrap(),
            "/static/b",
            true,
        ), // only 8 bytes
        (
            PathPattern::prefix("/static/assets").unwrap(),
            "/statiX/assets",
            false,
        ),
        (PathPattern::template("/u/{id}").unwrap(), "/u/7", true),
        (PathPattern::template("/u/{id}").unwrap(), "/v/7", false),
        (PathPattern::template("/{id}").unwrap(), "/7", true),
    ];
    for (pattern, path, want) in cases {
        let lead = Lead::of(&pattern);
        let got = first8(path.as_bytes()) & lead.mask == lead.word;
        assert_eq!(got, want, "{pattern:?} {path}");
    }
}

#[test]
fn methods_and_headers() {
    let s = MatchSpec {
        methods: vec!["GET".into(), "HEAD".into()],
        headers: vec![
            ("X-Canary".into(), HeaderPattern::Exact(b"yes".to_vec())),
            ("authorization".into(), HeaderPattern::Present),
        ],
        ..MatchSpec::default()
    };
    let r = Router::new(&[s]);
    let h = |name, value| httparse::Header { name, value };
    let cases: [(&str, &[httparse::Header], bool); 6] = [
        (
            "GET",
            &[h("x-canary", b"yes"), h("Authorization", b"x")],
            true,
        ),
        (
            "HEAD",
            &[
                h("X-CANARY", b"no"),
                h("x-canary", b"yes"),
                h("authorization", b""),
            ],
            true,
        ),
        (
            "get",
            &[h("x-canary", b"yes"), h("authorization", b"x")],
            false,
        ),
        (
            "POST",
            &[h("x-canary", b"yes"), h("authorization", b"x")],
            false,
        ),
        (
            "GET",
            &[h("x-canary", b"YES"), h("authorization", b"x")],
            false,
        ),
        ("GET", &[h("x-canary", b"yes")], false),
    ];
    for (method, headers, want) in cases {
        let got = r.find(&RouteInput {
            headers,
            ..input(method, "", "/")
        });
        assert_eq!(got == Some(0), want, "{method} {headers:?}");
    }
}

#[test]
fn first_match_in_file_order_across_indexes() {
    let e = |p: &str| PathPattern::exact(p).unwrap();
    let pre = |p: &str| PathPattern::prefix(p).unwrap();
    let r = Router::new(&[
        spec("*", e("/a")),                        // 0: exact path
        spec("api.example.com", pre("/v1")),       // 1: exact host
        spec("*", pre("/v1")),                     // 2: rest
        spec("api.example.com", e("/v1/x")),       // 3: exact path after broader routes
        spec("*.example.com", PathPattern::Any),   // 4: rest
        spec("api.example.com", PathPattern::Any), // 5: exact host
        spec("*", e("/a")),                        // 6: shadowed by 0
    ]);
    let cases = [
        ("x.org", "/a", Some(0)),
        ("api.example.com", "/a", Some(0)),
        ("api.example.com", "/v1/x", Some(1)),
        ("other.org", "/v1/x", Some(2)),
        ("www.example.com", "/b", Some(4)),
        ("API.example.com:443", "/b", Some(4)),
        ("other.org", "/b", None),
    ];
    for (host, target, want) in cases {
        assert_eq!(find(&r, host, target), want, "{host} {target}");
    }
    let r = Router::new(&[
        spec("api.example.com", PathPattern::Any),
        spec("*", e("/z")),
    ]);
    assert_eq!(find(&r, "api.example.com", "/z"), Some(0));
    assert_eq!(find(&r, "b.example.com", "/z"), Some(1));
}

#[test]
fn many_exact_routes_and_duplicates() {
    let specs: Vec<MatchSpec> = (0..200)
        .map(|i| spec("*", PathPattern::exact(&format!("/r/{}", i % 100)).unwrap()))
        .collect();
    let r = Router::new(&specs);
    for i in 0..100 {
        assert_eq!(find(&r, "", &format!("/r/{i}")), Some(i));
    }
    assert_eq!(find(&r, "", "/r/100"), None);
    assert_eq!(Router::new(&[]).find(&input("GET", "h", "/")), None);
}

#[test]
fn absolute_form_target_uses_its_authority() {
    let r = Router::new(&[spec("api.example.com", PathPattern::exact("/x").unwrap())]);
    let cases = [
        ("other.org", "http://api.example.com/x", true),
        (
            "api.example.com",
            "HTTPS://user@api.example.com:8443/x?y",
            true,
        ),
        ("api.example.com", "http://other.org/x", false),
        ("api.example.com", "/x", true),
    ];
    for (host, target, want) in cases {
        assert_eq!(find(&r, host, target) == Some(0), want, "{host} {target}");
    }
}

#[test]
fn hand_built_patterns_are_normalised() {
    let r = Router::new(&[MatchSpec {
        host: HostPattern::Suffix("*.Example.com".into()),
        headers: vec![("X-A".into(), HeaderPattern::Present)],
        ..MatchSpec::default()
    }]);
    let headers = [httparse::Header {
        name: "x-a",
        value: b"",
    }];
    let got = r.find(&RouteInput {
        headers: &headers,
        ..input("GET", "w.example.com", "/")
    });
    assert_eq!(got, Some(0));
}

#[test]
fn strip_prefix_len_covers_the_prefix() {
    let pre = |p: &str| PathPattern::prefix(p).unwrap();
    let cases = [
        (pre("/api"), "/api/users?x", Some(4)),
        (pre("/api"), "/api", Some(4)),
        (pre("/api/"), "/api/users", Some(5)),
        (pre("/api"), "/apix", None),
        (pre("/api"), "http://h/api/u", Some(12)),
        (PathPattern::exact("/api").unwrap(), "/api", None),
        (PathPattern::Any, "/api", None),
    ];
    for (pattern, target, want) in cases {
        assert_eq!(
            strip_prefix_len(&pattern, target.as_bytes()),
            want,
            "{pattern:?} {target}"
        );
    }
}

#[test]
fn query_start_finds_the_first_question_mark_or_hash() {
    let long =
        "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for len in 0..long.len() {
        for mark in ["?", "#", "??", "#?", "?#"] {
            let t = format!("{}{mark}x?y", &long[..len]);
            assert_eq!(query_start(t.as_bytes(), 0), len, "{t}");
            assert_eq!(query_start(&t.as_bytes()[..len], 0), len, "{t}");
        }
    }
    assert_eq!(query_start(b"/a?b", 5), 4);
}

#[test]
fn same_bytes_is_equality_with_and_without_case() {
    let words = [
        "",
        "/",
        "/a",
        "/ab",
        "/abc",
        "/abcd",
        "/abcde",
        "/abcdef",
        "/abcdefg",
        "/abcdefgh",
        "/abcdefghijklmno",
        "/abcdefghijklmnop",
        "/abcdefghijklmnopqrstuvwxyz",
    ];
    for a in words {
        for b in words {
            assert_eq!(same_bytes(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
            let upper = b.to_ascii_uppercase();
            let nocase = same_bytes_nocase(a.as_bytes(), upper.as_bytes());
            assert_eq!(nocase, a.eq_ignore_ascii_case(&upper), "{a} {upper}");
            let mut c = a.as_bytes().to_vec();
            if let Some(last) = c.last_mut() {
                *last ^= 1;
                assert!(!same_bytes(a.as_bytes(), &c), "{a}");
                c[0] ^= 2;
                assert!(!same_bytes(&c, a.as_bytes()), "{a}");
            }
        }
    }
    let unlike: [(&[u8], &[u8]); 6] = [
        (b"GET", b"gEU"),
        (b"/a/b/c", b"/a/c/c"),
        (b"@[\\]^", b"`{|}~"),
        (b"@@@@[[[[]]]]", b"````{{{{}}}}"),
        (
            b"\xc1\xc1\xc1\xc1\xc1\xc1\xc1\xc1",
            b"\xe1\xe1\xe1\xe1\xe1\xe1\xe1\xe1",
        ),
        (b"\xc1", b"\xe1"),
    ];
    for (a, b) in unlike {
        assert!(!same_bytes_nocase(a, b), "{a:?} {b:?}");
    }
}

#[test]
fn odd_targets_do_not_panic() {
    let r = Router::new(&[
        spec("*.a", PathPattern::template("/{x}").unwrap()),
        spec("b", PathPattern::prefix("/").unwrap()),
    ]);
    for target in [
        "",
        "*",
        "?",
        "http://",
        "https://@",
        "http://[::1",
        "//",
        "/?#",
    ] {
        for host in ["", ":", "[", "[::1]:", "a.", ".a"] {
            let _ = find(&r, host, target);
            let _ = strip_prefix_len(&PathPattern::prefix("/").unwrap(), target.as_bytes());
        }
    }
}
