//! A dense row-major matrix of f64: the one input type of every detector (it lives in the leaf
//! [`crate::linalg`], which the features write it from).

pub use crate::linalg::Matrix;
