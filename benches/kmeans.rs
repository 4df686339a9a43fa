//! Benchmark: KMeans patterns on 1,000,000 rows × 12 features — fit on a 100k sample (one
//! seeded k-means++ run, k fixed at 8 and also chosen by the silhouette rule), then assign every
//! row. Prints one JSON line per variant.
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
}
