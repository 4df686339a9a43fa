//! PLACEHOLDER (compile-only) until LOF lands; same API.
use super::matrix::Matrix;
use serde::{Deserialize, Serialize};
#[derive(Debug, thiserror::Error)]
#[error("lof not built yet")]
pub struct LofError;
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LofParams {
    pub n_neighbors: usize,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalOutlierFactor {
    nof: Vec<f64>,
}
impl LocalOutlierFactor {
    pub fn fit(_x: &Matrix, _p: &LofParams) -> Result<Self, LofError> {
        Err(LofError)
    }
    pub fn negative_outlier_factor(&self) -> &[f64] {
        &self.nof
    }
    pub fn score_samples(&self, _x: &Matrix) -> Result<Vec<f64>, LofError> {
        Err(LofError)
    }
}
