//! The merge's spill of case inputs: each written row's case input on disk until every part
//! is staged, read back group by group.

use super::*;

/// The case columns, last in the output.
pub(super) const CASE_COLUMNS: [&str; 3] = ["case_id", "ticket", "case_status"];

/// A part's written rows staged on disk, in the output's order, and their positions there.
pub(super) struct Staged {
    pub(super) path: PathBuf,
    pub(super) pos: Vec<u32>,
}

/// The case inputs of a merge's records, spilled to its stage part by part as they are
/// categorized and read back group by group, so the merge never holds them all: a record's
/// input is one byte (proposed for auto-resolution or not) then the input in the binary form of [`crate::cases::encode_input`].
pub(super) struct CaseSpill {
    pub(super) path: PathBuf,
    pub(super) w: std::io::BufWriter<std::fs::File>,
    pub(super) len: u64,
    /// Each record's input (by its place among the cases): where it starts, its length and its
    /// break (a hash of its key and start date).
    pub(super) index: Vec<SpillEntry>,
}

#[derive(Clone, Copy)]
pub(super) struct SpillEntry {
    pub(super) at: u64,
    pub(super) len: u32,
    pub(super) brk: u64,
}

pub(super) const UNSPILLED: u64 = u64::MAX;

impl CaseSpill {
    pub(super) fn create(dir: &Path, cases: usize) -> Result<CaseSpill, PartError> {
        let path = dir.join("cases.spill");
        let f = std::fs::File::create(&path).map_err(|e| werr(&path, e))?;
        Ok(CaseSpill {
            w: std::io::BufWriter::with_capacity(1 << 20, f),
            path,
            len: 0,
            index: vec![
                SpillEntry {
                    at: UNSPILLED,
                    len: 0,
                    brk: 0,
                };
                cases
            ],
        })
    }

    /// The inputs `b` encoded as [`CaseSpill::put`] spills them (checked first, as recording
    /// checks them): on every core, without the spill.
    pub(super) fn encode(b: &crate::pipeline::BreakInputs) -> Result<Encoded, PartError> {
        use rayon::prelude::*;
        let (inputs, rows, auto) = (&b.inputs, &b.rows, &b.auto);
        if rows.len() != inputs.len() || auto.len() != inputs.len() {
            return Err(PartError::Invalid {
                file: "the merge's case inputs".into(),
                message: format!(
                    "{} inputs, {} rows and {} flags",
                    inputs.len(),
                    rows.len(),
                    auto.len()
                ),
            });
        }
        let bytes = inputs
            .par_iter()
            .zip(rows)
            .zip(auto)
            .map(|((input, row), auto)| {
                input.validate()?;
                let mut b = vec![u8::from(*auto)];
                crate::cases::encode_input_row(input, row, &mut b)?;
                if u32::try_from(b.len()).is_err() {
                    return Err(crate::cases::CaseError::Invalid(format!(
                        "the case input of break {} is too large",
                        input.key
                    )));
                }
                Ok(b)
            })
            .collect::<Result<_, crate::cases::CaseError>>()?;
        Ok(Encoded {
            bytes,
            breaks: inputs
                .iter()
                .map(|i| break_hash(&i.key, i.start_date))
                .collect(),
        })
    }

    /// Spills the inputs of the cases at places `at` ([`CaseSpill::encode`]d).
    pub(super) fn put(&mut self, at: &[u32], encoded: Encoded) -> Result<(), PartError> {
        if at.len() != encoded.bytes.len() {
            return Err(PartError::Invalid {
                file: self.path.display().to_string(),
                message: format!(
                    "{} case places for {} inputs",
                    at.len(),
                    encoded.bytes.len()
                ),
            });
        }
        let Encoded { bytes, breaks } = encoded;
        for ((k, b), brk) in at.iter().zip(bytes).zip(breaks) {
            let len = u32::try_from(b.len()).map_err(|_| PartError::Invalid {
                file: self.path.display().to_string(),
                message: format!("the input of case {k} is too large"),
            })?;
            let slot = self
                .index
                .get_mut(*k as usize)
                .filter(|e| e.at == UNSPILLED)
                .ok_or_else(|| PartError::Invalid {
                    file: self.path.display().to_string(),
                    message: format!("case {k} was spilled twice or is not a case"),
                })?;
            *slot = SpillEntry {
                at: self.len,
                len,
                brk,
            };
            self.w.write_all(&b).map_err(|e| werr(&self.path, e))?;
            self.len += u64::from(len);
        }
        Ok(())
    }

    /// The spill, written, to be read back: every case must have been spilled.
    pub(super) fn finish(mut self) -> Result<SpillReader, PartError> {
        self.w.flush().map_err(|e| werr(&self.path, e))?;
        if let Some(k) = self.index.iter().position(|e| e.at == UNSPILLED) {
            return Err(PartError::Invalid {
                file: self.path.display().to_string(),
                message: format!("case {k} of {} was never spilled", self.index.len()),
            });
        }
        let f = std::fs::File::open(&self.path).map_err(|e| werr(&self.path, e))?;
        Ok(SpillReader {
            r: std::io::BufReader::with_capacity(1 << 20, f),
            pos: 0,
            path: self.path,
            index: self.index,
        })
    }
}

/// Case inputs encoded for the spill ([`CaseSpill::encode`]): each one's bytes and its break.
pub(super) struct Encoded {
    bytes: Vec<Vec<u8>>,
    breaks: Vec<u64>,
}

/// Which break a case input is of, as a number (equal for the same key and start date).
pub(super) fn break_hash(key: &str, start: chrono::NaiveDate) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    start.hash(&mut h);
    h.finish()
}

pub(super) struct SpillReader {
    pub(super) path: PathBuf,
    pub(super) r: std::io::BufReader<std::fs::File>,
    pub(super) pos: u64,
    pub(super) index: Vec<SpillEntry>,
}

impl SpillReader {
    /// Each case's break, by place.
    pub(super) fn breaks(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.iter().map(|e| e.brk)
    }

    /// The inputs of the cases at places `group` (read in the file's order, handed back in the
    /// group's), their columns kept encoded.
    pub(super) fn take(
        &mut self,
        group: &[usize],
    ) -> Result<crate::pipeline::BreakInputs, crate::cases::CaseError> {
        use rayon::prelude::*;
        use std::io::{Read, Seek};
        let bad = |e: &dyn std::fmt::Display| {
            crate::cases::CaseError::Invalid(format!(
                "reading the merge's case inputs back from {}: {e}",
                self.path.display()
            ))
        };
        if let Some(k) = group.iter().find(|k| **k >= self.index.len()) {
            return Err(bad(&format_args!("case {k} is not in the spill")));
        }
        let mut by_at: Vec<usize> = (0..group.len()).collect();
        by_at.sort_unstable_by_key(|j| self.index[group[*j]].at);
        let mut raw: Vec<Vec<u8>> = vec![Vec::new(); group.len()];
        for j in by_at {
            let e = self.index[group[j]];
            if e.at != self.pos {
                let ahead = e.at.checked_sub(self.pos).filter(|d| *d < (1 << 20));
                match ahead {
                    Some(d) => self.r.seek_relative(d as i64),
                    None => self.r.seek(std::io::SeekFrom::Start(e.at)).map(|_| ()),
                }
                .map_err(|e| bad(&e))?;
            }
            let mut b = vec![0u8; e.len as usize];
            self.r.read_exact(&mut b).map_err(|e| bad(&e))?;
            self.pos = e.at + u64::from(e.len);
            raw[j] = b;
        }
        let decoded: Vec<(crate::cases::BreakInput, crate::cases::EncodedRow, bool)> = raw
            .par_iter()
            .map(|b| match b.split_first() {
                Some((auto, input)) => crate::cases::decode_input_row(input)
                    .map(|(input, row)| (input, row, *auto == 1))
                    .map_err(|e| bad(&e)),
                None => Err(bad(&"an empty record")),
            })
            .collect::<Result<_, _>>()?;
        drop(raw);
        Ok(decoded.into_iter().collect())
    }
}
