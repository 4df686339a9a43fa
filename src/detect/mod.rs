//! Detection: scaling, Isolation Forest and Local Outlier Factor with scikit-learn's semantics,
//! contamination and offsets, KMeans patterns, and the saved model bundle.

pub mod cluster;
pub mod contamination;
pub mod exact;
pub mod feedback;
pub mod fitness;
pub mod iforest;
pub mod kdtree;
pub mod lof;
pub mod matrix;
pub mod model;
pub mod scaler;
pub mod triage;
