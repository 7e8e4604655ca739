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

/// How the audit writer keeps a write apart from the others in its batch, so that a write that
/// is refused or fails undoes all of its statements and nothing of the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// The writer opens a savepoint before the write and releases or rolls back to it after.
    Savepoint,
    /// The write opens that savepoint ([`WriteTx::savepoint`]) in its first statement and
    /// releases it in its last, and writes nothing when it is not kept; the writer only rolls
    /// back to it on an error. Two hand-offs to the database fewer on the writer's serial path.
    OwnSavepoint,
}
