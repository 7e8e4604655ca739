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

pub mod api;
pub mod cli;
pub mod offline;
pub mod pki;
pub mod server;
pub mod tls;

// The domain core, under the paths the binary and the tests have always used.
pub use partnergate_core::{access, audit, config, dsr, html, policy, store, sync, vault};
// Added by issue 16 (kept on their own line so merges stay clean).
pub use partnergate_core::{clock, report, retention};
