//! The domain core of partnergate: the pieces the gateway, its tools and (later) its stores
//! share, with no HTTP in them. It grows as the gateway's domain modules move here (issue 13):
//! today the joint-controller agreement and its compiled policy, the national register number,
//! and the HTML page shell of the documents the gateway writes.
#![deny(missing_docs)]

pub mod html;
pub mod insz;
pub mod policy;
