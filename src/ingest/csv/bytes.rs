//! A CSV line's delimiters and quotes found sixteen bytes at a time (SSE2 on x86-64, which
//! every x86-64 processor has), with a portable version of each for other machines. The
//! passes over a whole file (the shape of its records, a partition's key) use them; each
//! gives exactly what a byte-by-byte loop gives (the tests compare them on random lines).

/// How many bytes of `line` are `delim`, when `line` holds no quote (`"`); None when it does.
pub(super) fn delims_unless_quoted(line: &[u8], delim: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::delims_unless_quoted(line, delim)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        portable::delims_unless_quoted(line, delim)
    }
}

/// The spans (start, end) of the first `fields` fields of `line` pushed onto `spans` (fewer
/// when the line has fewer fields; the last one found then ends at the line's end), when none
/// of them holds a quote; false when one does (a quote after the last of them does not count).
pub(super) fn leading_spans(
    line: &[u8],
    delim: u8,
    fields: usize,
    spans: &mut Vec<(usize, usize)>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::leading_spans(line, delim, fields, spans)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        portable::leading_spans(line, delim, fields, spans)
    }
}

/// Byte by byte: the reference, and what machines other than x86-64 use.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
mod portable {
    pub(super) fn delims_unless_quoted(line: &[u8], delim: u8) -> Option<usize> {
        let mut n = 0;
        for &b in line {
            if b == b'"' {
                return None;
            }
            n += usize::from(b == delim);
        }
        Some(n)
    }

    pub(super) fn leading_spans(
        line: &[u8],
        delim: u8,
        fields: usize,
        spans: &mut Vec<(usize, usize)>,
    ) -> bool {
        fields == 0 || spans_from(line, delim, fields, spans, spans.len(), (0, 0))
    }

    /// [`leading_spans`] from byte `at` of `line`, the field being read starting at `start`,
    /// with the spans found since `found` (the length of `spans` before the line) counted.
    pub(super) fn spans_from(
        line: &[u8],
        delim: u8,
        fields: usize,
        spans: &mut Vec<(usize, usize)>,
        found: usize,
        (mut start, at): (usize, usize),
    ) -> bool {
        for (i, &b) in line.iter().enumerate().skip(at) {
            if b == delim {
                spans.push((start, i));
                start = i + 1;
                if spans.len() - found == fields {
                    return true;
                }
            } else if b == b'"' {
                return false;
            }
        }
        spans.push((start, line.len()));
        true
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cvtsi128_si64, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_sad_epu8, _mm_set1_epi8, _mm_setzero_si128,
        _mm_sub_epi8, _mm_unpackhi_epi64,
    };

    /// The bits of the bytes of `line[at..at + 16]` that are `d`, and of those that are `q`.
    #[inline]
    fn masks(line: &[u8], at: usize, d: __m128i, q: __m128i) -> (u32, u32) {
        let block = &line[at..at + 16];
        // SAFETY: SSE2 is part of x86-64; `block` holds the 16 bytes loaded (unaligned).
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, d)) as u32,
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, q)) as u32,
            )
        }
    }

    #[inline]
    fn splat(b: u8) -> __m128i {
        // SAFETY: SSE2 is part of x86-64.
        unsafe { _mm_set1_epi8(b as i8) }
    }

    /// 0xFF in the last 16 bytes: loaded from offset k, the mask of a block's last k bytes.
    static TAIL: [u8; 32] = {
        let mut m = [0u8; 32];
        let mut i = 16;
        while i < 32 {
            m[i] = 0xFF;
            i += 1;
        }
        m
    };

    /// The sum of the 16 bytes of `v`.
    #[inline]
    fn byte_sum(v: __m128i) -> usize {
        // SAFETY: SSE2 is part of x86-64.
        unsafe {
            let s = _mm_sad_epu8(v, _mm_setzero_si128());
            (_mm_cvtsi128_si64(s) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s))) as usize
        }
    }

    pub(super) fn delims_unless_quoted(line: &[u8], delim: u8) -> Option<usize> {
        let n = line.len();
        if n < 16 {
            return super::portable::delims_unless_quoted(line, delim);
        }
        let (d, q) = (splat(delim), splat(b'"'));
        let load = |at: usize| {
            let block = &line[at..at + 16];
            // SAFETY: SSE2 is part of x86-64; `block` holds the 16 bytes loaded (unaligned).
            unsafe { _mm_loadu_si128(block.as_ptr().cast::<__m128i>()) }
        };
        // SAFETY (every block below): SSE2 is part of x86-64.
        let (mut counts, mut quotes) = unsafe { (_mm_setzero_si128(), _mm_setzero_si128()) };
        let mut total = 0;
        let mut at = 0;
        let mut blocks = 0;
        while at + 16 <= n {
            let v = load(at);
            unsafe {
                // A match is -1: subtracted, it counts one in its byte.
                counts = _mm_sub_epi8(counts, _mm_cmpeq_epi8(v, d));
                quotes = _mm_or_si128(quotes, _mm_cmpeq_epi8(v, q));
            }
            at += 16;
            blocks += 1;
            // A byte's count stays below 256.
            if blocks == 255 {
                total += byte_sum(counts);
                counts = unsafe { _mm_setzero_si128() };
                blocks = 0;
            }
        }
        if at < n {
            // The last 16 bytes, those already counted masked out.
            let v = load(n - 16);
            let fresh = &TAIL[n - at..n - at + 16];
            unsafe {
                let m = _mm_loadu_si128(fresh.as_ptr().cast::<__m128i>());
                counts = _mm_sub_epi8(counts, _mm_and_si128(_mm_cmpeq_epi8(v, d), m));
                quotes = _mm_or_si128(quotes, _mm_cmpeq_epi8(v, q));
            }
        }
        if unsafe { _mm_movemask_epi8(quotes) } != 0 {
            return None;
        }
        Some(total + byte_sum(counts))
    }

    pub(super) fn leading_spans(
        line: &[u8],
        delim: u8,
        fields: usize,
        spans: &mut Vec<(usize, usize)>,
    ) -> bool {
        if fields == 0 {
            return true;
        }
        let (d, q) = (splat(delim), splat(b'"'));
        let found = spans.len();
        let mut start = 0;
        let mut at = 0;
        while at + 16 <= line.len() {
            let (mut md, mq) = masks(line, at, d, q);
            // The delimiters before the block's first quote.
            if mq != 0 {
                md &= (1u32 << mq.trailing_zeros()) - 1;
            }
            while md != 0 {
                let i = at + md.trailing_zeros() as usize;
                md &= md - 1;
                spans.push((start, i));
                start = i + 1;
                if spans.len() - found == fields {
                    return true;
                }
            }
            if mq != 0 {
                return false;
            }
            at += 16;
        }
        // The last bytes, one at a time.
        super::portable::spans_from(line, delim, fields, spans, found, (start, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random lines of every length up to 70 bytes, made of delimiters, quotes and the bytes
    /// next to them in value (`-` is `,` ^ 1, `\xac` is `,` | 0x80, `\xa2` is `"` | 0x80); a
    /// third of them hold no quote, so that blocks without one are common.
    fn lines() -> Vec<Vec<u8>> {
        let alphabet = [
            b',', b';', b'"', b'-', b'+', b'a', b' ', 0xac, 0xa2, 0x00, 0xff, b'#', b'\t',
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..30_000)
            .map(|k| {
                let len = (next() % 70) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .map(|b| if b == b'"' && k % 3 == 0 { b'a' } else { b })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn delimiters_counted_by_blocks_are_those_counted_byte_by_byte() {
        let mut unquoted = 0;
        for line in lines() {
            for delim in [b',', b';', b'\t'] {
                let want = portable::delims_unless_quoted(&line, delim);
                unquoted += usize::from(want.is_some());
                assert_eq!(delims_unless_quoted(&line, delim), want, "{line:?} {delim}");
            }
        }
        assert!(unquoted > 30_000, "{unquoted} lines without a quote");
    }

    #[test]
    fn spans_found_by_blocks_are_those_found_byte_by_byte() {
        let mut found = 0;
        for (k, line) in lines().into_iter().enumerate() {
            for delim in [b',', b';'] {
                let fields = k % 9;
                // Spans already held are kept.
                let mut fast = vec![(7, 7)];
                let mut slow = vec![(7, 7)];
                let a = leading_spans(&line, delim, fields, &mut fast);
                let b = portable::leading_spans(&line, delim, fields, &mut slow);
                assert_eq!(a, b, "{line:?} {delim} {fields}");
                if b {
                    found += 1;
                    assert_eq!(fast, slow, "{line:?} {delim} {fields}");
                }
            }
        }
        assert!(found > 20_000, "{found} lines with their spans");
    }

    #[test]
    fn delimiters_are_counted_in_lines_of_any_length() {
        for n in [
            0usize, 1, 15, 16, 17, 31, 32, 33, 64, 100, 300, 1000, 4079, 4080, 4081, 9000,
        ] {
            let line: Vec<u8> = (0..n)
                .map(|i| if i % 3 == 0 { b',' } else { b'a' })
                .collect();
            assert_eq!(
                delims_unless_quoted(&line, b','),
                Some(n.div_ceil(3)),
                "{n}"
            );
            // A quote anywhere is seen.
            for at in [0, n / 2, n.saturating_sub(1)]
                .into_iter()
                .filter(|at| *at < n)
            {
                let mut quoted = line.clone();
                quoted[at] = b'"';
                assert_eq!(delims_unless_quoted(&quoted, b','), None, "{n} {at}");
            }
        }
        // Nothing but the delimiter: more than a byte's count, over more than 255 blocks.
        for n in [1000, 4080, 4096, 4097, 10_000] {
            assert_eq!(delims_unless_quoted(&vec![b','; n], b','), Some(n), "{n}");
        }
    }
}
