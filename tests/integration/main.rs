//! Integration tests: the real binary, real mTLS, a real SQLite file, real crypto.

mod audit;
mod contract;
mod dsr;
mod fixtures;
mod harness;
mod instances;
mod participants;
mod properties;
mod reports;
mod retention;
mod sync;
mod tls;
mod trust;
mod vault;
