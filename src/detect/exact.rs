//! Exact f64 serialization for saved models: each float is written as its shortest
//! round-trip decimal string and parsed back with Rust's correctly rounded parser, so a saved
//! model scores bit-identically after loading (serde_json's default float parser can be one unit
//! in the last place off). Plain JSON numbers are accepted when reading.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

struct ExactF64(f64);

impl Serialize for ExactF64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:?}", self.0))
    }
}

impl<'de> Deserialize<'de> for ExactF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ExactF64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a float or a string holding a float")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ExactF64, E> {
                v.trim()
                    .parse::<f64>()
                    .map(ExactF64)
                    .map_err(|_| E::custom(format!("not a float: {v:?}")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ExactF64, E> {
                Ok(ExactF64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ExactF64, E> {
                Ok(ExactF64(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ExactF64, E> {
                Ok(ExactF64(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

pub mod vec {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for x in v {
            seq.serialize_element(&ExactF64(*x))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<f64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of floats")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Vec<f64>, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(ExactF64(x)) = a.next_element()? {
                    out.push(x);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}

pub mod matrix {
    use super::*;
    use crate::detect::matrix::Matrix;

    #[derive(Serialize)]
    struct Out<'a> {
        rows: usize,
        cols: usize,
        #[serde(with = "super::vec")]
        data: &'a [f64],
    }

    #[derive(Deserialize)]
    struct In {
        rows: usize,
        cols: usize,
        #[serde(with = "super::vec")]
        data: Vec<f64>,
    }

    pub fn serialize<S: Serializer>(m: &Matrix, s: S) -> Result<S::Ok, S::Error> {
        Out {
            rows: m.rows(),
            cols: m.cols(),
            data: m.data(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Matrix, D::Error> {
        let m = In::deserialize(d)?;
        Matrix::new(m.rows, m.cols, m.data).map_err(de::Error::custom)
    }
}

pub mod scalar {
    use super::*;

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        ExactF64(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        ExactF64::deserialize(d).map(|x| x.0)
    }
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        v.map(ExactF64).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<ExactF64>::deserialize(d).map(|x| x.map(|v| v.0))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "super::scalar")]
        a: f64,
        #[serde(with = "super::option")]
        b: Option<f64>,
        #[serde(with = "super::vec")]
        c: Vec<f64>,
    }

    #[test]
    fn floats_survive_json_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let c: Vec<f64> = (0..10_000)
            .map(|_| rng.r#gen::<f64>() * 10f64.powi(rng.gen_range(-12..12)))
            .collect();
        let t = T {
            a: 0.1 + 0.2,
            b: Some(-1.0 / 3.0),
            c,
        };
        let back: T = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back.a.to_bits(), t.a.to_bits());
        assert_eq!(back.b.unwrap().to_bits(), t.b.unwrap().to_bits());
        assert!(
            back.c
                .iter()
                .zip(&t.c)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
        let none: T = serde_json::from_str(r#"{"a": 1.5, "b": null, "c": [1, 2.5]}"#).unwrap();
        assert_eq!(none.b, None);
        assert_eq!(none.c, vec![1.0, 2.5]);
    }
}
