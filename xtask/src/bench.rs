//! `cargo xtask bench`: not written yet.

pub(crate) fn run(_args: Vec<String>) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask bench is not implemented yet")
}
