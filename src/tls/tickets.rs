//! Session tickets that resume on any shard: the coordinator makes the keys (`TicketKeys`: random
//! from the OS, rotated every `tls_ticket_rotation`, the key before the current one still opens
//! tickets) and hands a copy to every shard; each shard seals and opens tickets with its own
//! `Ticketer` (rustls' `ProducesTickets`), shared by the rustls configs of that shard's listeners
//! only. A ticket is `key id (8) | issued at (8, unix seconds) | nonce (12) | AES-256-GCM
//! ciphertext and tag (16)`; the id and the issue time are authenticated. A key seals for one
//! rotation period and opens for one more, so a ticket resumes for one to two periods after it
//! was sealed; its lifetime (the hint clients get, and a hard limit here) is two periods, as
//! rustls' own rotating ticketer does. `TicketKeys` are built on the coordinator; a `Ticketer` is
//! used on its shard's thread only (rustls asks for `Sync`, so its keys sit behind a lock no other
//! core takes).

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;

use super::TlsError;

const ID_LEN: usize = 8;
const TIME_LEN: usize = 8;
const SECRET_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Bytes a ticket adds to the session state it carries.
const OVERHEAD: usize = ID_LEN + TIME_LEN + NONCE_LEN + TAG_LEN;

/// The longest ticket lifetime TLS 1.3 allows (RFC 8446 §4.6.1): 7 days.
pub const MAX_TICKET_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// One ticket key: a random id (the first bytes of every ticket it seals) and its secret.
#[derive(Clone, PartialEq, Eq)]
struct TicketKey {
    id: [u8; ID_LEN],
    secret: [u8; SECRET_LEN],
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TicketKey({:02x?})", self.id)
    }
}

impl TicketKey {
    fn random(rng: &SystemRandom) -> Result<TicketKey, TlsError> {
        let mut key = TicketKey {
            id: [0; ID_LEN],
            secret: [0; SECRET_LEN],
        };
        let failed = |_| TlsError::Config("no random bytes from the OS for ticket keys".into());
        rng.fill(&mut key.id).map_err(failed)?;
        rng.fill(&mut key.secret).map_err(failed)?;
        Ok(key)
    }
}

/// What the coordinator hands every shard: the key that seals new tickets, the one before it
/// (still opens tickets it sealed), how long a ticket lives, and which rotation this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketKeys {
    /// 1 for the first keys, one more at each rotation.
    pub generation: u64,
    current: TicketKey,
    previous: Option<TicketKey>,
    /// Two rotation periods, at most 7 days.
    lifetime: Duration,
}

/// A ticket's lifetime for keys rotated every `rotation`: two periods, at most 7 days.
fn lifetime_of(rotation: Duration) -> Duration {
    rotation.saturating_mul(2).min(MAX_TICKET_LIFETIME)
}

impl TicketKeys {
    /// Fresh keys (nothing before them), to be rotated every `rotation`.
    pub fn generate(rotation: Duration) -> Result<TicketKeys, TlsError> {
        Ok(TicketKeys {
            generation: 1,
            current: TicketKey::random(&SystemRandom::new())?,
            previous: None,
            lifetime: lifetime_of(rotation),
        })
    }

    /// The next generation: a new current key, the current one kept to open what it sealed,
    /// the one before dropped (its tickets stop resuming). `rotation` may change with a reload.
    pub fn rotate(&self, rotation: Duration) -> Result<TicketKeys, TlsError> {
        Ok(TicketKeys {
            generation: self.generation + 1,
            current: TicketKey::random(&SystemRandom::new())?,
            previous: Some(self.current.clone()),
            lifetime: lifetime_of(rotation),
        })
    }
}

/// A key ready to seal and open (the AEAD state is built once per rotation, not per ticket).
struct Sealer {
    id: [u8; ID_LEN],
    key: RandomizedNonceKey,
}

impl Sealer {
    fn new(k: &TicketKey) -> Sealer {
        Sealer {
            id: k.id,
            // 32 bytes is AES-256's key length: this cannot fail.
            key: RandomizedNonceKey::new(&AES_256_GCM, &k.secret).expect("a 32-byte key"),
        }
    }
}

/// The keys one shard holds now.
struct Held {
    generation: u64,
    lifetime_secs: u64,
    current: Sealer,
    previous: Option<Sealer>,
}

impl Held {
    fn of(keys: &TicketKeys) -> Held {
        Held {
            generation: keys.generation,
            lifetime_secs: keys.lifetime.as_secs().max(1),
            current: Sealer::new(&keys.current),
            previous: keys.previous.as_ref().map(Sealer::new),
        }
    }
}

/// One shard's ticket sealer and opener (rustls calls it during handshakes on that shard). A
/// rotation replaces its keys in place: the rustls configs, certificates and session caches
/// that use it stay as they are.
pub struct Ticketer {
    held: RwLock<Held>,
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ticketer(generation {})", self.generation())
    }
}

impl Ticketer {
    pub fn new(keys: &TicketKeys) -> Arc<Ticketer> {
        Arc::new(Ticketer {
            held: RwLock::new(Held::of(keys)),
        })
    }

    /// Takes the keys of a rotation (a copy the coordinator sent).
    pub fn install(&self, keys: &TicketKeys) {
        let held = Held::of(keys);
        *self.held.write().unwrap_or_else(|p| p.into_inner()) = held;
    }

    /// The generation of the keys held now.
    pub fn generation(&self) -> u64 {
        self.held().generation
    }

    fn held(&self) -> std::sync::RwLockReadGuard<'_, Held> {
        self.held.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals `plain` with the current key, stamped as issued at `now` (unix seconds): one
    /// allocation, the ticket itself, sealed in place.
    fn seal_at(&self, plain: &[u8], now: u64) -> Option<Vec<u8>> {
        let held = self.held();
        let mut head = [0u8; ID_LEN + TIME_LEN];
        head[..ID_LEN].copy_from_slice(&held.current.id);
        head[ID_LEN..].copy_from_slice(&now.to_be_bytes());
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.extend_from_slice(&head);
        out.extend_from_slice(&[0; NONCE_LEN]);
        out.extend_from_slice(plain);
        let body = ID_LEN + TIME_LEN + NONCE_LEN;
        let (nonce, tag) = held
            .current
            .key
            .seal_in_place_separate_tag(Aad::from(head), &mut out[body..])
            .ok()?;
        out[ID_LEN + TIME_LEN..body].copy_from_slice(nonce.as_ref());
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    /// Opens a ticket sealed by the current or the previous key and not older than the lifetime
    /// (two periods) at `now`; anything else (another key, tampered, expired, too short) is `None`.
    fn open_at(&self, ticket: &[u8], now: u64) -> Option<Vec<u8>> {
        if ticket.len() < OVERHEAD {
            return None;
        }
        let (head, rest) = ticket.split_at(ID_LEN + TIME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let issued = u64::from_be_bytes(head[ID_LEN..].try_into().ok()?);
        let held = self.held();
        if now.saturating_sub(issued) > held.lifetime_secs {
            return None;
        }
        let id = &head[..ID_LEN];
        let sealer = [Some(&held.current), held.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|s| s.id == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let aad = Aad::from(<[u8; ID_LEN + TIME_LEN]>::try_from(head).ok()?);
        let mut body = sealed.to_vec();
        let plain = sealer.key.open_in_place(nonce, aad, &mut body).ok()?.len();
        body.truncate(plain);
        Some(body)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    /// The lifetime hint sent with each ticket: two rotation periods (the longest its key can
    /// open it; a rotation may end it after one).
    fn lifetime(&self) -> u32 {
        u32::try_from(self.held().lifetime_secs).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_at(plain, unix_now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open_at(cipher, unix_now())
    }
}

#[cfg(test)]
#[path = "tests/tickets.rs"]
mod tests;
