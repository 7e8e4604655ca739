//! Developer tools around the partnergate gateway, kept out of the gateway library: the
//! synthetic demo caseload ([`synthetic`]) and the load generator ([`bench`]).
//!
//! The `partnergate` binary uses them for its `demo` and `bench` commands, and the tests use
//! the caseload. Neither is part of a running gateway: `synthetic` invents participants (no real
//! person is described), and `bench` speaks to a gateway over mutual TLS through
//! `partnergate-client`, like a partner CRM.
//!
//! It takes the national register number from `partnergate-core`, the one the gateway
//! validates with, and does not depend on the gateway itself: the `partnergate` package builds
//! its binary from this crate, and Cargo allows no dependency cycle between packages.

#![deny(missing_docs)]

pub mod bench;
pub mod synthetic;

/// A progress bar on standard error (hidden when it is not a terminal), as the `demo` command
/// shows while it loads the caseload.
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
