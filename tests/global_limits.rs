//! Cluster-wide rate limits, the Redis side so far: the GCRA script
//! (`shardgate::coordinator::limits::gcra`) against a real `redis-server` the test starts. What is
//! charged from two "hosts" adds up on the server's clock; a paused Redis answers an error within
//! the connection's timeout instead of hanging the caller; once resumed, charging works again.

mod support;

use std::time::{Duration, Instant};

use shardgate::coordinator::limits::gcra::{charge, connect, Gcra};
use support::redis_server::RedisServer;
use support::sys::signal;

const TIMEOUT: Duration = Duration::from_millis(300);

#[test]
fn batches_from_two_hosts_add_up_in_redis() {
    let redis = RedisServer::start();
    let mut a = connect(&redis.url(), TIMEOUT).unwrap();
    let mut b = connect(&redis.url(), TIMEOUT).unwrap();
    // 10/s with a burst of 5: 6 fit at once (the burst and the one the rate allows now).
    let limit = Gcra::new(10.0, 5);
    let over = charge(
        &mut a,
        limit,
        &[("route0:10.0.0.1", 3), ("route0:10.0.0.2", 1)],
    )
    .unwrap();
    assert_eq!(over, [Duration::ZERO, Duration::ZERO]);
    // The other host's 3 for the same key still fit; its next 10 do not: about 1 s over.
    let over = charge(&mut b, limit, &[("route0:10.0.0.1", 3)]).unwrap();
    assert_eq!(over, [Duration::ZERO]);
    let over = charge(&mut b, limit, &[("route0:10.0.0.1", 10)]).unwrap();
    assert!(
        over[0] > Duration::from_millis(300) && over[0] <= Duration::from_millis(1000),
        "{over:?}"
    );
    // Host a sees the same key over its allowance; the other key is not.
    let over = charge(
        &mut a,
        limit,
        &[("route0:10.0.0.1", 1), ("route0:10.0.0.2", 1)],
    )
    .unwrap();
    assert!(over[0] > Duration::from_millis(300), "{over:?}");
    assert_eq!(over[1], Duration::ZERO);
    assert!(charge(&mut a, limit, &[]).unwrap().is_empty());
}

#[test]
fn a_paused_redis_fails_within_the_timeout_and_works_again_after() {
    let redis = RedisServer::start();
    let mut conn = connect(&redis.url(), TIMEOUT).unwrap();
    let limit = Gcra::new(100.0, 10);
    assert!(charge(&mut conn, limit, &[("k", 1)]).is_ok());
    signal(redis.pid(), libc::SIGSTOP);
    let t = Instant::now();
    let res = charge(&mut conn, limit, &[("k", 1)]);
    let took = t.elapsed();
    assert!(res.is_err(), "{res:?}");
    assert!(took < TIMEOUT * 4, "took {took:?}");
    // A new connection cannot be checked either (connect succeeds on the kernel's backlog; the
    // script's answer times out).
    let res = connect(&redis.url(), TIMEOUT).and_then(|mut c| charge(&mut c, limit, &[("k", 1)]));
    assert!(res.is_err(), "{res:?}");
    signal(redis.pid(), libc::SIGCONT);
    // Resumed: a fresh connection charges again (poll with a deadline).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res =
            connect(&redis.url(), TIMEOUT).and_then(|mut c| charge(&mut c, limit, &[("k", 1)]));
        if res.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redis did not come back: {res:?}"
        );
    }
}
