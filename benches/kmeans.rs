//! Benchmark: KMeans patterns on 1,000,000 rows × 12 features — fit on a 100k sample (one
//! seeded k-means++ run, k fixed at 8 and also chosen by the silhouette rule), then assign every
//! row. Then the k-means fit alone on 100,000 of the rows, by breakdesk's k-means and by
//! linfa-clustering's `KMeans` (the reference it reproduces: the centroids are checked to be the
//! same to the last bit), k = 8 and k = 3, best of 3 each, in the same run. Prints one JSON line
//! per variant.
//!
//!   cargo bench --bench kmeans

use breakdesk::detect::cluster::{self, ClusterParams};
use breakdesk::detect::matrix::Matrix;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() {
    let rows: usize = std::env::var("BREAKDESK_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cols = 12;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    // Five Gaussian-ish blobs plus noise.
    let centers: Vec<Vec<f64>> = (0..5)
        .map(|_| {
            (0..cols)
                .map(|_| rng.r#gen::<f64>() * 20.0 - 10.0)
                .collect()
        })
        .collect();
    let mut data = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        let c = &centers[i % 5];
        for v in c.iter() {
            data.push(v + rng.r#gen::<f64>() * 2.0 - 1.0);
        }
    }
    let x = Matrix::new(rows, cols, data).expect("matrix");
    for (label, k) in [("k=8", 8usize), ("k chosen", 0)] {
        let mut best = f64::INFINITY;
        let mut chosen = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let c = cluster::fit(
                &x,
                &ClusterParams {
                    k,
                    ..Default::default()
                },
            )
            .expect("fit");
            let a = c.assign(&x);
            let s = t.elapsed().as_secs_f64();
            assert_eq!(a.len(), rows);
            chosen = c.k;
            best = best.min(s);
        }
        println!(
            "{{\"variant\":\"{label}\",\"rows\":{rows},\"cols\":{cols},\"k\":{chosen},\"fit_assign_s\":{best:.3}}}"
        );
    }
    // The k-means fit alone, against the reference, on the same 100,000 rows.
    let sample_rows = rows.min(100_000);
    let sample =
        Matrix::new(sample_rows, cols, x.data()[..sample_rows * cols].to_vec()).expect("sample");
    for k in [8usize, 3] {
        let p = ClusterParams {
            k,
            sample: sample_rows,
            ..Default::default()
        };
        let (mut ours, mut theirs) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..3 {
            let t = Instant::now();
            let c = cluster::fit(&sample, &p).expect("fit");
            ours = ours.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let reference = linfa_fit(&sample, k, p.seed, p.max_iterations);
            theirs = theirs.min(t.elapsed().as_secs_f64());
            assert!(
                c.values
                    .iter()
                    .zip(&reference)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "the centroids differ from linfa-clustering's"
            );
        }
        println!(
            "{{\"variant\":\"fit only, k={k}\",\"rows\":{sample_rows},\"cols\":{cols},\"breakdesk_s\":{ours:.3},\"linfa_s\":{theirs:.3},\"ratio\":{:.1}}}",
            theirs / ours
        );
    }
}

/// linfa-clustering's `KMeans`: one seeded k-means++ run, as breakdesk configures it.
fn linfa_fit(x: &Matrix, k: usize, seed: u64, max_iterations: u64) -> Vec<f64> {
    use linfa::prelude::*;
    use linfa_clustering::{KMeans, KMeansInit};
    let arr =
        ndarray::Array2::from_shape_vec((x.rows(), x.cols()), x.data().to_vec()).expect("array");
    let ds = linfa::DatasetBase::from(arr);
    KMeans::params_with_rng(k, rand_xoshiro::Xoshiro256Plus::seed_from_u64(seed))
        .n_runs(1)
        .init_method(KMeansInit::KMeansPlusPlus)
        .max_n_iterations(max_iterations)
        .tolerance(1e-4)
        .fit(&ds)
        .expect("linfa fit")
        .centroids()
        .iter()
        .copied()
        .collect()
}
