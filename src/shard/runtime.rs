//! Builds a shard's monoio runtime: io_uring with the configured setup flags (falling back to no
//! flags when the kernel refuses them), or epoll when io_uring is unavailable. Runs on the shard's
//! own thread, before it serves (SINGLE_ISSUER ties the ring to the thread that creates it).

use crate::config::{Shards, UringSetup};

pub type Runtime = monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
>;

/// The runtime, and the setup flags its ring got (`None`: epoll driver).
pub fn build(s: &Shards) -> std::io::Result<(Runtime, Option<UringSetup>)> {
    let attempt = |setup: UringSetup| {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .with_entries(s.uring_entries)
            .uring_builder(builder(setup))
            .enable_timer()
            .build()
    };
    let runtime = match attempt(s.uring_setup) {
        Ok(r) => (r, s.uring_setup),
        // An older kernel refuses newer flags (EINVAL): the plain ring works everywhere.
        Err(_) if s.uring_setup != UringSetup::Plain => {
            (attempt(UringSetup::Plain)?, UringSetup::Plain)
        }
        Err(e) => return Err(e),
    };
    let setup = match &runtime.0 {
        monoio::FusionRuntime::Uring(_) => Some(runtime.1),
        monoio::FusionRuntime::Legacy(_) => None,
    };
    Ok((runtime.0, setup))
}

fn builder(setup: UringSetup) -> io_uring::Builder {
    let mut b = io_uring::IoUring::builder();
    match setup {
        UringSetup::Plain => {}
        UringSetup::CoopTaskrun => {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }
        UringSetup::DeferTaskrun => {
            b.setup_single_issuer().setup_defer_taskrun();
        }
        UringSetup::Sqpoll(idle_ms) => {
            b.setup_sqpoll(idle_ms);
        }
    }
    b
}
