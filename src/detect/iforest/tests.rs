//! Unit tests of [`super`].

use super::*;
use rand::Rng;
use serde::Deserialize;

const CN_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/golden/iforest_cn.json"
));
const PARITY_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/golden/iforest_parity.json"
));

#[derive(Deserialize)]
struct CnFixture {
    n: Vec<usize>,
    c: Vec<f64>,
}

fn matrix(rows: &[Vec<f64>]) -> Matrix {
    let cols = rows.first().map_or(0, |r| r.len());
    Matrix::new(rows.len(), cols, rows.concat()).unwrap()
}

/// `n` rows of a standard Gaussian-ish blob (sum of uniforms) in `p` dims.
fn blob(n: usize, p: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            (0..p)
                .map(|_| (0..6).map(|_| rng.r#gen::<f64>()).sum::<f64>() - 3.0)
                .collect()
        })
        .collect()
}

fn params(n_estimators: usize, seed: u64) -> IForestParams {
    IForestParams {
        n_estimators,
        seed,
        ..Default::default()
    }
}

/// (edges to the leaf, leaf path value) of `row` in every tree.
fn paths(f: &IsolationForest, row: &[f64]) -> Vec<(u32, f64)> {
    let ni = f.n_internal();
    f.trees()
        .map(|(nodes, leaves)| {
            let (mut p, mut edges) = (0, 0);
            for _ in 0..f.depth {
                let n = nodes[p];
                edges += u32::from(n.is_split());
                p = 2 * p + 1 + usize::from(row[n.feature as usize] > n.threshold);
            }
            (edges, leaves[p - ni])
        })
        .collect()
}

#[test]
fn average_path_length_matches_sklearn() {
    let fx: CnFixture = serde_json::from_str(CN_JSON).unwrap();
    assert_eq!(fx.n.len(), fx.c.len());
    for (n, c) in fx.n.iter().zip(&fx.c) {
        let got = average_path_length(*n);
        assert!((got - c).abs() <= 1e-12, "c({n}) = {got}, sklearn {c}");
    }
}

#[test]
fn max_depth_is_ceil_log2() {
    for (m, d) in [
        (1, 1),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (255, 8),
        (256, 8),
        (257, 9),
    ] {
        assert_eq!(max_depth_for(m), d, "m = {m}");
    }
}

#[test]
fn same_forest_with_1_or_4_threads() {
    let mut rows = blob(3000, 5, 7);
    rows.extend(
        blob(30, 5, 8)
            .into_iter()
            .map(|r| r.iter().map(|v| v * 6.0).collect()),
    );
    let x = matrix(&rows);
    let p = IForestParams {
        n_estimators: 64,
        max_samples: MaxSamples::Count(300),
        max_features: 0.8,
        seed: 99,
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let f = IsolationForest::fit(&x, &p).unwrap();
            let s = f.score_samples(&x).unwrap();
            let (s2, a) = f.score_with_attributions(&x).unwrap();
            (s, s2, a)
        })
    };
    let (s1, s1b, a1) = run(1);
    let (s4, s4b, a4) = run(4);
    let bits = |v: &[f64]| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&s1), bits(&s4));
    assert_eq!(bits(&s1), bits(&s1b));
    assert_eq!(bits(&s4), bits(&s4b));
    assert_eq!(a1, a4);
    // A different seed gives a different forest.
    let other = IsolationForest::fit(&x, &IForestParams { seed: 100, ..p }).unwrap();
    assert_ne!(bits(&other.score_samples(&x).unwrap()), bits(&s1));
}

#[test]
fn row_by_row_equals_batch() {
    // 1,037 rows: full blocks, groups of eight and a remainder; one row alone takes the
    // remainder path only.
    let x = matrix(&blob(1037, 3, 12));
    let f = IsolationForest::fit(&x, &params(40, 4)).unwrap();
    let batch = f.score_samples(&x).unwrap();
    let (batch2, attr) = f.score_with_attributions(&x).unwrap();
    assert_eq!(batch.len(), 1037);
    for i in [0, 7, 8, 511, 512, 1031, 1036] {
        let one = x.select_rows(&[i]);
        assert_eq!(
            f.score_samples(&one).unwrap()[0].to_bits(),
            batch[i].to_bits()
        );
        let (s, a) = f.score_with_attributions(&one).unwrap();
        assert_eq!(s[0].to_bits(), batch2[i].to_bits());
        assert_eq!(a[0], attr[i]);
    }
}

#[test]
fn serde_round_trip_gives_identical_scores() {
    let x = matrix(&blob(500, 4, 3));
    let f = IsolationForest::fit(&x, &params(50, 5)).unwrap();
    let json = serde_json::to_string(&f).unwrap();
    let g: IsolationForest = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&g).unwrap(), json);
    let (a, b) = (f.score_samples(&x).unwrap(), g.score_samples(&x).unwrap());
    assert!(a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(g.n_features(), 4);
    assert_eq!(g.n_estimators(), 50);
    assert_eq!(g.max_samples_used(), 256);
    assert_eq!(g.params(), f.params());
}

#[test]
fn corrupt_model_is_an_error() {
    let x = matrix(&blob(40, 2, 3));
    let f = IsolationForest::fit(&x, &params(3, 5)).unwrap();
    let mut v = serde_json::to_value(&f).unwrap();
    v["features"][0] = serde_json::json!(7);
    let e = serde_json::from_value::<IsolationForest>(v).unwrap_err();
    assert!(e.to_string().contains("feature 7"), "{e}");
    let mut v = serde_json::to_value(&f).unwrap();
    v["leaf_bits"].as_array_mut().unwrap().pop();
    assert!(serde_json::from_value::<IsolationForest>(v).is_err());
    let mut v = serde_json::to_value(&f).unwrap();
    v["max_depth"] = serde_json::json!(70);
    assert!(serde_json::from_value::<IsolationForest>(v).is_err());
}

#[test]
fn constant_rows_score_alike() {
    let x = matrix(&vec![vec![1.5, -2.0, 0.0]; 50]);
    let f = IsolationForest::fit(&x, &params(20, 1)).unwrap();
    let s = f.score_samples(&x).unwrap();
    // Every tree is a single leaf of 50 rows: E[h] = c(50), score = -2^-1 (as sklearn),
    // up to the rounding of the sum over trees.
    assert!(s.iter().all(|v| *v == s[0]), "{s:?}");
    assert!((s[0] + 0.5).abs() < 1e-12, "{}", s[0]);
    let (s2, a) = f.score_with_attributions(&x).unwrap();
    assert_eq!(s, s2);
    assert!(a.iter().all(|r| r.iter().all(|v| *v == 0.0)));
    // A different point also has path c(50): the trees have no split.
    let other = Matrix::new(1, 3, vec![100.0, 100.0, 100.0]).unwrap();
    assert_eq!(f.score_samples(&other).unwrap(), vec![s[0]]);
}

#[test]
fn constant_features_are_never_split() {
    let mut rows = blob(300, 3, 11);
    for r in &mut rows {
        r.insert(1, 4.0);
    }
    let f = IsolationForest::fit(&matrix(&rows), &params(30, 2)).unwrap();
    assert!(f.nodes.iter().all(|n| !n.is_split() || n.feature != 1));
    assert!(f.nodes.iter().any(|n| n.is_split()));
}

#[test]
fn max_samples_resolution() {
    let x = matrix(&blob(100, 2, 1));
    let fit = |m: MaxSamples| {
        IsolationForest::fit(
            &x,
            &IForestParams {
                max_samples: m,
                ..params(5, 0)
            },
        )
    };
    assert_eq!(
        fit(MaxSamples::Count(1000)).unwrap().max_samples_used(),
        100
    );
    assert_eq!(fit(MaxSamples::Count(10)).unwrap().max_samples_used(), 10);
    assert_eq!(fit(MaxSamples::Auto).unwrap().max_samples_used(), 100);
    assert_eq!(
        fit(MaxSamples::Fraction(0.25)).unwrap().max_samples_used(),
        25
    );
    assert_eq!(
        fit(MaxSamples::Fraction(1.0)).unwrap().max_samples_used(),
        100
    );
    assert_eq!(
        fit(MaxSamples::Count(0)).unwrap_err(),
        IForestError::MaxSamplesCount
    );
    for bad in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            fit(MaxSamples::Fraction(bad)).unwrap_err(),
            IForestError::MaxSamplesFraction { .. }
        ));
    }
    let e = fit(MaxSamples::Fraction(0.001)).unwrap_err();
    assert!(matches!(
        e,
        IForestError::MaxSamplesTooFew { rows: 100, .. }
    ));
    let big = matrix(&blob(1000, 2, 1));
    let f = IsolationForest::fit(&big, &params(5, 0)).unwrap();
    assert_eq!((f.max_samples_used(), f.max_depth()), (256, 8));
}

#[test]
fn single_row() {
    let x = Matrix::new(1, 3, vec![1.0, 2.0, 3.0]).unwrap();
    let f = IsolationForest::fit(&x, &params(10, 0)).unwrap();
    assert_eq!(f.max_samples_used(), 1);
    let y = Matrix::new(2, 3, vec![1.0, 2.0, 3.0, -9.0, 9.0, 0.0]).unwrap();
    // sklearn: c(1) = 0, every score is -0.5.
    assert_eq!(f.score_samples(&y).unwrap(), vec![-0.5, -0.5]);
}

#[test]
fn depth_limit_is_respected() {
    let x = matrix(&blob(1000, 3, 4));
    let p = IForestParams {
        max_samples: MaxSamples::Count(16),
        ..params(100, 3)
    };
    let f = IsolationForest::fit(&x, &p).unwrap();
    assert_eq!(f.max_depth(), 4);
    let mut cut_by_limit = false;
    for i in 0..x.rows() {
        for (edges, value) in paths(&f, x.row(i)) {
            assert!(edges <= 4);
            // The leaf value is its depth plus c(size) with size in 1..=16.
            let rest = value - f64::from(edges);
            assert!(
                (1..=16).any(|s| (average_path_length(s) - rest).abs() < 1e-12),
                "leaf value {value} at depth {edges}"
            );
            cut_by_limit |= edges == 4 && rest > 0.0;
        }
    }
    assert!(cut_by_limit, "no leaf was cut by the depth limit");
}

#[test]
fn wrong_column_count_is_an_error() {
    let x = matrix(&blob(50, 3, 1));
    let f = IsolationForest::fit(&x, &params(5, 0)).unwrap();
    let y = matrix(&blob(5, 4, 1));
    let e = f.score_samples(&y).unwrap_err();
    assert_eq!(
        e,
        IForestError::FeatureMismatch {
            expected: 3,
            got: 4
        }
    );
    assert!(e.to_string().contains("3 features"), "{e}");
    assert!(f.score_with_attributions(&y).is_err());
    // No rows but the right width is fine.
    assert_eq!(
        f.score_samples(&Matrix::new(0, 3, vec![]).unwrap())
            .unwrap(),
        Vec::<f64>::new()
    );
}

#[test]
fn non_finite_input_is_an_error() {
    let mut rows = blob(20, 4, 1);
    rows[7][2] = f64::NAN;
    let e = IsolationForest::fit(&matrix(&rows), &params(5, 0)).unwrap_err();
    assert!(matches!(e, IForestError::NonFinite { row: 7, col: 2, .. }));
    let msg = e.to_string();
    assert!(msg.contains("row 7") && msg.contains("column 2"), "{msg}");
    rows[7][2] = 0.0;
    let f = IsolationForest::fit(&matrix(&rows), &params(5, 0)).unwrap();
    rows[3][0] = f64::NEG_INFINITY;
    let e = f.score_samples(&matrix(&rows)).unwrap_err();
    assert!(matches!(e, IForestError::NonFinite { row: 3, col: 0, .. }));
}

#[test]
fn parameter_errors() {
    let x = matrix(&blob(20, 2, 1));
    let e = IsolationForest::fit(&x, &params(0, 0)).unwrap_err();
    assert_eq!(e, IForestError::NoEstimators);
    let e = IsolationForest::fit(&x, &params(usize::MAX / 2, 0)).unwrap_err();
    assert!(matches!(e, IForestError::ForestTooLarge { .. }), "{e}");
    for bad in [0.0, 1.01, -1.0, f64::NAN] {
        let p = IForestParams {
            max_features: bad,
            ..params(5, 0)
        };
        assert!(matches!(
            IsolationForest::fit(&x, &p).unwrap_err(),
            IForestError::MaxFeatures(_)
        ));
    }
    let empty = Matrix::new(0, 3, vec![]).unwrap();
    let e = IsolationForest::fit(&empty, &params(5, 0)).unwrap_err();
    assert_eq!(e, IForestError::EmptyMatrix { rows: 0, cols: 3 });
    assert!(e.to_string().contains("empty"));
    let no_cols = Matrix::new(4, 0, vec![]).unwrap();
    assert!(IsolationForest::fit(&no_cols, &params(5, 0)).is_err());
}

#[test]
fn max_features_subsamples_per_tree() {
    let x = matrix(&blob(400, 5, 2));
    let p = IForestParams {
        max_features: 0.4,
        ..params(40, 1)
    };
    let f = IsolationForest::fit(&x, &p).unwrap();
    let ni = f.n_internal();
    let mut used_overall = std::collections::BTreeSet::new();
    for nodes in f.nodes.chunks(ni) {
        let used: std::collections::BTreeSet<u32> = nodes
            .iter()
            .filter(|n| n.is_split())
            .map(|n| n.feature)
            .collect();
        assert!(used.len() <= 2, "{used:?}");
        used_overall.extend(used);
    }
    assert_eq!(used_overall.len(), 5);
}

#[test]
fn outliers_score_lower() {
    let mut rows = blob(1000, 3, 5);
    rows.push(vec![8.0, -8.0, 8.0]);
    let x = matrix(&rows);
    let s = IsolationForest::fit(&x, &params(100, 0))
        .unwrap()
        .score_samples(&x)
        .unwrap();
    let min_inlier = s[..1000].iter().copied().fold(f64::INFINITY, f64::min);
    assert!(s[1000] < min_inlier, "{} vs {min_inlier}", s[1000]);
    assert!(s.iter().all(|v| (-1.0..=0.0).contains(v)));
    let d = decision(&s, OFFSET_AUTO);
    assert!(d[1000] < 0.0);
}

#[test]
fn attribution_finds_the_separating_feature() {
    let mut rows = blob(500, 5, 6);
    let mut out = vec![0.1, -0.2, 0.0, 0.3, 0.1];
    out[3] = 25.0;
    rows.push(out);
    let x = matrix(&rows);
    let f = IsolationForest::fit(&x, &params(200, 9)).unwrap();
    let (scores, attr) = f.score_with_attributions(&x).unwrap();
    let plain = f.score_samples(&x).unwrap();
    assert!(
        scores
            .iter()
            .zip(&plain)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    for a in &attr {
        assert!((a.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    let top = top_attributions(&attr[500], 2);
    assert_eq!(top[0].0, 3, "{:?}", attr[500]);
    assert!(top[0].1 > 0.5, "{:?}", attr[500]);
    assert!(top[0].1 >= top[1].1);
    // An inlier's isolation is spread over the features.
    assert!(attr[0].iter().all(|a| *a < 0.5), "{:?}", attr[0]);
}

#[test]
fn attribution_names_the_shifted_feature_of_golden_outliers() {
    #[derive(Deserialize)]
    struct Fx {
        x: Vec<Vec<f64>>,
        shifted_feature: Vec<i64>,
    }
    let fx: Fx = serde_json::from_str(PARITY_JSON).unwrap();
    let x = matrix(&fx.x);
    let f = IsolationForest::fit(&x, &params(200, 0)).unwrap();
    let (_, attr) = f.score_with_attributions(&x).unwrap();
    let (mut hits, mut total) = (0, 0);
    for (a, s) in attr.iter().zip(&fx.shifted_feature) {
        if let Ok(s) = usize::try_from(*s) {
            total += 1;
            hits += usize::from(top_attributions(a, 1)[0].0 == s);
        }
    }
    assert!(total >= 30);
    assert!(hits * 10 >= total * 9, "top-1 right for {hits} of {total}");
}

#[test]
fn top_attributions_orders_and_truncates() {
    let w = [0.1, 0.4, 0.0, 0.4, 0.1];
    assert_eq!(top_attributions(&w, 3), vec![(1, 0.4), (3, 0.4), (0, 0.1)]);
    assert_eq!(top_attributions(&w, 10).len(), 4);
    assert!(top_attributions(&w, 0).is_empty());
    assert!(top_attributions(&[0.0, 0.0], 2).is_empty());
}

#[test]
fn extreme_ranges_do_not_break_thresholds() {
    let rows = vec![
        vec![-f64::MAX, 0.0],
        vec![f64::MAX, 1.0],
        vec![0.0, 2.0],
        vec![1e300, 3.0],
    ];
    let x = matrix(&rows);
    let f = IsolationForest::fit(&x, &params(20, 0)).unwrap();
    let s = f.score_samples(&x).unwrap();
    assert!(s.iter().all(|v| v.is_finite()));
    assert!(f.nodes.iter().all(|n| !n.threshold.is_nan()));
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    for _ in 0..1000 {
        let t = draw_threshold(&mut rng, -f64::MAX, f64::MAX);
        assert!(t.is_finite() && t < f64::MAX);
        let t = draw_threshold(&mut rng, 1.0, 1.0 + f64::EPSILON);
        assert_eq!(t, 1.0);
    }
}
