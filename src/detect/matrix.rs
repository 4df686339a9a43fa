//! A dense row-major matrix of f64: the one input type of every detector (it lives in the leaf
//! [`crate::linalg`], which the features write it from).

pub use crate::linalg::Matrix;

/// Training rows' features as they were computed, before scaling: a row-major matrix, or the
/// feature columns themselves (each as long as the rows) when the caller scaled the rows as it
/// gathered them and never wrote the unscaled matrix.
#[derive(Debug, Clone, Copy)]
pub enum Unscaled<'a> {
    Rows(&'a Matrix),
    Columns {
        rows: usize,
        columns: &'a [&'a [f64]],
    },
}

impl<'a> From<&'a Matrix> for Unscaled<'a> {
    fn from(m: &'a Matrix) -> Self {
        Unscaled::Rows(m)
    }
}

impl Unscaled<'_> {
    pub fn rows(&self) -> usize {
        match self {
            Unscaled::Rows(m) => m.rows(),
            Unscaled::Columns { rows, .. } => *rows,
        }
    }

    pub fn cols(&self) -> usize {
        match self {
            Unscaled::Rows(m) => m.cols(),
            Unscaled::Columns { columns, .. } => columns.len(),
        }
    }

    /// Calls `f` with each value of rows `from..to`, row by row, in column order within a row
    /// (the order of a row-major matrix's data).
    pub fn for_each_in_rows(&self, from: usize, to: usize, mut f: impl FnMut(f64)) {
        match self {
            Unscaled::Rows(m) => {
                for r in from..to {
                    m.row(r).iter().for_each(|v| f(*v));
                }
            }
            Unscaled::Columns { columns, .. } => {
                for r in from..to {
                    columns.iter().for_each(|c| f(c[r]));
                }
            }
        }
    }

    /// The value at row `r`, column `j`.
    pub fn get(&self, r: usize, j: usize) -> f64 {
        match self {
            Unscaled::Rows(m) => m.row(r)[j],
            Unscaled::Columns { columns, .. } => columns[j][r],
        }
    }
}
