//! `P.table.bin` beside a CSV part `P`: the part's table as the merge reads it, typed, so that
//! the merge does not parse the CSV again. The CSV stays the part people open; the table file
//! names it by its length and SHA-256, and is used only for that very file. A part edited,
//! copied from another run, or whose table file is missing or damaged is read from its CSV, as
//! before, with the same checks and messages.
//!
//! Layout (little-endian): the magic `BDPTBL01`; the CSV's length (u64) and SHA-256 (32
//! bytes); the rows (u64) and columns (u32); then each column: its name (u32 length, UTF-8),
//! its type (u8 length, one of the meta file's type names), a validity flag (u8: 1 = a bitmap
//! of `rows` bits follows, a set bit for a value, 0 = every row has one), and its values:
//! `rows` values of the type's width for numbers (`date`: days as i32; `bool`: one byte), or
//! for text `rows + 1` offsets (u64) into the text that follows (u64 length, UTF-8). A null
//! takes a zero value or an empty text. Nothing follows the last column.

use super::*;

const MAGIC: &[u8; 8] = b"BDPTBL01";

/// `P.table.bin` beside a part `P`.
pub fn table_path(part: &Path) -> PathBuf {
    crate::output::sibling_path(part, "table", "bin")
}

/// A file's length and SHA-256, read in blocks.
fn fingerprint(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, h.finalize().into()))
}

/// The width in bytes of a number type's values (None: text).
fn width(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "bool" | "u8" | "i8" => 1,
        "u16" | "i16" => 2,
        "u32" | "i32" | "f32" | "date" => 4,
        "u64" | "i64" | "f64" => 8,
        _ => return None,
    })
}

/// Writes `P.table.bin` for the CSV part `part` just written from `table` (its columns
/// `cols`, as the meta file names them). The text is stored as reading the CSV gives it back
/// (cleaned as the CSV writer cleans it, see [`unneutralise`]).
pub(super) fn write_table_bin(
    part: &Path,
    table: &DataFrame,
    cols: &[PartColumn],
) -> Result<(), PartError> {
    let path = table_path(part);
    let fail = |e: &dyn std::fmt::Display| werr(&path, e);
    let (len, sha) = fingerprint(part).map_err(|e| werr(part, e))?;
    let rows = table.height();
    let mut w = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&path).map_err(|e| fail(&e))?,
    );
    let mut put = |bytes: &[u8]| w.write_all(bytes).map_err(|e| fail(&e));
    put(MAGIC)?;
    put(&len.to_le_bytes())?;
    put(&sha)?;
    put(&(rows as u64).to_le_bytes())?;
    put(&(cols.len() as u32).to_le_bytes())?;
    let mut bytes: Vec<u8> = Vec::new();
    for c in cols {
        let col = table
            .column(&c.name)
            .map_err(|e| fail(&e))?
            .as_materialized_series();
        put(&(c.name.len() as u32).to_le_bytes())?;
        put(c.name.as_bytes())?;
        put(&[c.dtype.len() as u8])?;
        put(c.dtype.as_bytes())?;
        let valid: Vec<bool> = match c.dtype.as_str() {
            "str" => col
                .str()
                .map_err(|e| fail(&e))?
                .iter()
                .map(|v| v.is_some())
                .collect(),
            _ => {
                let nulls = col.is_null();
                nulls.iter().map(|n| n != Some(true)).collect()
            }
        };
        if valid.iter().all(|v| *v) {
            put(&[0])?;
        } else {
            put(&[1])?;
            let mut bits = vec![0u8; rows.div_ceil(8)];
            for (i, v) in valid.iter().enumerate() {
                if *v {
                    bits[i / 8] |= 1 << (i % 8);
                }
            }
            put(&bits)?;
        }
        bytes.clear();
        match c.dtype.as_str() {
            "str" => {
                let ca = col.str().map_err(|e| fail(&e))?;
                let mut text: Vec<u8> = Vec::new();
                bytes.extend_from_slice(&0u64.to_le_bytes());
                for v in ca.iter() {
                    if let Some(v) = v {
                        text.extend_from_slice(unneutralise(&crate::text::csv_text(v)).as_bytes());
                    }
                    bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
                }
                bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
                bytes.extend_from_slice(&text);
            }
            "bool" => {
                let ca = col.bool().map_err(|e| fail(&e))?;
                bytes.extend(ca.iter().map(|v| u8::from(v == Some(true))));
            }
            "date" => {
                let days = col.cast(&DataType::Int32).map_err(|e| fail(&e))?;
                let ca = days.i32().map_err(|e| fail(&e))?;
                for v in ca.iter() {
                    bytes.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
                }
            }
            t => {
                macro_rules! numbers {
                    ($get:ident) => {{
                        let ca = col.$get().map_err(|e| fail(&e))?;
                        for v in ca.iter() {
                            bytes.extend_from_slice(&v.unwrap_or_default().to_le_bytes());
                        }
                    }};
                }
                match t {
                    "u8" => numbers!(u8),
                    "u16" => numbers!(u16),
                    "u32" => numbers!(u32),
                    "u64" => numbers!(u64),
                    "i8" => numbers!(i8),
                    "i16" => numbers!(i16),
                    "i32" => numbers!(i32),
                    "i64" => numbers!(i64),
                    "f32" => numbers!(f32),
                    "f64" => numbers!(f64),
                    other => {
                        return Err(fail(&format!(
                            "column {} has type {other}, which a part cannot carry",
                            c.name
                        )));
                    }
                }
            }
        }
        put(&bytes)?;
    }
    w.flush().map_err(|e| fail(&e))?;
    Ok(())
}

/// The bytes of a table file, taken in order; every length is checked against what is left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err(format!(
                "it ends inside {what} ({n} bytes wanted, {} left)",
                self.bytes.len()
            ));
        }
        let (a, b) = self.bytes.split_at(n);
        self.bytes = b;
        Ok(a)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }

    fn size(&mut self, count: usize, each: usize, what: &str) -> Result<&'a [u8], String> {
        let n = count
            .checked_mul(each)
            .ok_or_else(|| format!("{what}: {count} values of {each} bytes is too many"))?;
        self.take(n, what)
    }
}

/// The part's table from `P.table.bin`, when that file was written for this very CSV: None
/// when there is none or it names another file (the caller reads the CSV). An error says what
/// is wrong with a table file that names this CSV (the caller then reads the CSV too).
pub(super) fn read_table_bin(
    part: &Path,
    cols: &[PartColumn],
) -> Result<Option<DataFrame>, String> {
    let path = table_path(part);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => return Ok(None),
    };
    let mut r = Reader { bytes: &bytes };
    if r.take(8, "the magic")? != MAGIC {
        return Err("not a part's table file".into());
    }
    let len = r.u64("the part's length")?;
    let sha = r.take(32, "the part's digest")?;
    let (have_len, have_sha) = fingerprint(part).map_err(|e| e.to_string())?;
    if len != have_len || sha != have_sha {
        return Ok(None);
    }
    let rows = usize::try_from(r.u64("the row count")?).map_err(|e| e.to_string())?;
    let n = r.u32("the column count")? as usize;
    if n != cols.len() {
        return Err(format!(
            "{n} columns, and the meta file names {}",
            cols.len()
        ));
    }
    let mut out: Vec<Column> = Vec::with_capacity(n);
    for c in cols {
        let name_len = r.u32("a column's name")? as usize;
        let name = r.take(name_len, "a column's name")?;
        let dlen = r.take(1, "a column's type")?[0] as usize;
        let dtype = r.take(dlen, "a column's type")?;
        if name != c.name.as_bytes() || dtype != c.dtype.as_bytes() {
            return Err(format!(
                "column {:?} of type {:?} where the meta file has {} of type {}",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(dtype),
                c.name,
                c.dtype
            ));
        }
        let what = format!("column {}", c.name);
        let valid: Option<&[u8]> = match r.take(1, &what)?[0] {
            0 => None,
            1 => Some(r.take(rows.div_ceil(8), &what)?),
            v => return Err(format!("{what}: validity flag {v}")),
        };
        let is_valid = |i: usize| valid.is_none_or(|b| b[i / 8] & (1 << (i % 8)) != 0);
        let name: PlSmallStr = c.name.as_str().into();
        let col = match c.dtype.as_str() {
            "str" => {
                let ends = rows
                    .checked_add(1)
                    .ok_or_else(|| format!("{what}: {rows} rows is too many"))?;
                let offsets = r.size(ends, 8, &what)?;
                let text_len = usize::try_from(r.u64(&what)?).map_err(|e| e.to_string())?;
                let text = r.take(text_len, &what)?;
                let text = std::str::from_utf8(text)
                    .map_err(|e| format!("{what}: its text is not UTF-8 ({e})"))?;
                let at = |i: usize| {
                    let b = &offsets[i * 8..i * 8 + 8];
                    u64::from_le_bytes(b.try_into().unwrap_or_default())
                };
                let mut values: Vec<Option<&str>> = Vec::with_capacity(rows);
                for i in 0..rows {
                    let (a, b) = (at(i), at(i + 1));
                    let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) else {
                        return Err(format!("{what}: offset out of range"));
                    };
                    let v = text
                        .get(a..b)
                        .ok_or_else(|| format!("{what}: row {i} has offsets {a}..{b}"))?;
                    values.push(is_valid(i).then_some(v));
                }
                if at(rows) != text_len as u64 {
                    return Err(format!("{what}: its offsets do not end at its text's end"));
                }
                Column::new(name, values)
            }
            t => {
                let w = width(t).ok_or_else(|| format!("{what} has an unknown type {t}"))?;
                let data = r.size(rows, w, &what)?;
                macro_rules! numbers {
                    ($t:ty) => {
                        numbers!($t as $t)
                    };
                    // Read as $t, held as $held (a type polars builds a column of), then cast to
                    // the column's type.
                    ($t:ty as $held:ty) => {{
                        let v: Vec<Option<$held>> = data
                            .chunks_exact(w)
                            .enumerate()
                            .map(|(i, b)| {
                                is_valid(i).then(|| {
                                    <$held>::from(<$t>::from_le_bytes(
                                        b.try_into().unwrap_or_default(),
                                    ))
                                })
                            })
                            .collect();
                        let dtype = dtype_of(t).ok_or_else(|| format!("{what}: type {t}"))?;
                        Column::new(name.clone(), v)
                            .cast(&dtype)
                            .map_err(|e| format!("{what}: {e}"))?
                    }};
                }
                match t {
                    "bool" => Column::new(
                        name,
                        data.iter()
                            .enumerate()
                            .map(|(i, b)| is_valid(i).then_some(*b != 0))
                            .collect::<Vec<Option<bool>>>(),
                    ),
                    "u8" => numbers!(u8 as u32),
                    "u16" => numbers!(u16 as u32),
                    "u32" => numbers!(u32),
                    "u64" => numbers!(u64),
                    "i8" => numbers!(i8 as i32),
                    "i16" => numbers!(i16 as i32),
                    "i32" => numbers!(i32),
                    "i64" => numbers!(i64),
                    "f32" => numbers!(f32),
                    "f64" => numbers!(f64),
                    // Days, cast to a date.
                    "date" => numbers!(i32),
                    other => return Err(format!("{what} has an unknown type {other}")),
                }
            }
        };
        out.push(col);
    }
    if !r.bytes.is_empty() {
        return Err(format!("{} bytes after the last column", r.bytes.len()));
    }
    DataFrame::new(rows, out)
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table of every type a part carries, with nulls, empty text, formula-like text, a
    /// control character and line breaks.
    fn table() -> DataFrame {
        let n = 14;
        let text: Vec<Option<String>> = (0..n)
            .map(|i| match i % 7 {
                0 => None,
                1 => Some(String::new()),
                2 => Some(format!("=SUM(A{i})")),
                3 => Some(format!("line\nbreak, \"quoted\" {i}")),
                4 => Some(format!("bell\u{7} {i}")),
                5 => Some(format!("-{i}.5")),
                _ => Some(format!("é plain {i}")),
            })
            .collect();
        let maybe = |i: usize| i % 5 != 3;
        let cols = vec![
            Column::new("t".into(), text),
            Column::new(
                "f".into(),
                (0..n)
                    .map(|i| maybe(i).then_some(i as f64 / 3.0 - 4.0))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "g".into(),
                (0..n)
                    .map(|i| maybe(i).then_some(i as f32 * 0.25))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "i".into(),
                (0..n)
                    .map(|i| maybe(i).then_some(i as i64 - 20))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "k".into(),
                (0..n)
                    .map(|i| maybe(i).then_some(i as i32 * 1000))
                    .collect::<Vec<_>>(),
            ),
            Column::new("u".into(), (0..n).map(|i| i as u32).collect::<Vec<_>>()),
            Column::new("w".into(), (0..n).map(|i| i as u64 * 7).collect::<Vec<_>>()),
            Column::new(
                "b".into(),
                (0..n)
                    .map(|i| maybe(i).then_some(i % 2 == 0))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "d".into(),
                (0..n)
                    .map(|i| maybe(i).then_some(19_000 + i as i32))
                    .collect::<Vec<_>>(),
            )
            .cast(&DataType::Date)
            .unwrap(),
        ];
        DataFrame::new(n, cols).unwrap()
    }

    fn columns(df: &DataFrame) -> Vec<PartColumn> {
        df.columns()
            .iter()
            .map(|c| PartColumn {
                name: c.name().to_string(),
                dtype: dtype_name(c.dtype()).unwrap().to_string(),
            })
            .collect()
    }

    /// Writes `df` as a CSV part and its table file; the part's path.
    fn write(dir: &Path, df: &DataFrame) -> PathBuf {
        let part = dir.join("p.csv");
        crate::output::write_table(df, &part, Format::Csv).unwrap();
        write_table_bin(&part, df, &columns(df)).unwrap();
        part
    }

    #[test]
    fn the_table_file_reads_back_as_the_csv_part_does() {
        let dir = tempfile::tempdir().unwrap();
        let df = table();
        let part = write(dir.path(), &df);
        let cols = columns(&df);
        let from_bin = read_table_bin(&part, &cols)
            .unwrap()
            .expect("the table file is used");
        let from_csv = read_csv_typed(&part, &cols).expect("the CSV reads typed");
        assert_eq!(from_bin.height(), df.height());
        for c in &cols {
            let (a, b) = (
                from_bin.column(&c.name).unwrap(),
                from_csv.column(&c.name).unwrap(),
            );
            assert_eq!(a.dtype(), b.dtype(), "{}", c.name);
            assert!(
                a.as_materialized_series()
                    .equals_missing(b.as_materialized_series()),
                "{}: {a:?} vs {b:?}",
                c.name
            );
        }
    }

    #[test]
    fn a_table_file_of_another_csv_or_none_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let df = table();
        let part = write(dir.path(), &df);
        let cols = columns(&df);
        // The CSV edited (same length): the table file names the old one.
        let mut csv = std::fs::read(&part).unwrap();
        let at = csv.len() - 3;
        csv[at] = if csv[at] == b'1' { b'2' } else { b'1' };
        std::fs::write(&part, &csv).unwrap();
        assert!(read_table_bin(&part, &cols).unwrap().is_none());
        std::fs::remove_file(table_path(&part)).unwrap();
        assert!(read_table_bin(&part, &cols).unwrap().is_none());
    }

    /// A damaged table file that names its CSV is an error (the merge then reads the CSV),
    /// never a panic: cut at every length, every byte changed, bytes added, columns that are
    /// not the meta file's.
    #[test]
    fn a_damaged_table_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let df = table();
        let part = write(dir.path(), &df);
        let cols = columns(&df);
        let path = table_path(&part);
        let good = std::fs::read(&path).unwrap();
        let header = 8 + 8 + 32;
        for cut in header..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(read_table_bin(&part, &cols).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&path, &longer).unwrap();
        assert!(read_table_bin(&part, &cols).is_err());
        for at in header..good.len() {
            for x in [0x01u8, 0xFF] {
                let mut bad = good.clone();
                bad[at] ^= x;
                std::fs::write(&path, &bad).unwrap();
                // Some changes are still a table (a value, a validity bit); none panics, and
                // what reads has the meta file's columns and rows.
                if let Ok(Some(t)) = read_table_bin(&part, &cols) {
                    assert_eq!(t.height(), df.height(), "byte {at} ^ {x:#x}");
                    assert_eq!(t.width(), cols.len());
                }
            }
        }
        // Row counts no file could hold.
        for rows in [u64::MAX, u64::MAX / 8, 1 << 40] {
            let mut bad = good.clone();
            bad[header..header + 8].copy_from_slice(&rows.to_le_bytes());
            std::fs::write(&path, &bad).unwrap();
            assert!(read_table_bin(&part, &cols).is_err(), "{rows} rows");
        }
        std::fs::write(&path, &good).unwrap();
        let mut other = cols.clone();
        other[1].dtype = "i64".into();
        assert!(read_table_bin(&part, &other).is_err());
        assert!(read_table_bin(&part, &cols[1..]).is_err());
        assert!(read_table_bin(&part, &cols).unwrap().is_some());
    }
}
