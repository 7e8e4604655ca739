//! partnergate: the privacy-preserving data-sharing gateway between the partners of an
//! ESF+ local partnership.
//!
//! A request flows top-down through the modules: [`tls`] (who is calling) → [`api`]
//! (routes, extractors, errors) → [`policy`] (what this caller may see for this purpose) →
//! [`vault`] (pseudonyms and sealed fields) → [`store`] (SQLite through sqlx) → [`audit`]
//! (the tamper-evident access log, written before any answer leaves).

pub mod api;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod crm_sync;
pub mod dsr;
pub mod html;
pub mod import;
pub mod pki;
pub mod policy;
pub mod server;
pub mod store;
pub mod sync;
pub mod synthetic;
pub mod tls;
pub mod vault;
