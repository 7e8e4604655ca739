//! The domain core of partnergate: the pieces the gateway, its tools and (later) its stores
//! share, with no HTTP in them. It grows as the gateway's domain modules move here (issue 13);
//! today it holds the national register number.
#![deny(missing_docs)]

pub mod insz;
