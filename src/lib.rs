//! partnergate: the privacy-preserving data-sharing gateway between the partners of an
//! ESF+ local partnership.
//!
//! A request flows top-down: [`tls`] (who is calling, once per connection) → [`api`] (routes,
//! extractors, errors; thin handlers) → the domain core, re-exported here from
//! `partnergate-core`: [`access`] (the one access decision) → [`policy`] → [`vault`] →
//! [`store`] (every SQL statement) → [`audit`] (the tamper-evident log, durable before any
//! answer leaves).
//!
//! Only the gateway's HTTP side, its command line and its PKI live in this crate. The client side (the mTLS client, the reference CRM sync and the
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
