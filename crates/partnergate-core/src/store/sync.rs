//! (being filled in: the sync queries move here.)
