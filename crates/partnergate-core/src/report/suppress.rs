//! Small-cell suppression over a system of published sums.
//!
//! A report is a set of counts ("variables") and the sums that hold between them: each table
//! row adds up to its total column, each column to the total row, and tables about the same
//! people share that total row. Suppressing a small count is not enough when the sums still
//! give it away: one hidden cell in a row is its total minus the others.
//!
//! [`suppress`] hides every count below its threshold (primary suppression) and then, while
//! any hidden count is still determined by the published ones, hides one more count of a sum
//! it appears in (secondary suppression). A hidden count is determined exactly when the unit
//! vector of its variable lies in the row space of the sums restricted to the hidden
//! variables; [`determined`] checks that with exact rational elimination. Complements are
//! chosen among positive counts, so every hidden count is at least 1 and no non-negativity
//! bound pins one either.

/// One published sum: the `parts` add up to `total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sum {
    /// Variables that are added.
    pub parts: Vec<usize>,
    /// The variable that holds their sum.
    pub total: usize,
}

/// Which variables to hide: `values[i]` below `thresholds[i]` (and above zero) first, then as
/// many more as it takes until no hidden value follows from `sums` and the published values.
pub fn suppress(values: &[u64], thresholds: &[u64], sums: &[Sum]) -> Vec<bool> {
    let mut hidden: Vec<bool> = values
        .iter()
        .zip(thresholds)
        .map(|(&v, &k)| v > 0 && v < k)
        .collect();
    loop {
        let exposed = determined(&hidden, sums);
        if exposed.is_empty() {
            return hidden;
        }
        let mut added = false;
        for x in exposed {
            if let Some(c) = complement(x, values, &hidden, sums) {
                hidden[c] = true;
                added = true;
                break;
            }
        }
        if !added {
            // No published positive count shares a sum with them: hide every positive count.
            // Hidden counts stay positive, so the test above remains exact.
            for (h, &v) in hidden.iter_mut().zip(values) {
                *h |= v > 0;
            }
            return hidden;
        }
    }
}

/// The smallest published positive count sharing a sum with `x` (margins last on ties, so
/// inner cells go first). Never a zero: a hidden zero could be pinned by non-negativity.
fn complement(x: usize, values: &[u64], hidden: &[bool], sums: &[Sum]) -> Option<usize> {
    let mut best: Option<(u64, bool, usize)> = None;
    for s in sums.iter().filter(|s| s.total == x || s.parts.contains(&x)) {
        for (&v, is_total) in s.parts.iter().map(|v| (v, false)).chain([(&s.total, true)]) {
            if v == x || hidden[v] || values[v] == 0 {
                continue;
            }
            let key = (values[v], is_total, v);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
    }
    best.map(|b| b.2)
}

/// The hidden variables whose value follows from the published ones and the sums.
pub fn determined(hidden: &[bool], sums: &[Sum]) -> Vec<usize> {
    let unknowns: Vec<usize> = (0..hidden.len()).filter(|&i| hidden[i]).collect();
    if unknowns.is_empty() {
        return Vec::new();
    }
    let column = |v: usize| unknowns.binary_search(&v).ok();
    let mut rows: Vec<Vec<Q>> = sums
        .iter()
        .map(|s| {
            let mut row = vec![Q::ZERO; unknowns.len()];
            for &p in &s.parts {
                if let Some(c) = column(p) {
                    row[c] = row[c].add(Q::ONE);
                }
            }
            if let Some(c) = column(s.total) {
                row[c] = row[c].sub(Q::ONE);
            }
            row
        })
        .filter(|r| r.iter().any(|q| !q.is_zero()))
        .collect();
    let pivots = rref(&mut rows, unknowns.len());
    let is_pivot: Vec<bool> = {
        let mut v = vec![false; unknowns.len()];
        for &(_, c) in &pivots {
            v[c] = true;
        }
        v
    };
    pivots
        .iter()
        .filter(|&&(r, _)| {
            rows[r]
                .iter()
                .enumerate()
                .all(|(c, q)| is_pivot[c] || q.is_zero())
        })
        .map(|&(_, c)| unknowns[c])
        .collect()
}

/// Reduced row echelon form in place; returns (row, column) of each pivot.
fn rref(rows: &mut [Vec<Q>], columns: usize) -> Vec<(usize, usize)> {
    let mut pivots = Vec::new();
    let mut r = 0;
    for c in 0..columns {
        let Some(p) = (r..rows.len()).find(|&i| !rows[i][c].is_zero()) else {
            continue;
        };
        rows.swap(r, p);
        let inv = rows[r][c].recip();
        for q in rows[r].iter_mut() {
            *q = q.mul(inv);
        }
        let pivot_row = rows[r].clone();
        for (i, row) in rows.iter_mut().enumerate() {
            if i != r && !row[c].is_zero() {
                let f = row[c];
                for (q, p) in row.iter_mut().zip(&pivot_row) {
                    *q = q.sub(p.mul(f));
                }
            }
        }
        pivots.push((r, c));
        r += 1;
        if r == rows.len() {
            break;
        }
    }
    pivots
}

/// An exact rational number; the sums' coefficients are 0 and ±1, so these stay small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Q {
    n: i128,
    d: i128,
}

impl Q {
    const ZERO: Q = Q { n: 0, d: 1 };
    const ONE: Q = Q { n: 1, d: 1 };

    fn new(n: i128, d: i128) -> Q {
        let g = gcd(n.abs(), d.abs()).max(1);
        let s = if d < 0 { -1 } else { 1 };
        Q {
            n: s * n / g,
            d: s * d / g,
        }
    }
    fn is_zero(self) -> bool {
        self.n == 0
    }
    fn add(self, o: Q) -> Q {
        Q::new(self.n * o.d + o.n * self.d, self.d * o.d)
    }
    fn sub(self, o: Q) -> Q {
        Q::new(self.n * o.d - o.n * self.d, self.d * o.d)
    }
    fn mul(self, o: Q) -> Q {
        Q::new(self.n * o.n, self.d * o.d)
    }
    fn recip(self) -> Q {
        Q::new(self.d, self.n)
    }
}

fn gcd(a: i128, b: i128) -> i128 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rows × cols table with a total column and a total row; returns (values, sums).
    fn table(inner: &[&[u64]]) -> (Vec<u64>, Vec<Sum>) {
        let (r, c) = (inner.len(), inner[0].len());
        let id = |i: usize, j: usize| i * (c + 1) + j;
        let mut values = vec![0; (r + 1) * (c + 1)];
        for (i, row) in inner.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                values[id(i, j)] = v;
                values[id(i, c)] += v;
                values[id(r, j)] += v;
                values[id(r, c)] += v;
            }
        }
        let mut sums = Vec::new();
        for i in 0..=r {
            sums.push(Sum {
                parts: (0..c).map(|j| id(i, j)).collect(),
                total: id(i, c),
            });
        }
        for j in 0..=c {
            sums.push(Sum {
                parts: (0..r).map(|i| id(i, j)).collect(),
                total: id(r, j),
            });
        }
        (values, sums)
    }

    #[test]
    fn one_small_cell_takes_a_complement_in_its_row_and_its_column() {
        let (values, sums) = table(&[&[3, 40, 50], &[30, 20, 60], &[25, 35, 45]]);
        let k = vec![5; values.len()];
        let hidden = suppress(&values, &k, &sums);
        assert!(hidden[0]);
        assert!(hidden.iter().filter(|&&h| h).count() >= 4, "{hidden:?}");
        assert!(determined(&hidden, &sums).is_empty());
    }

    #[test]
    fn a_lone_hidden_cell_is_determined_and_a_rectangle_is_not() {
        let (_, sums) = table(&[&[3, 40], &[30, 20]]);
        let mut hidden = vec![false; 9];
        hidden[0] = true;
        assert_eq!(determined(&hidden, &sums), vec![0]);
        // Cells (0,0), (0,1), (1,0), (1,1) of a 2×2 with published margins: a free rectangle.
        for i in [1, 3, 4] {
            hidden[i] = true;
        }
        assert!(determined(&hidden, &sums).is_empty());
    }

    #[test]
    fn nothing_small_means_nothing_hidden() {
        let (values, sums) = table(&[&[10, 40], &[30, 20]]);
        let hidden = suppress(&values, &vec![5; values.len()], &sums);
        assert!(hidden.iter().all(|h| !h));
    }

    #[test]
    fn random_tables_never_leave_a_hidden_cell_determined() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let rows = 2 + (next() % 4) as usize;
            let cols = 2 + (next() % 4) as usize;
            let inner: Vec<Vec<u64>> = (0..rows)
                .map(|_| (0..cols).map(|_| next() % 14).collect())
                .collect();
            let refs: Vec<&[u64]> = inner.iter().map(|r| r.as_slice()).collect();
            let (values, sums) = table(&refs);
            let hidden = suppress(&values, &vec![5; values.len()], &sums);
            assert!(determined(&hidden, &sums).is_empty(), "{inner:?}");
            for (v, h) in values.iter().zip(&hidden) {
                if *v > 0 && *v < 5 {
                    assert!(h);
                }
                // Only positive counts are hidden, so non-negativity pins none of them.
                if *h {
                    assert!(*v > 0);
                }
            }
        }
    }
}
