//! (being filled in: the audit queries move here.)
