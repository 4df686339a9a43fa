//! Partitioned runs: which rows of a file a worker of a cluster processes.
//!
//! A run with `--partition I/N` keeps only the rows whose account falls in partition `I` of `N`
//! (numbered from 0, so `0/4` … `3/4`). The account is the `bd_key` column as ingest builds it
//! (the profile's key values, trimmed, joined with `|`), and its partition is
//!
//! ```text
//! h = FNV-1a 64 of the key's UTF-8 bytes   (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
//! partition = ⌊h · N / 2^64⌋               (the high bits of h scaled to 0..N)
//! ```
//!
//! The hash is fixed and unkeyed, so every row of an account — and of its history — lands in the
//! same partition on any machine, with any build. The high bits are used because FNV's low bits
//! only depend on the low bits of each byte.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

/// The name of the hash, as recorded beside each part.
pub const HASH: &str = "fnv1a64-high";

/// FNV-1a's offset basis: the hash of no bytes.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_extend(FNV_OFFSET, bytes)
}

/// FNV-1a's state `h` after `bytes` more (from [`FNV_OFFSET`]: [`fnv1a64`]), so that a key can
/// be hashed piece by piece.
#[inline]
pub fn fnv1a64_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The partition (0..count) of a key whose FNV-1a hash is `h`.
#[inline]
pub fn partition_of_hash(h: u64, count: usize) -> usize {
    ((u128::from(h) * count as u128) >> 64) as usize
}

/// The partition (0..count) of an account key.
pub fn partition_of(key: &str, count: usize) -> usize {
    partition_of_bytes(key.as_bytes(), count)
}

/// [`partition_of`] of a key given as its UTF-8 bytes.
pub fn partition_of_bytes(key: &[u8], count: usize) -> usize {
    partition_of_hash(fnv1a64(key), count)
}

/// Partition `index` of `count`, numbered from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub index: usize,
    pub count: usize,
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The most partitions a run may be split into.
pub const MAX_COUNT: usize = 1_000_000;

impl std::str::FromStr for Partition {
    type Err = String;
    /// `I/N`: partition I (0 ≤ I < N) of N.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || {
            format!(
                "{s:?} is not I/N: give the partition's index and the number of partitions, \
                 numbered from 0 (0/4, 1/4, 2/4 and 3/4 for four)"
            )
        };
        let (i, n) = s.trim().split_once('/').ok_or_else(usage)?;
        let index: usize = i.trim().parse().map_err(|_| usage())?;
        let count: usize = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || count > MAX_COUNT {
            return Err(format!(
                "{s:?}: the number of partitions must be between 1 and {MAX_COUNT}"
            ));
        }
        if index >= count {
            return Err(format!(
                "{s:?}: partitions are numbered from 0, so the index must be below {count} (0 to {})",
                count - 1
            ));
        }
        Ok(Partition { index, count })
    }
}

impl Partition {
    /// Whether the account `key` belongs to this partition.
    pub fn contains(&self, key: &str) -> bool {
        partition_of(key, self.count) == self.index
    }

    /// The rows of `df` (a prepared table, with `bd_key`) whose account is in this partition, in
    /// their order. `what` names the table in an error (e.g. the file).
    pub fn select(&self, df: &DataFrame, what: &str) -> Result<DataFrame, PartitionError> {
        let Ok(keys) = df.column("bd_key") else {
            return Err(PartitionError::NoKeys(what.to_string()));
        };
        let keys = keys.str()?;
        let mask: BooleanChunked = keys
            .iter()
            .map(|k| Some(self.contains(k.unwrap_or(""))))
            .collect();
        Ok(df.filter(&mask)?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(
        "--partition needs account keys, and the rows of {0} have none (the profile names no key columns)"
    )]
    NoKeys(String),
    #[error("selecting the partition: {0}")]
    Polars(#[from] PolarsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_has_the_published_values() {
        // The FNV reference test vectors (offset basis for "", then "a" and "foobar").
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn an_account_key_has_a_fixed_partition() {
        // Known values: they must never change, or parts written by another build would not merge.
        let key = "07900|120100|5495|GBP";
        assert_eq!(fnv1a64(key.as_bytes()), 0x7b82_e1e6_41f5_8bf7);
        assert_eq!(partition_of(key, 4), 1);
        assert_eq!(partition_of("00000|101000|0501|USD", 4), 2);
        assert_eq!(partition_of("00000|101000|0501|USD", 1), 0);
        for n in 1..50 {
            assert!(partition_of(key, n) < n);
        }
    }

    #[test]
    fn partitions_are_balanced_and_each_key_in_exactly_one() {
        let n = 4;
        let mut counts = [0usize; 4];
        for a in 0..20_000 {
            let key = format!("{:05}|{}|{:04}|USD", a % 97, 100_000 + a, a % 7919);
            let hits: Vec<usize> = (0..n)
                .filter(|i| {
                    Partition {
                        index: *i,
                        count: n,
                    }
                    .contains(&key)
                })
                .collect();
            assert_eq!(hits.len(), 1, "{key}");
            counts[hits[0]] += 1;
        }
        for c in counts {
            assert!((4_500..5_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn the_flag_value_is_checked_with_a_clear_message() {
        assert_eq!(
            "2/4".parse::<Partition>().unwrap(),
            Partition { index: 2, count: 4 }
        );
        assert_eq!(
            " 0 / 1 ".parse::<Partition>().unwrap(),
            Partition { index: 0, count: 1 }
        );
        let e = "4/4".parse::<Partition>().unwrap_err();
        assert!(e.contains("numbered from 0") && e.contains("0 to 3"), "{e}");
        for bad in ["", "3", "a/4", "1/b", "-1/4", "1/0", "1/4/2"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn select_keeps_the_partition_rows_in_order_and_needs_keys() {
        let keys: Vec<String> = (0..200).map(|i| format!("A|{i}")).collect();
        let df =
            df!("bd_row" => (0..200u32).collect::<Vec<_>>(), "bd_key" => keys.clone()).unwrap();
        let mut total = 0;
        for index in 0..3 {
            let p = Partition { index, count: 3 };
            let part = p.select(&df, "f.csv").unwrap();
            let rows: Vec<u32> = part
                .column("bd_row")
                .unwrap()
                .u32()
                .unwrap()
                .into_no_null_iter()
                .collect();
            assert!(rows.windows(2).all(|w| w[0] < w[1]), "file order kept");
            assert!(rows.iter().all(|r| p.contains(&keys[*r as usize])));
            total += rows.len();
        }
        assert_eq!(total, 200);
        let no_keys = df!("bd_row" => [1u32]).unwrap();
        let e = Partition { index: 0, count: 2 }
            .select(&no_keys, "g.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--partition") && e.contains("g.csv"), "{e}");
    }
}
