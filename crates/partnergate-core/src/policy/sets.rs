//! Small Copy ids and bitsets used on the request path (no strings, no allocation).

use std::fmt;

/// Index of a purpose in the agreement (order of declaration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PurposeId(pub(crate) u8);

/// Index of a role in the agreement (order of declaration, at most 32 roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleId(pub(crate) u8);

/// Index of a category in the agreement (order of declaration, at most 64 categories).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CategoryId(pub(crate) u8);

/// Index of a consent scope in the agreement (order of declaration, at most 64 scopes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeId(pub(crate) u8);

macro_rules! id_index {
    ($($t:ty),*) => {$(
        impl $t {
            /// Position in the agreement's declaration order.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    )*};
}
id_index!(PurposeId, RoleId, CategoryId, ScopeId);

macro_rules! bitset {
    ($(#[$doc:meta])* $name:ident, $bits:ty, $id:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub(crate) $bits);

        impl $name {
            /// The empty set.
            pub const EMPTY: $name = $name(0);

            /// The empty set.
            pub fn empty() -> $name {
                $name(0)
            }

            /// A set holding one element.
            pub fn of(id: $id) -> $name {
                $name(1 << id.0)
            }

            /// Adds an element.
            pub fn insert(&mut self, id: $id) {
                self.0 |= 1 << id.0;
            }

            /// Removes an element.
            pub fn remove(&mut self, id: $id) {
                self.0 &= !(1 << id.0);
            }

            /// Whether the element is in the set.
            pub fn contains(self, id: $id) -> bool {
                self.0 & (1 << id.0) != 0
            }

            /// Whether the set is empty.
            pub fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Number of elements.
            pub fn len(self) -> usize {
                self.0.count_ones() as usize
            }

            /// Elements in both sets.
            pub fn intersection(self, other: $name) -> $name {
                $name(self.0 & other.0)
            }

            /// Elements in either set.
            pub fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }

            /// Elements of `self` not in `other`.
            pub fn difference(self, other: $name) -> $name {
                $name(self.0 & !other.0)
            }

            /// Whether every element of `self` is in `other`.
            pub fn is_subset(self, other: $name) -> bool {
                self.0 & !other.0 == 0
            }

            /// The raw bits (bit i = element with index i).
            pub fn bits(self) -> $bits {
                self.0
            }

            /// Iterates the elements in index order.
            pub fn iter(self) -> impl Iterator<Item = $id> {
                let mut bits = self.0;
                std::iter::from_fn(move || {
                    if bits == 0 {
                        None
                    } else {
                        let i = bits.trailing_zeros();
                        bits &= bits - 1;
                        Some($id(i as u8))
                    }
                })
            }
        }

        impl FromIterator<$id> for $name {
            fn from_iter<I: IntoIterator<Item = $id>>(iter: I) -> $name {
                let mut s = $name::empty();
                for id in iter {
                    s.insert(id);
                }
                s
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_set().entries(self.iter().map(|i| i.0)).finish()
            }
        }
    };
}

bitset!(
    /// A set of roles (bitset over [`RoleId`]).
    RoleSet,
    u32,
    RoleId
);
bitset!(
    /// A set of categories (bitset over [`CategoryId`]).
    CategorySet,
    u64,
    CategoryId
);
bitset!(
    /// A set of consent scopes in force (bitset over [`ScopeId`]).
    ScopeSet,
    u64,
    ScopeId
);

/// Maximum number of roles an agreement may declare (bits in [`RoleSet`]).
pub const MAX_ROLES: usize = 32;
/// Maximum number of categories an agreement may declare (bits in [`CategorySet`]).
pub const MAX_CATEGORIES: usize = 64;
/// Maximum number of consent scopes an agreement may declare (bits in [`ScopeSet`]).
pub const MAX_SCOPES: usize = 64;
/// Maximum number of purposes an agreement may declare.
pub const MAX_PURPOSES: usize = 255;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_set_iterates_in_index_order_and_counts() {
        let s: RoleSet = [RoleId(3), RoleId(0), RoleId(31)].into_iter().collect();
        assert_eq!(s.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 3, 31]);
        assert_eq!(s.len(), 3);
        assert!(s.contains(RoleId(31)));
        assert!(!s.contains(RoleId(1)));
    }

    #[test]
    fn category_set_supports_bit_63() {
        let mut s = CategorySet::empty();
        s.insert(CategoryId(63));
        assert!(s.contains(CategoryId(63)));
        s.remove(CategoryId(63));
        assert!(s.is_empty());
    }
}
