//! The `shardgate` binary: flags → config (file, then flags) → `--check` or the coordinator.
//! Exit codes: 0 clean (or drained), 1 runtime failure or drain deadline, 2 invalid config or flags
//! (also an address or access log the config names that cannot be had at start).

#![deny(unsafe_code)]

use clap::Parser;

use shardgate::cli::Args;
use shardgate::{config, coordinator, sys};

#[cfg(feature = "alloc-count")]
#[allow(unsafe_code)] // the counting GlobalAlloc of bench/alloc.sh
mod alloc_count;
#[cfg(feature = "alloc-count")]
#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

fn main() {
    let args = Args::parse();
    let cfg = match build_config(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("error: {msg}");
            std::process::exit(2);
        }
    };
    if args.check {
        // A start prints the same warning (coordinator::run).
        if let Some(warning) = config::admin_exposure_warning(&cfg) {
            eprintln!("{warning}");
        }
        println!("{}: ok", args.config.as_deref().unwrap_or("flags"));
        return;
    }
    sys::raise_nofile_limit();
    // Connection buffers come from their own mappings, so the kits idle connections give back
    // return their memory to the OS instead of staying resident in the allocator's heap.
    sys::map_large_allocations(cfg.shards.buffer_size.min(cfg.shards.upstream_buffer_size));
    let start = coordinator::Start {
        upgrade: args.upgrade,
        socket: cfg.upgrade_socket.clone(),
        relaunch: relaunch(),
    };
    // A reload reads the file again and applies the same flags on top, as at start.
    let reload: coordinator::Reloader = Box::new(move || build_config(&args));
    // The bench-only counter also answers SIGUSR1 (next to the access log's reopen).
    #[cfg(feature = "alloc-count")]
    alloc_count::report_on_sigusr1();
    let code = coordinator::run(cfg, reload, start);
    #[cfg(feature = "alloc-count")]
    alloc_count::report();
    std::process::exit(code);
}

/// The one way a config is built, for `--check`, start and every reload alike: the config file
/// (if any), flags applied on top, then `config::check` (limits and start-up checks), whose error
/// names the flag or the file:line:col the bad value came from.
fn build_config(args: &Args) -> Result<config::Config, String> {
    let mut cfg = match &args.config {
        Some(path) => config::load(path).map_err(|e| e.to_string())?,
        None => Args::base_config(),
    };
    args.apply(&mut cfg)?;
    config::check(&mut cfg).map_err(|e| args.name_default(e).to_string())?;
    Ok(cfg)
}

/// How SIGUSR2 starts the new binary: this executable's path as it was at start (the file may
/// since have been replaced by the new version) with the same arguments and `--upgrade`.
fn relaunch() -> Option<coordinator::Relaunch> {
    let exe = std::env::current_exe().ok()?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--upgrade")
        .collect();
    args.push("--upgrade".into());
    Some(coordinator::Relaunch { exe, args })
}
