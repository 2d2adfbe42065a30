//! Unit tests of `breaker`: state walks with time passed in (no runtime, no clock).

use super::*;

const S: Duration = Duration::from_secs(1);

fn breaker() -> Breaker {
    Breaker::new(BreakerConfig {
        failures: 3,
        open_timeout: 10 * S,
        max_open_timeout: 35 * S,
        half_open_requests: 1,
        successes: 2,
    })
}

/// Reports a request admitted in the breaker's current state (so its ticket is the current
/// one): a success, a failure, no verdict.
fn ok(b: &Breaker, t: Instant) -> Option<Transition> {
    b.on_success_for(b.ticket(), t)
}

fn fail(b: &Breaker, t: Instant) -> Option<Transition> {
    b.on_failure_for(b.ticket(), t)
}

fn gone(b: &Breaker) {
    b.on_abandoned_for(b.ticket())
}

/// Drives a fresh breaker from Closed to Open at `t`.
fn opened(b: &Breaker, t: Instant) {
    for _ in 0..2 {
        assert_eq!(fail(b, t), None);
    }
    assert_eq!(fail(b, t), Some(Transition::Opened));
}

#[test]
fn a_late_result_from_before_half_open_is_not_a_probe() {
    let b = breaker();
    let t0 = Instant::now();
    assert!(b.admit(t0).0);
    let early = b.ticket();
    opened(&b, t0);
    let t1 = t0 + 10 * S;
    assert_eq!(b.admit(t1), (true, Some(Transition::HalfOpened)));
    let probe = b.ticket();
    // The request admitted while Closed ends now: it neither frees the probe slot nor counts.
    assert_eq!(b.on_success_for(early, t1), None);
    assert_eq!(b.on_failure_for(early, t1), None);
    b.on_abandoned_for(early);
    assert!(!b.usable(t1), "the one probe slot is still taken");
    assert_eq!(b.state(), State::HalfOpen);
    // The probe's own results do count.
    assert_eq!(b.on_success_for(probe, t1), None);
    assert!(b.admit(t1).0);
    assert_eq!(b.on_success_for(b.ticket(), t1), Some(Transition::Closed));
}

#[test]
fn defaults() {
    let c = BreakerConfig::default();
    assert_eq!((c.failures, c.half_open_requests, c.successes), (5, 1, 2));
    assert_eq!((c.open_timeout, c.max_open_timeout), (30 * S, 300 * S));
}

#[test]
fn opens_only_after_consecutive_failures() {
    let (b, t) = (breaker(), Instant::now());
    fail(&b, t);
    fail(&b, t);
    ok(&b, t);
    assert_eq!(fail(&b, t), None, "a success resets the run");
    assert_eq!(fail(&b, t), None);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(fail(&b, t), Some(Transition::Opened));
    assert_eq!(b.state(), State::Open);
    assert_eq!(fail(&b, t), None, "late failures change nothing");
}

#[test]
fn open_refuses_until_timeout_then_half_opens_on_admit() {
    let (b, t) = (breaker(), Instant::now());
    opened(&b, t);
    let cases = [(Duration::ZERO, false), (9 * S, false), (10 * S, true)];
    for (after, want) in cases {
        assert_eq!(b.usable(t + after), want, "{after:?}");
        assert_eq!(b.state(), State::Open, "usable has no side effect");
    }
    assert_eq!(b.admit(t + 5 * S), (false, None));
    assert_eq!(b.admit(t + 10 * S), (true, Some(Transition::HalfOpened)));
    assert_eq!(b.state(), State::HalfOpen);
}

#[test]
fn state_at_reports_an_expired_open_as_half_open_without_changing_it() {
    let (b, t) = (breaker(), Instant::now());
    assert_eq!(b.state_at(t), State::Closed);
    opened(&b, t);
    assert_eq!(b.state_at(t + 9 * S), State::Open);
    assert_eq!(b.state_at(t + 10 * S), State::HalfOpen);
    assert_eq!(b.state(), State::Open, "state_at has no side effect");
    assert_eq!(b.admit(t + 10 * S), (true, Some(Transition::HalfOpened)));
    assert_eq!(b.state_at(t + 10 * S), State::HalfOpen);
}

#[test]
fn half_open_limits_probes_in_flight() {
    let (b, t) = (breaker(), Instant::now());
    opened(&b, t);
    let t = t + 10 * S;
    b.admit(t);
    assert!(!b.usable(t));
    assert_eq!(b.admit(t), (false, None));
    gone(&b);
    assert!(b.usable(t), "an abandoned probe frees its slot");
    assert_eq!(b.admit(t), (true, None));
    assert_eq!(ok(&b, t), None);
    assert_eq!(b.admit(t), (true, None), "a reported probe frees its slot");
}

#[test]
fn half_open_closes_after_successes() {
    let (b, t) = (breaker(), Instant::now());
    opened(&b, t);
    let t = t + 10 * S;
    b.admit(t);
    assert_eq!(ok(&b, t), None);
    b.admit(t);
    assert_eq!(ok(&b, t), Some(Transition::Closed));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.admit(t), (true, None));
}

#[test]
fn failed_probe_reopens_with_doubled_capped_timeout_and_closing_resets_it() {
    let (b, t0) = (breaker(), Instant::now());
    opened(&b, t0);
    let mut t = t0 + 10 * S;
    for want in [20 * S, 35 * S, 35 * S] {
        assert_eq!(b.admit(t).1, Some(Transition::HalfOpened));
        assert_eq!(fail(&b, t), Some(Transition::Opened), "one failure reopens");
        assert!(!b.usable(t + want - Duration::from_millis(1)), "{want:?}");
        assert!(b.usable(t + want), "{want:?}");
        t += want;
    }
    b.admit(t);
    ok(&b, t);
    b.admit(t);
    assert_eq!(ok(&b, t), Some(Transition::Closed));
    opened(&b, t);
    assert!(b.usable(t + 10 * S), "backoff reset to the open timeout");
}

#[test]
fn lost_probe_is_presumed_failed_after_the_timeout() {
    let (b, t) = (breaker(), Instant::now());
    opened(&b, t);
    b.admit(t + 10 * S);
    assert_eq!(b.admit(t + 19 * S), (false, None));
    assert!(b.usable(t + 20 * S));
    assert_eq!(b.admit(t + 20 * S), (true, None));
}

#[test]
fn force_close_closes_as_fresh_and_keeps_a_closed_run() {
    let (b, t) = (breaker(), Instant::now());
    assert_eq!(b.force_close(), None);
    opened(&b, t);
    assert_eq!(b.force_close(), Some(Transition::Closed));
    assert_eq!(b.state(), State::Closed);
    assert!(b.usable(t));
    // From HalfOpen too, and a failed probe's doubled timeout goes back to the open timeout.
    opened(&b, t);
    let t = t + 10 * S;
    assert_eq!(b.admit(t).1, Some(Transition::HalfOpened));
    assert_eq!(fail(&b, t), Some(Transition::Opened));
    assert_eq!(b.admit(t + 20 * S).1, Some(Transition::HalfOpened));
    assert_eq!(b.force_close(), Some(Transition::Closed));
    opened(&b, t);
    assert!(b.usable(t + 10 * S), "backoff reset to the open timeout");
    assert_eq!(b.force_close(), Some(Transition::Closed));
    b.admit(t);
    fail(&b, t);
    fail(&b, t);
    assert_eq!(b.force_close(), None);
    assert_eq!(
        fail(&b, t),
        Some(Transition::Opened),
        "force_close of Closed keeps the run"
    );
}

#[test]
fn odd_configs_do_not_wedge() {
    let b = Breaker::new(BreakerConfig {
        failures: 0,
        open_timeout: Duration::MAX,
        max_open_timeout: Duration::ZERO,
        half_open_requests: 0,
        successes: 0,
    });
    let t = Instant::now();
    assert_eq!(fail(&b, t), Some(Transition::Opened));
    assert!(
        !b.usable(t + 1000 * S),
        "an unrepresentable deadline never passes"
    );
    assert_eq!(b.force_close(), Some(Transition::Closed));
    let b = Breaker::new(BreakerConfig {
        failures: 1,
        successes: 0,
        half_open_requests: 0,
        ..BreakerConfig::default()
    });
    fail(&b, t);
    assert_eq!(b.admit(t + 30 * S), (true, Some(Transition::HalfOpened)));
    assert_eq!(ok(&b, t), Some(Transition::Closed));
}
