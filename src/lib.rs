//! partnergate: the privacy-preserving data-sharing gateway between the partners of an
//! ESF+ local partnership.
//!
//! A request flows top-down through the modules: [`tls`] (who is calling) → [`api`]
//! (routes, extractors, errors) → [`access`] (the request's caller, purpose and acting user,
//! and the rules of standing) → [`policy`] (what this caller may see for this purpose) →
//! [`vault`] (pseudonyms and sealed fields) → [`store`] (SQLite through sqlx) → [`audit`]
//! (the tamper-evident access log, written before any answer leaves).
//!
//! Only the gateway lives here. The client side (the mTLS client, the reference CRM sync and the
//! CSV import) is the `partnergate-client` crate; the synthetic demo caseload and the load
//! generator are `partnergate-devtools`. The `partnergate` binary joins the three.

pub mod access;
pub mod api;
pub mod audit;
pub mod cli;
pub mod config;
pub mod dsr;
/// The HTML page shell and escaping (from the core crate).
pub use partnergate_core::html;
pub mod pki;
/// The agreement and its compiled policy (from the core crate).
pub use partnergate_core::policy;
pub mod server;
pub mod store;
pub mod sync;
pub mod tls;
pub mod vault;
