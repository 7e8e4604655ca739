//! Integration tests: the real binary, real mTLS, a real SQLite file, real crypto.

mod harness;
mod tls;
