//! The listening sockets an upgrade would hand over: a copy (`dup`) of every shard's listener,
//! by address, kept by the coordinator as listeners open and close (start, reload) and read by
//! the upgrade server's thread when a new process asks. Dropped when a drain starts, so a
//! drained process never holds a socket open that no shard accepts on. Coordinator and upgrade
//! threads; never a shard.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Offer, Serves};

/// The offers, shared by the coordinator (writer) and the upgrade server (reader).
#[derive(Clone, Default)]
pub struct Offers(Arc<Mutex<Vec<Offer>>>);

impl Offers {
    fn lock(&self) -> MutexGuard<'_, Vec<Offer>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds the group of sockets of one address (shard order), as copies.
    pub fn add(
        &self,
        written: SocketAddr,
        serves: Serves,
        sockets: &[&TcpListener],
    ) -> std::io::Result<()> {
        let copies = sockets
            .iter()
            .map(|l| l.try_clone().map(OwnedFd::from))
            .collect::<std::io::Result<Vec<_>>>()?;
        let bound = match sockets.first() {
            Some(l) => l.local_addr()?,
            None => written,
        };
        self.lock().push(Offer {
            written,
            bound,
            sockets: copies,
            admin: false,
            serves,
        });
        Ok(())
    }

    /// Adds a copy of the admin listener (written as `written` in the config).
    pub fn add_admin(&self, written: SocketAddr, listener: &TcpListener) -> std::io::Result<()> {
        let copy = OwnedFd::from(listener.try_clone()?);
        self.lock().push(Offer {
            written,
            bound: listener.local_addr()?,
            sockets: vec![copy],
            admin: true,
            serves: Serves::default(),
        });
        Ok(())
    }

    /// Forgets the listener a reload closed (as written or as bound).
    pub fn remove(&self, addr: SocketAddr) {
        self.lock()
            .retain(|o| o.admin || (o.bound != addr && o.written != addr));
    }

    /// Forgets every socket (a drain started: nothing is handed over any more).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Runs `f` on the offers as they are now.
    pub fn with<R>(&self, f: impl FnOnce(&[Offer]) -> R) -> R {
        f(&self.lock())
    }
}
