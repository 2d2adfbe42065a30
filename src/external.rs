//! The side threads that talk to systems outside the process, and their owners' ends of them:
//! DNS discovery (`discovery`: `dns:`/`srv:` endpoints and re-resolved hostnames) and the
//! cluster-wide rate limits' Redis syncs (`limits`). The proxy's coordinator owns one of each;
//! a library `embed::Client` owns its own. Neither a shard nor an embedding thread's request path
//! ever waits on them: their owner sends them orders and polls their answers. Owner's thread (the
//! `Discovery`/`Limits` handles), their own threads (`discovery`, `limits`).

pub mod discovery;
pub mod limits;
