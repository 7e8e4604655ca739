//! Writes that commit together with their audit records: a vault write and the record of it
//! are made durable in one transaction, or neither is.

use futures_util::future::BoxFuture;

use crate::store::{DbError, WriteTx};

/// What a write did: its result, and whether to keep it. A write that finds it cannot apply
/// (a stale version, a role taken) returns `keep: false`: whatever it wrote is rolled back and
/// its audit records are not appended; the caller records the refusal instead.
#[derive(Debug)]
pub struct Applied<T> {
    /// The write's result.
    pub value: T,
    /// Whether to commit the write and its records.
    pub keep: bool,
}

impl<T> Applied<T> {
    /// A write to commit.
    pub fn kept(value: T) -> Self {
        Self { value, keep: true }
    }

    /// A write to roll back.
    pub fn undone(value: T) -> Self {
        Self { value, keep: false }
    }
}

/// A write to run inside the writer's transaction.
pub type Apply<T> =
    Box<dyn for<'t> FnOnce(&'t mut WriteTx) -> BoxFuture<'t, Result<Applied<T>, DbError>> + Send>;
