//! Byte-pushing helpers of the generator: numbers, CSV fields, comments (and their messy
//! wrapping), and the four textual date forms real extracts mix.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::excel_serial;

pub(super) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

pub(super) fn push_padded(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 24];
    let mut i = tmp.len();
    let mut x = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let start = i.min(tmp.len().saturating_sub(width));
    buf.extend_from_slice(&tmp[start..]);
}

pub(super) fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(buf, v.unsigned_abs());
}

/// Fixed-point value `v * 10^-scale`, trailing zeros trimmed down to `min_dec` decimals.
pub(super) fn push_fixed(buf: &mut Vec<u8>, v: i64, scale: u32, min_dec: u32) {
    if v < 0 {
        buf.push(b'-');
    }
    let a = v.unsigned_abs();
    let p = 10u64.pow(scale);
    push_u64(buf, a / p);
    let mut frac = a % p;
    let mut dec = scale;
    while dec > min_dec && frac.is_multiple_of(10) {
        frac /= 10;
        dec -= 1;
    }
    if dec > 0 {
        buf.push(b'.');
        push_padded(buf, frac, dec as usize);
    }
}

pub(super) fn push_cents(buf: &mut Vec<u8>, cents: i64) {
    push_fixed(buf, cents, 2, 2);
}

fn decimals_of(s: &str) -> usize {
    s.find('.').map_or(0, |p| s.len() - p - 1)
}

/// Writes `v * 10^-scale` as an f64 with representational noise
/// (e.g. `20000.010000000002`). A parser rounding to 6 decimals gets `v` back.
/// Falls back to the exact form where no such noise exists.
pub(super) fn push_noisy(buf: &mut Vec<u8>, v: i64, scale: u32, min_dec: u32) {
    let unit = 10f64.powi(-(scale as i32));
    let f = v as f64 * unit;
    if v != 0 && f.abs() < 1e9 {
        let mut s = f.to_string();
        if decimals_of(&s) <= 6 {
            s = f64::from_bits(f.to_bits() + 1).to_string();
        }
        let ok = s
            .parse::<f64>()
            .map(|p| (p / unit).round() as i64 == v && decimals_of(&s) > 6)
            .unwrap_or(false);
        if ok {
            buf.extend_from_slice(s.as_bytes());
            return;
        }
    }
    push_fixed(buf, v, scale, min_dec);
}

/// One CSV field, quoted per RFC 4180 when needed.
pub(super) fn push_field(buf: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        buf.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                buf.push(b'"');
            }
            buf.push(b);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

/// How a comment is wrapped in messy mode.
#[derive(Clone, Copy)]
pub(super) enum Wrap {
    Plain,
    Brace,
    BracketBrace,
}

pub(super) fn push_comment(buf: &mut Vec<u8>, c: &str, wrap: Wrap) {
    match wrap {
        Wrap::Plain => push_field(buf, c),
        Wrap::Brace => push_field(buf, &format!("{{\"{c}\"}}")),
        Wrap::BracketBrace => push_field(buf, &format!("[{{\"{c}\"}}]")),
    }
}

/// Chooses comment wrapping in messy mode; the first two comments are always
/// wrapped (one of each style) so a messy file with comments shows both.
pub(super) struct CommentWrapper {
    messy: bool,
    seen: u64,
}

impl CommentWrapper {
    pub(super) fn new(messy: bool) -> CommentWrapper {
        CommentWrapper { messy, seen: 0 }
    }

    pub(super) fn pick(&mut self, mrng: &mut ChaCha8Rng) -> Wrap {
        if !self.messy {
            return Wrap::Plain;
        }
        self.seen += 1;
        match self.seen {
            1 => Wrap::Brace,
            2 => Wrap::BracketBrace,
            _ => {
                let r: f64 = mrng.r#gen();
                if r < 0.12 {
                    Wrap::Brace
                } else if r < 0.20 {
                    Wrap::BracketBrace
                } else {
                    Wrap::Plain
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

/// One date in the four textual forms real extracts mix.
pub(super) struct DayFmt {
    pub(super) iso: String,
    pub(super) mdy: String,
    pub(super) dash: String,
    pub(super) serial: String,
}

pub(super) const FMT_ISO: u8 = 0;
const FMT_MDY: u8 = 1;
const FMT_DASH: u8 = 2;
pub(super) const FMT_SERIAL: u8 = 3;

impl DayFmt {
    pub(super) fn new(d: NaiveDate) -> DayFmt {
        DayFmt {
            iso: format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            mdy: format!("{}/{}/{}", d.month(), d.day(), d.year()),
            dash: format!("{:02}-{:02}-{:04}", d.month(), d.day(), d.year()),
            serial: excel_serial(d).to_string(),
        }
    }

    pub(super) fn get(&self, fmt: u8) -> &str {
        match fmt {
            FMT_MDY => &self.mdy,
            FMT_DASH => &self.dash,
            FMT_SERIAL => &self.serial,
            _ => &self.iso,
        }
    }
}

/// Date format for one messy cell: mostly ISO or M/D/YYYY.
pub(super) fn pick_date_fmt(mrng: &mut ChaCha8Rng) -> u8 {
    let r: f64 = mrng.r#gen();
    if r < 0.45 {
        FMT_ISO
    } else if r < 0.82 {
        FMT_MDY
    } else if r < 0.92 {
        FMT_DASH
    } else {
        FMT_SERIAL
    }
}

// ---------------------------------------------------------------------------
// Fixed-point arithmetic and timestamps
// ---------------------------------------------------------------------------

/// Rounded integer division (half away from zero).
pub(super) fn div_round(a: i64, b: i64) -> i64 {
    let q = a / b;
    let r = a % b;
    if r.abs() * 2 >= b.abs() {
        q + a.signum() * b.signum()
    } else {
        q
    }
}

/// `YYYY-MM-DD HH:MM:SS` of a day and a time of day in seconds.
pub(super) fn push_ts(line: &mut Vec<u8>, day: &DayFmt, secs: u32) {
    line.extend_from_slice(day.iso.as_bytes());
    line.push(b' ');
    push_padded(line, (secs / 3600) as u64, 2);
    line.push(b':');
    push_padded(line, (secs / 60 % 60) as u64, 2);
    line.push(b':');
    push_padded(line, (secs % 60) as u64, 2);
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::super::test_support::units;
    use super::*;

    #[test]
    fn helpers() {
        let d = NaiveDate::from_ymd_opt(2024, 4, 30).expect("date");
        assert_eq!(excel_serial(d), 45412);
        let f = DayFmt::new(NaiveDate::from_ymd_opt(2025, 2, 6).expect("date"));
        assert_eq!(f.iso, "2025-02-06");
        assert_eq!(f.mdy, "2/6/2025");
        assert_eq!(f.dash, "02-06-2025");
        let mut b = Vec::new();
        push_field(&mut b, "a,\"b\"");
        assert_eq!(b, b"\"a,\"\"b\"\"\"");
        for (v, s) in [
            (0i64, "0.00"),
            (-5, "-0.05"),
            (123_456, "1234.56"),
            (-100, "-1.00"),
        ] {
            let mut b = Vec::new();
            push_cents(&mut b, v);
            assert_eq!(String::from_utf8(b).expect("utf8"), s);
        }
        let mut b = Vec::new();
        push_fixed(&mut b, 101_500_000, 6, 2);
        assert_eq!(b, b"101.50");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20_000 {
            let v: i64 = rng.gen_range(-50_000_000_000..50_000_000_000);
            for (scale, min_dec) in [(2u32, 2u32), (6, 2), (0, 0)] {
                let mut b = Vec::new();
                push_noisy(&mut b, v, scale, min_dec);
                let s = String::from_utf8(b).expect("utf8");
                assert_eq!(units(&s, scale as i32), v, "{s}");
            }
        }
    }
}
