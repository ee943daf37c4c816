//! How many WebSocket connections a target holds, as the target itself says: our server's
//! `realtime_connections` gauge at `/metrics`, the bare baseline's `/connections`, nchan's
//! `subscribers:` line at `nchan_stub_status`.

use anyhow::{Context, bail};

use crate::target::TargetKind;

/// Where a target's connection count is read, and how.
#[derive(Debug, Clone)]
pub struct Gauge {
    kind: TargetKind,
    url: String,
}

impl Gauge {
    pub fn new(kind: TargetKind, base_url: &str) -> anyhow::Result<Gauge> {
        let base = base_url.trim_end_matches('/');
        let url = match kind {
            TargetKind::Realtime => format!("{base}/metrics"),
            TargetKind::Baseline => format!("{base}/connections"),
            TargetKind::Nchan => format!("{base}/nchan_status"),
            TargetKind::Pusher | TargetKind::Sockudo => {
                bail!("the storm scenario drives ours, the bare baseline and nchan only")
            }
        };
        Ok(Gauge { kind, url })
    }

    /// The connections the target holds now.
    pub async fn read(&self, http: &reqwest::Client) -> anyhow::Result<u64> {
        let response = http.get(&self.url).send().await.with_context(|| format!("GET {}", self.url))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {} answered {status}", self.url);
        }
        parse(self.kind, &text).with_context(|| format!("no connection count in the answer of GET {}", self.url))
    }
}

/// The connection count in a target's answer.
fn parse(kind: TargetKind, text: &str) -> Option<u64> {
    match kind {
        TargetKind::Realtime => value_after(text, "realtime_connections "),
        TargetKind::Baseline => text.trim().parse().ok(),
        TargetKind::Nchan => value_after(text, "subscribers:"),
        TargetKind::Pusher | TargetKind::Sockudo => None,
    }
}

/// The number that follows `prefix` at the start of a line.
fn value_after(text: &str, prefix: &str) -> Option<u64> {
    let line = text.lines().find_map(|line| line.strip_prefix(prefix))?;
    // A gauge may be printed as a float by some encoders.
    let value: f64 = line.split_whitespace().next()?.parse().ok()?;
    (value >= 0.0).then_some(value as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_s_connection_count_is_read_from_its_own_format() {
        let metrics = "# HELP realtime_connections Live WebSocket connections on this node.\n\
                       # TYPE realtime_connections gauge\nrealtime_connections 9987\n\
                       realtime_connections_total 3\n# EOF\n";
        assert_eq!(parse(TargetKind::Realtime, metrics), Some(9987));
        assert_eq!(parse(TargetKind::Baseline, "42"), Some(42));
        let nchan = "total published messages: 0\nstored messages: 0\nshared memory used: 16K\n\
                     channels: 1\nsubscribers: 120\nredis pending commands: 0\n";
        assert_eq!(parse(TargetKind::Nchan, nchan), Some(120));
        assert_eq!(parse(TargetKind::Realtime, "# EOF\n"), None);
    }
}
