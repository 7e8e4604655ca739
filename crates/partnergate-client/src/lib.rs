//! A client library for the partnergate gateway, for the developers of partner systems.
//!
//! The gateway only speaks HTTP over mutual TLS: a partner's system presents the client
//! certificate the partnership issued to it and trusts only the partnership CA. This crate
//! gives:
//!
//! - [`GatewayClient`]: a keep-alive mTLS client bound to one gateway and one [`Identity`]
//!   (CA, client certificate, key), sending `X-Purpose` and `X-Acting-User` on every request
//!   once [`GatewayClient::acting`] set them;
//! - [`crm_sync`]: the reference CRM connector, which mirrors a partner's view into a local
//!   SQLite file through `GET /v1/changes` and resumes exactly where it stopped;
//! - [`import`]: the CSV migration of an ended project's files through `POST /v1/participants`.
//!
//! It does not depend on the gateway itself. The `partnergate` binary uses it for its
//! `crm-sync` and `import` commands, and the gateway's integration tests speak through it.
//!
//! ```ignore
//! use partnergate_client::{GatewayClient, Identity};
//!
//! let me = Identity::from_files("ca.pem".as_ref(), "crm.pem".as_ref(), "crm.key".as_ref())?;
//! let api = GatewayClient::new("https://gateway.example:8443", &me, 4)?
//!     .acting("trajectory_guidance", "coach-17");
//! let answer = api.get("/v1/me").await?;
//! println!("{} {}", answer.status, answer.json());
//! ```

#![deny(missing_docs)]

mod client;
pub mod crm_sync;
pub mod import;

pub use client::{ClientError, GatewayClient, Identity, Response};
pub use hyper::body::Bytes;
pub use hyper::{HeaderMap, Method, StatusCode};
