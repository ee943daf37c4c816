//! `cargo xtask conformance`: not written yet.

pub(crate) fn run(_args: Vec<String>) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask conformance is not implemented yet")
}
