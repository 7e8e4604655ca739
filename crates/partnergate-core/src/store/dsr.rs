//! (being filled in: the dsr queries move here.)
