//! The server's modules form a straight line: each imports only modules below it, so no
//! two files import each other and the domain never reaches up into the gateway.

use std::path::Path;

/// The modules from the bottom up; one may name (`crate::…`) only those before it.
/// Modules on one line are peers and do not name each other.
const LAYERS: &[&[&str]] = &[
    &["secret"],
    &["config"],
    &["logging", "metrics"],
    &["tokens", "vendors"],
    &["store"],
    &["hub"],
    &["broker"],
    &["service"],
    &["gateway", "pusher"],
    &["admin", "checkout", "console", "docs"],
    &["server"],
    &["testing"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_module_of_the_server_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.components().next().unwrap().as_os_str().to_str().unwrap().trim_end_matches(".rs");
        let Some(own) = layer_of(module) else { continue }; // lib.rs and main.rs sit on top
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("crate::") {
            let named: String = text[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if let Some(theirs) = layer_of(&named)
                && theirs >= own
                && named != module
            {
                upward.push(format!("{} names crate::{named}", relative.display()));
            }
        }
    }
    assert!(upward.is_empty(), "imports that do not run downward: {upward:#?}");
    for module in LAYERS.iter().flat_map(|layer| layer.iter()) {
        let exists = src.join(format!("{module}.rs")).exists();
        assert!(exists, "{module} is in LAYERS but not in src/: keep the list true");
    }
}
