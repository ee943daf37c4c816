//! `cargo xtask clients`: not written yet.

pub(crate) fn run() -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask clients is not implemented yet")
}
