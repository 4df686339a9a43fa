//! CSV reading: delimiter sniffing, encoding checks and a lazy polars scan that reads every
//! column as text (typing happens in `prepare`, where bad values can be reported per row).

mod bytes;
mod delimiter;
mod encoding;
mod reader;
mod scan;
mod split;

pub use delimiter::{parse_delimiter, sniff_delimiter, split_line};
pub use encoding::{ENCODINGS, Encoding};
pub use reader::read;
pub use split::{Split, SplitOptions, SplitPart, read_rows, split};
