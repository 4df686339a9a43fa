//! Helpers shared by the benchmarks.

use breakdesk::detect::matrix::Matrix;
use std::path::Path;

/// Reads a CSV of floats: a header of column names, then rows.
pub fn read_float_csv(path: &Path) -> Result<Matrix, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let cols = lines
        .next()
        .ok_or_else(|| format!("{} is empty", path.display()))?
        .split(',')
        .count();
    let mut data = Vec::new();
    let mut rows = 0;
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let before = data.len();
        for field in line.split(',') {
            let v: f64 = field
                .trim()
                .parse()
                .map_err(|_| format!("line {}: not a number: {field:?}", i + 2))?;
            data.push(v);
        }
        if data.len() - before != cols {
            return Err(format!(
                "line {}: {} fields, header has {cols}",
                i + 2,
                data.len() - before
            ));
        }
        rows += 1;
    }
    Matrix::new(rows, cols, data)
}
