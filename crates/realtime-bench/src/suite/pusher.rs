//! The Pusher scenario: the fan-out over Pusher's protocol 7 and signed HTTP API
//! triggers, against our server's Pusher face and sockudo, in the same run.
//!
//! Both servers get the same app ([`crate::pusher::PusherApp::default`]); ours through
//! `vendors.pusher`, which gives the dev account of a fresh store that app.

use super::{Load, Suite};
use crate::pusher;
use crate::report::{FanoutGroup, Lost, thousands};
use crate::target::TargetKind;

const KINDS: [TargetKind; 2] = [TargetKind::Pusher, TargetKind::Sockudo];

/// The environment that gives our server the bench's Pusher app.
pub(super) fn ours_env() -> Vec<(&'static str, String)> {
    vec![
        // Quoted: the server reads an unquoted number as an integer, and wants a string here.
        ("REALTIME_VENDORS__PUSHER__APP_ID", format!("\"{}\"", pusher::APP_ID)),
        ("REALTIME_VENDORS__PUSHER__KEY", pusher::KEY.to_owned()),
        ("REALTIME_VENDORS__PUSHER__SECRET", pusher::SECRET.to_owned()),
    ]
}

/// The loads, with whether a lost message is an error: 20/s at 1,000 subscribers is the
/// load sockudo was measured at before (peers.md sec. 5a) and every target keeps up with
/// it; 100/s offers more than sockudo delivered there, so that delivered msg/s compares
/// capacity, and a target past its saturation point reports its losses as figures.
fn loads(quick: bool) -> Vec<(Load, Lost)> {
    if quick {
        vec![(Load { subscribers: 1000, publishes: 100, rate: 20.0 }, Lost::Error)]
    } else {
        vec![
            (Load { subscribers: 1000, publishes: 200, rate: 20.0 }, Lost::Error),
            (Load { subscribers: 1000, publishes: 400, rate: 100.0 }, Lost::Figure),
        ]
    }
}

impl Suite {
    /// One group per load, each with ours and sockudo's rows (sockudo's says why when it
    /// is not installed).
    pub(super) fn pusher_groups(&mut self) -> Vec<FanoutGroup> {
        let mut groups = Vec::new();
        for (load, lost) in loads(self.quick) {
            let title = format!(
                "Pusher protocol fan-out: {} subscribers, {} signed triggers at {}/s offered ({} msgs)",
                thousands(load.subscribers as u64),
                load.publishes,
                load.rate,
                thousands(load.subscribers as u64 * load.publishes)
            );
            groups.extend(self.fanout_groups(&[(title, load)], &KINDS, lost));
        }
        groups
    }
}
