//! `tls::tickets` unit tests: sealing and opening (round trip, another key, a tampered byte, an
//! expired ticket, rotation), and real rustls resumption in memory across two shards' configs
//! that hold copies of the same keys (TLS 1.3 and 1.2).

use std::sync::Arc;
use std::time::Duration;

use rustls::server::ProducesTickets;
use rustls::HandshakeKind;

use super::{TicketKeys, Ticketer, OVERHEAD};
use crate::tls::settings::{CertPaths, ListenerTls};
use crate::tls::tests::support::{connect, resuming_client, Ca, Dir};
use crate::tls::Material;

const HOUR: Duration = Duration::from_secs(3600);
const NOW: u64 = 1_800_000_000;

fn keys() -> TicketKeys {
    TicketKeys::generate(HOUR).unwrap()
}

#[test]
fn a_sealed_ticket_opens_to_what_was_sealed() {
    let t = Ticketer::new(&keys());
    let plain = b"session state: master secret, suite, sni".to_vec();
    let ticket = t.seal_at(&plain, NOW).unwrap();
    assert_eq!(ticket.len(), plain.len() + OVERHEAD);
    assert!(
        !ticket.windows(plain.len()).any(|w| w == plain),
        "sealed, not copied"
    );
    assert_eq!(t.open_at(&ticket, NOW + 10).as_deref(), Some(&plain[..]));
    // A fresh random nonce per ticket: the same state never seals to the same bytes.
    assert_ne!(t.seal_at(&plain, NOW).unwrap(), ticket);
    let empty = t.seal_at(b"", NOW).unwrap();
    assert_eq!(t.open_at(&empty, NOW).as_deref(), Some(&b""[..]));
}

#[test]
fn another_shard_with_a_copy_of_the_keys_opens_it() {
    let k = keys();
    let (a, b) = (Ticketer::new(&k), Ticketer::new(&k));
    let ticket = a.seal_at(b"state", NOW).unwrap();
    assert_eq!(b.open_at(&ticket, NOW).as_deref(), Some(&b"state"[..]));
}

#[test]
fn a_ticket_of_other_keys_does_not_open() {
    let (a, b) = (Ticketer::new(&keys()), Ticketer::new(&keys()));
    let ticket = a.seal_at(b"state", NOW).unwrap();
    assert_eq!(b.open_at(&ticket, NOW), None, "unknown key id");
    // Through rustls' interface the same.
    assert_eq!(b.decrypt(&ticket), None);
    let own = b.encrypt(b"state").unwrap();
    assert_eq!(b.decrypt(&own).as_deref(), Some(&b"state"[..]));
    // The right id with another key's secret: the tag does not verify.
    let k = keys();
    let mut forged = k.clone();
    forged.current.secret = keys().current.secret;
    let ticket = Ticketer::new(&forged).seal_at(b"state", NOW).unwrap();
    assert_eq!(
        Ticketer::new(&k).open_at(&ticket, NOW),
        None,
        "wrong secret"
    );
}

#[test]
fn a_tampered_or_cut_ticket_does_not_open() {
    let t = Ticketer::new(&keys());
    let ticket = t.seal_at(b"session state", NOW).unwrap();
    for i in 0..ticket.len() {
        let mut bad = ticket.clone();
        bad[i] ^= 0x01;
        let at = if (8..16).contains(&i) { NOW + 1 } else { NOW };
        assert_eq!(t.open_at(&bad, at), None, "byte {i} flipped");
    }
    for n in [0, 1, OVERHEAD - 1, ticket.len() - 1] {
        assert_eq!(t.open_at(&ticket[..n], NOW), None, "cut to {n} bytes");
    }
    assert_eq!(t.open_at(&[ticket.clone(), vec![0]].concat(), NOW), None);
}

#[test]
fn a_ticket_past_its_lifetime_does_not_open() {
    // Rotated every minute: a key opens for two minutes at most.
    let t = Ticketer::new(&TicketKeys::generate(Duration::from_secs(60)).unwrap());
    let ticket = t.seal_at(b"state", NOW).unwrap();
    assert!(t.open_at(&ticket, NOW + 120).is_some(), "at the lifetime");
    assert_eq!(t.open_at(&ticket, NOW + 121), None, "one second past it");
    assert_eq!(t.lifetime(), 120, "the hint sent with each ticket");
    let week = TicketKeys::generate(Duration::from_secs(7 * 24 * 3600)).unwrap();
    assert_eq!(
        Ticketer::new(&week).lifetime(),
        7 * 24 * 3600,
        "TLS 1.3's cap"
    );
}

#[test]
fn a_rotation_keeps_the_previous_key_for_opening_only() {
    let k1 = keys();
    let t = Ticketer::new(&k1);
    let old = t.seal_at(b"one", NOW).unwrap();
    let k2 = k1.rotate(HOUR).unwrap();
    assert_eq!(k2.generation, 2);
    t.install(&k2);
    assert_eq!(t.generation(), 2);
    assert_eq!(
        t.open_at(&old, NOW).as_deref(),
        Some(&b"one"[..]),
        "previous key opens"
    );
    let new = t.seal_at(b"two", NOW).unwrap();
    assert_eq!(
        new[..8],
        k2.current.id,
        "new tickets are sealed with the new key"
    );
    t.install(&k2.rotate(HOUR).unwrap());
    assert_eq!(t.open_at(&old, NOW), None, "two rotations later: gone");
    assert_eq!(t.open_at(&new, NOW).as_deref(), Some(&b"two"[..]));
}

#[test]
fn debug_output_never_shows_a_secret() {
    let k = keys();
    let text = format!("{k:?} {:?}", Ticketer::new(&k));
    assert!(!text.contains(&format!("{:?}", k.current.secret)), "{text}");
    assert!(text.contains("generation"), "{text}");
}

/// Two shards' configs for one listener, each with its own ticketer holding `keys`.
fn two_shards(dir: &Dir, keys: &TicketKeys) -> [(Arc<rustls::ServerConfig>, Arc<Ticketer>); 2] {
    let leaf = Ca::new("ca").leaf(&["r.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let tls = ListenerTls::new(vec![CertPaths {
        cert: dir.write("c.pem", &leaf.cert),
        key: dir.write("k.pem", &leaf.key),
    }]);
    let m = Material::load(&tls).unwrap();
    [0, 1].map(|_| {
        let t = Ticketer::new(keys);
        (m.server_config(&t).unwrap(), t)
    })
}

#[test]
fn a_session_from_one_shard_resumes_on_the_other_tls13_and_tls12() {
    let dir = Dir::new("resume");
    let [(a, _), (b, _)] = two_shards(&dir, &keys());
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let client = resuming_client(&[version]);
        assert_eq!(
            connect(a.clone(), &client, "r.test"),
            Ok(HandshakeKind::Full)
        );
        assert_eq!(
            connect(b.clone(), &client, "r.test"),
            Ok(HandshakeKind::Resumed)
        );
        assert_eq!(
            connect(a.clone(), &client, "r.test"),
            Ok(HandshakeKind::Resumed)
        );
    }
}

#[test]
fn after_two_rotations_an_old_session_takes_a_full_handshake() {
    let dir = Dir::new("rotate");
    let k1 = keys();
    let [(a, ta), (b, tb)] = two_shards(&dir, &k1);
    let client = resuming_client(&[&rustls::version::TLS13]);
    assert_eq!(
        connect(a.clone(), &client, "r.test"),
        Ok(HandshakeKind::Full)
    );
    let k3 = k1.rotate(HOUR).unwrap().rotate(HOUR).unwrap();
    ta.install(&k3);
    tb.install(&k3);
    assert_eq!(
        connect(b.clone(), &client, "r.test"),
        Ok(HandshakeKind::Full)
    );
    // That full handshake gave the client a ticket under the new keys: it resumes again.
    assert_eq!(connect(a, &client, "r.test"), Ok(HandshakeKind::Resumed));
}
