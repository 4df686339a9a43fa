//! The layers of ARCHITECTURE.md, checked on the source: every `crate::module` a file of `src/`
//! names (outside comments) must point down, as the table below says.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where a top-level module of `src/` stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    /// Command line, terminal UI, service, and what only they use (`wiring` converts the
    /// configuration for them).
    Face,
    /// Runs the subsystems in order.
    Driver,
    /// A stage of the flow: it may import the stages before it (a lower number), not after.
    Subsystem(u8),
    Store,
    /// The configuration: imports nothing of the crate.
    Root,
    /// Shared helpers: import nothing of the crate.
    Leaf,
}

fn layer_of(module: &str) -> Option<Layer> {
    use Layer::*;
    Some(match module {
        "cli" | "tui" | "server" | "doctor" | "shipping" | "fuzzing" | "wiring" | "main" => Face,
        "pipeline" | "bounded" | "parts" | "realtime" | "cycle" | "evaluate" | "output" => Driver,
        "ingest" | "profile" => Subsystem(0),
        "features" | "routine" | "break_runs" => Subsystem(1),
        "detect" => Subsystem(2),
        "categorize" | "llm" => Subsystem(3),
        "cases" | "routing" | "feedback_file" => Subsystem(4),
        "dispatch" => Subsystem(5),
        "generate" => Subsystem(6),
        "store" => Store,
        "config" => Root,
        "expr" | "text" | "net" | "partition" | "logging" | "memory" | "linalg" | "header" => Leaf,
        _ => return None,
    })
}

/// Whether a module of layer `from` may import one of layer `to`.
fn allowed(from: Layer, to: Layer) -> bool {
    use Layer::*;
    match (from, to) {
        (Root | Leaf, _) => false,
        (_, Leaf) => true,
        (Face, _) => true,
        (_, Face | Root) => false,
        (Driver, _) => true,
        (Subsystem(a), Subsystem(b)) => b <= a,
        (Subsystem(_), Store) => true,
        (Subsystem(_), Driver) => false,
        (Store, _) => false,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names as `crate::module`, with the line, outside comments.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        // The code before a comment (a `//` inside a string cuts it short, which only loses
        // text, never invents an import).
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            // `a::crate::` (another path that ends in `crate`) is not ours.
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
        }
    }
    out
}

#[test]
fn imports_point_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut unknown = BTreeSet::new();
    let mut wrong = Vec::new();
    let mut seen = 0;
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src/");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" {
            continue;
        }
        let Some(from) = layer_of(&module) else {
            unknown.insert(module);
            continue;
        };
        let text = std::fs::read_to_string(path).expect("a source file");
        for (line, target) in imports(&text) {
            seen += 1;
            if target == module {
                continue;
            }
            let Some(to) = layer_of(&target) else {
                unknown.insert(target);
                continue;
            };
            if !allowed(from, to) {
                wrong.push(format!(
                    "{}:{line}: {module} ({from:?}) imports {target} ({to:?})",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        seen > 500,
        "only {seen} imports found: is the scan reading src/?"
    );
    assert!(
        unknown.is_empty(),
        "modules with no layer (add them to layer_of and ARCHITECTURE.md): {unknown:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_rules_refuse_what_the_architecture_forbids() {
    use Layer::*;
    assert!(!allowed(Root, Leaf), "config imports nothing");
    assert!(!allowed(Leaf, Leaf), "a leaf imports nothing");
    assert!(!allowed(Driver, Root) && !allowed(Subsystem(0), Root) && !allowed(Store, Root));
    assert!(!allowed(Driver, Face) && !allowed(Subsystem(5), Face));
    assert!(
        !allowed(Subsystem(1), Subsystem(2)),
        "features does not import detect"
    );
    assert!(
        allowed(Subsystem(2), Subsystem(1)),
        "detect imports features"
    );
    assert!(
        !allowed(Subsystem(5), Driver),
        "dispatch does not import cycle"
    );
    assert!(!allowed(Store, Subsystem(4)), "the store knows no case");
    assert!(allowed(Face, Root) && allowed(Face, Driver));
    assert_eq!(
        imports("use crate::cases::X; // crate::config\n    // crate::tui\nbreakdesk::crate::x"),
        vec![(1, "cases".to_string())]
    );
}
