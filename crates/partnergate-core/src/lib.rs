//! The domain core of partnergate: everything the gateway decides and keeps, with no HTTP in it.
//!
//! A request enters the gateway binary (TLS, then the HTTP API), which hands it here:
//! [`access`] (who is asking and their standing for one participant) → [`policy`] (what the
//! agreement lets that standing see) → [`vault`] (pseudonyms and sealed fields) → [`store`] (the
//! database) → [`audit`] (the tamper-evident log, durable before any answer leaves). Beside that
//! path: [`dsr`] (data-subject requests), [`sync`] (the change feed for partner CRMs),
//! [`report`] (ESF+ aggregates with small-cell suppression), [`retention`] (purges on the
//! agreement's schedule), [`clock`] (the one clock, movable in tests), [`parallel`] (work spread
//! over the cores) and [`config`].
#![deny(missing_docs)]

pub mod access;
pub mod audit;
pub mod clock;
pub mod config;
pub mod dsr;
pub mod files;
pub mod html;
pub mod insz;
pub mod parallel;
pub mod policy;
pub mod report;
pub mod retention;
pub mod store;
pub mod sync;
pub mod vault;
