//! Saved views of the records table: a name for its filters (expression, quick filters,
//! search), sort and column. Views come from the config (`[tui.views.NAME]`, read-only, shared
//! by a team) and from the store (saved in the UI with `save-view`, deleted with
//! `delete-view`); the palette lists both as `view: NAME`, and picking one applies it
//! ([`crate::tui::app::App::apply_view`]). Views name columns, not positions, so a view applies
//! to any file; what a file lacks is skipped and said so.

use crate::config::{Config, SavedView};
use crate::store::Store;

/// Where a view comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `[tui.views]` in the config: read-only in the UI.
    Config,
    /// Saved in the UI, kept in the store.
    Store,
}

impl Source {
    pub fn label(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Store => "saved",
        }
    }
}

/// A view with its name and origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub source: Source,
    pub view: SavedView,
}

/// The views of the config, then those of the store, each in name order. A stored view that
/// cannot be read is left out and named in the error (the others are listed).
pub fn list(cfg: &Config, store: &Store) -> (Vec<Named>, Option<String>) {
    let mut out: Vec<Named> = cfg
        .tui
        .views
        .iter()
        .map(|(name, view)| Named {
            name: name.clone(),
            source: Source::Config,
            view: view.clone(),
        })
        .collect();
    let mut error = None;
    match store.views() {
        Ok(stored) => {
            let mut bad = Vec::new();
            for (name, bytes) in stored {
                match from_bytes(&bytes) {
                    Ok(view) => out.push(Named {
                        name,
                        source: Source::Store,
                        view,
                    }),
                    Err(e) => bad.push(format!("{name:?} ({e})")),
                }
            }
            if !bad.is_empty() {
                error = Some(format!("saved views not readable: {}", bad.join(", ")));
            }
        }
        Err(e) => error = Some(format!("saved views: {e}")),
    }
    (out, error)
}

/// A view as stored.
pub fn to_bytes(view: &SavedView) -> Vec<u8> {
    serde_json::to_vec(view).unwrap_or_default()
}

/// A stored view.
pub fn from_bytes(bytes: &[u8]) -> Result<SavedView, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Saves (or replaces) a view in the store.
pub fn save(store: &Store, name: &str, view: &SavedView) -> Result<(), String> {
    store
        .put_view(name, &to_bytes(view))
        .map_err(|e| e.to_string())
}

/// Deletes a view of the store; whether there was one.
pub fn delete(store: &Store, name: &str) -> Result<bool, String> {
    store.delete_view(name).map_err(|e| e.to_string())
}

/// A view in one line: `difference > 1000 · severity High · sort difference ↓ · every row`.
pub fn describe(v: &SavedView) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !v.filter.trim().is_empty() {
        parts.push(v.filter.trim().to_string());
    }
    for (what, value) in [
        ("status", &v.status),
        ("bucket", &v.bucket),
        ("severity", &v.severity),
    ] {
        if !value.is_empty() {
            parts.push(format!("{what} {value}"));
        }
    }
    if let Some(k) = v.cluster {
        parts.push(format!("cluster {k}"));
    }
    if !v.search.is_empty() {
        parts.push(format!("/{}", v.search));
    }
    if !v.sort.is_empty() {
        parts.push(format!(
            "sort {} {}",
            v.sort,
            if v.descending { "↓" } else { "↑" }
        ));
    }
    if v.all_rows {
        parts.push("every row".into());
    }
    if parts.is_empty() {
        "the flagged rows, unfiltered".into()
    } else {
        parts.join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedView {
        SavedView {
            filter: "abs(difference) > 1000".into(),
            severity: "High".into(),
            cluster: Some(3),
            search: "drift".into(),
            sort: "difference".into(),
            descending: true,
            all_rows: true,
            column: "bucket".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_view_round_trips_through_the_store_and_is_listed_after_the_configs() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::defaults();
        cfg.tui.views.insert(
            "team".into(),
            SavedView {
                status: "pending".into(),
                ..Default::default()
            },
        );
        {
            let store = Store::open(dir.path()).unwrap();
            save(&store, "mine", &sample()).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let (views, error) = list(&cfg, &store);
        assert_eq!(error, None);
        assert_eq!(views.len(), 2);
        assert_eq!(
            (views[0].name.as_str(), views[0].source),
            ("team", Source::Config)
        );
        assert_eq!(views[1].name, "mine");
        assert_eq!(views[1].source, Source::Store);
        assert_eq!(views[1].view, sample());
        assert!(delete(&store, "mine").unwrap());
        assert!(!delete(&store, "mine").unwrap());
        assert_eq!(list(&cfg, &store).0.len(), 1);
    }

    #[test]
    fn an_unreadable_stored_view_is_named_and_the_others_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        save(&store, "good", &sample()).unwrap();
        store.put_view("broken", b"{\"sort\": 3}").unwrap();
        let (views, error) = list(&Config::defaults(), &store);
        assert_eq!(views.len(), 1);
        assert!(error.unwrap().contains("\"broken\""));
    }

    #[test]
    fn describe_says_what_the_view_does() {
        assert_eq!(
            describe(&sample()),
            "abs(difference) > 1000 · severity High · cluster 3 · /drift · sort difference ↓ · every row"
        );
        assert_eq!(
            describe(&SavedView::default()),
            "the flagged rows, unfiltered"
        );
    }
}
