//! TLS termination, the certificate side: `Material` reads a listener's certificates, keys and
//! client CA into DER bytes and checks them (coordinator or main thread, at `--check`, start and
//! every reload); `Material::server_config` turns them into one rustls `ServerConfig` per shard
//! (each shard calls it for itself, so no rustls lock is shared across cores), with a resolver
//! that picks a certificate by SNI, and session tickets sealed with keys the coordinator makes
//! and rotates (`TicketKeys`), opened by any shard's `Ticketer`. The origination side is the same
//! shape: `ClientMaterial` reads a cluster's CA (or the system roots) and client certificate,
//! `client_config` builds one rustls `ClientConfig` per shard. Pure: files in, values out; nothing
//! here touches a socket.
//! rustls stays behind this module so a move to rustls 0.24 stays local.

mod client;
mod material;
mod names;
mod negotiated;
mod outcome;
mod pem;
mod resolver;
mod server;
pub mod settings;
mod tickets;

#[cfg(test)]
mod tests;

pub use client::{failure, refused_after_handshake, server_name, ClientMaterial};
pub use material::{Certificate, Material, EXPIRY_WARNING};
pub use names::name_matches;
pub use negotiated::{ClientCert, Negotiated};
pub use outcome::HandshakeOutcome;
pub use rustls_pki_types::ServerName;
pub use tickets::{TicketKeys, Ticketer, MAX_TICKET_LIFETIME};

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a listener's TLS material cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// A file is missing, unreadable, or does not hold what it should: `FILE: message`.
    File {
        path: PathBuf,
        message: String,
        /// Which configured file it is (`None` until the loader knows).
        role: Option<FileRole>,
    },
    /// rustls refused the assembled configuration (no file to blame).
    Config(String),
}

/// Which of a listener's files an error is about (the same path may be given twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// `certificates[i].cert`
    Cert(usize),
    /// `certificates[i].key`
    Key(usize),
    ClientCa,
}

impl TlsError {
    pub(crate) fn file(path: &Path, message: impl Into<String>) -> TlsError {
        TlsError::File {
            path: path.to_path_buf(),
            message: message.into(),
            role: None,
        }
    }

    /// The same error, said to be about the file in `role`.
    pub(crate) fn at(self, role: FileRole) -> TlsError {
        match self {
            TlsError::File { path, message, .. } => TlsError::File {
                path,
                message,
                role: Some(role),
            },
            other => other,
        }
    }

    /// Which configured file the error is about, if any.
    pub fn role(&self) -> Option<FileRole> {
        match self {
            TlsError::File { role, .. } => *role,
            TlsError::Config(_) => None,
        }
    }

    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            TlsError::File { path, .. } => Some(path),
            TlsError::Config(_) => None,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::File { path, message, .. } => write!(f, "{}: {message}", path.display()),
            TlsError::Config(m) => write!(f, "TLS configuration: {m}"),
        }
    }
}

impl std::error::Error for TlsError {}
