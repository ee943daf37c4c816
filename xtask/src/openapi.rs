//! `cargo xtask openapi [--check]`: write or check the committed contract documents.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The committed documents and the text they must hold.
fn documents() -> Vec<(PathBuf, String)> {
    let dir = workspace_root().join("openapi");
    vec![
        (dir.join("realtime.openapi.json"), realtime_api::openapi_json()),
        (dir.join("realtime.asyncapi.json"), realtime_api::asyncapi_json()),
    ]
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

pub(crate) fn run(check: bool) -> anyhow::Result<()> {
    let mut stale = Vec::new();
    for (path, generated) in documents() {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed == generated {
            println!("fresh  {}", path.display());
            continue;
        }
        if check {
            println!("stale  {}", path.display());
            print_diff(&committed, &generated);
            stale.push(path);
        } else {
            std::fs::write(&path, generated).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote  {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!("{} document(s) differ from the code: run `cargo xtask openapi` to update", stale.len());
    }
    Ok(())
}

fn print_diff(committed: &str, generated: &str) {
    let diff = similar::TextDiff::from_lines(committed, generated);
    print!("{}", diff.unified_diff().context_radius(3).header("committed", "generated"));
}
