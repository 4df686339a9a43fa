//! The store as breakdesk wrote it at schema version 1 (models and llm_cache only), kept
//! unchanged so that tests can write a version 1 store exactly as that release did and check
//! that the current store migrates it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The schema this build writes.
pub const SCHEMA_VERSION: u32 = 1;

const META: &str = "meta";
const MODELS: &str = "models";
const LLM_CACHE: &str = "llm_cache";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store {path} is in use by another breakdesk process (close it, or pass --data-dir to use another store)"
    )]
    Locked { path: String },
    #[error("cannot open the store {path}: {message}")]
    Open { path: String, message: String },
    #[error(
        "the store {path} was written by a newer breakdesk (schema {found}, this build reads up to {supported})"
    )]
    TooNew {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("store error: {0}")]
    Engine(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

pub struct Store {
    db: sled::Db,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `<data_dir>/store`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join("store");
        let display = path.display().to_string();
        std::fs::create_dir_all(&path).map_err(|e| StoreError::Open {
            path: display.clone(),
            message: e.to_string(),
        })?;
        // A store that another process (or a just-dropped handle, whose background thread is
        // still finishing) holds is retried briefly before it is reported as in use.
        let mut wait = std::time::Duration::from_millis(25);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        let db = loop {
            match sled::Config::new().path(&path).open() {
                Ok(db) => break db,
                Err(e) => {
                    let m = e.to_string();
                    let lower = m.to_lowercase();
                    let locked = lower.contains("lock")
                        || lower.contains("resource temporarily unavailable");
                    if !locked {
                        return Err(StoreError::Open {
                            path: display.clone(),
                            message: m,
                        });
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: display.clone(),
                        });
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(std::time::Duration::from_millis(200));
                }
            }
        };
        let store = Store { db, path };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let meta = self.db.open_tree(META)?;
        let found = meta
            .get(b"schema_version")?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes);
        match found {
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::TooNew {
                path: self.path.display().to_string(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(v) if v == SCHEMA_VERSION => Ok(()),
            // A new store, or an older schema: migrations run here in order (none yet before 1).
            _ => {
                meta.insert(b"schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                self.db.flush()?;
                Ok(())
            }
        }
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let meta = self.db.open_tree(META)?;
        Ok(meta
            .get(b"schema_version")?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0))
    }

    /// Saves a model bundle under `name` (durable when this returns).
    pub fn put_model(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let t = self.db.open_tree(MODELS)?;
        t.insert(name.as_bytes(), bytes)?;
        t.flush()?;
        Ok(())
    }

    pub fn get_model(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.db.open_tree(MODELS)?;
        Ok(t.get(name.as_bytes())?.map(|v| v.to_vec()))
    }

    /// A cached LLM answer by its key (SHA-256 of prompt version, model and inputs).
    pub fn get_llm_answer(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
        let t = self.db.open_tree(LLM_CACHE)?;
        Ok(t.get(key)?.map(|v| v.to_vec()))
    }

    /// Caches LLM answers (durable when this returns).
    pub fn put_llm_answers(&self, answers: &[([u8; 32], Vec<u8>)]) -> Result<(), StoreError> {
        if answers.is_empty() {
            return Ok(());
        }
        let t = self.db.open_tree(LLM_CACHE)?;
        let mut batch = sled::Batch::default();
        for (k, v) in answers {
            batch.insert(&k[..], v.as_slice());
        }
        t.apply_batch(batch)?;
        t.flush()?;
        Ok(())
    }

    /// Number of cached LLM answers.
    pub fn llm_cache_len(&self) -> Result<usize, StoreError> {
        Ok(self.db.open_tree(LLM_CACHE)?.len())
    }

    pub fn model_names(&self) -> Result<Vec<String>, StoreError> {
        let t = self.db.open_tree(MODELS)?;
        let mut out = Vec::new();
        for kv in t.iter() {
            let (k, _) = kv?;
            out.push(String::from_utf8_lossy(&k).to_string());
        }
        Ok(out)
    }
}
