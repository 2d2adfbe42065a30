//! The cluster-wide rate limits' Redis side (issue #14): so far the GCRA script that charges
//! what shards admitted. The limits thread that will own the connection comes later.

pub mod gcra;
