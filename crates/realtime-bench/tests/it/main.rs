//! The load generators against the bare baseline, on loopback, with small bounded loads.

use std::net::SocketAddr;

use realtime_bench::fanout::{self, FanoutArgs};
use realtime_bench::publish::{self, PublishArgs, PublishTarget};
use realtime_bench::storm::{self, DropMode, StormArgs};
use realtime_bench::target::TargetKind;

/// Serves the baseline on a thread of its own for the rest of the test process.
fn baseline() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            realtime_bench::baseline::serve(listener).await.unwrap();
        });
    });
    addr
}

#[test]
fn every_subscriber_receives_every_publish_of_the_baseline_once() {
    let addr = baseline();
    let args = FanoutArgs {
        kind: TargetKind::Baseline,
        base_url: format!("http://{addr}"),
        sub_base_url: None,
        admin_secret: None,
        subscribers: 50,
        publishes: 20,
        rate: 100.0,
        pad_bytes: 16,
        server_pids: vec![std::process::id()],
        source_ip: "127.0.0.1".parse().unwrap(),
        connect_concurrency: 50,
        subs_per_token: 100,
        settle_ms: 10,
        drain_secs: 10,
        deadline_secs: 60,
        pusher: Default::default(),
    };
    let result = fanout::run(&args).unwrap();
    assert_eq!(result.errors, Vec::<String>::new());
    assert_eq!((result.connected, result.published), (50, 20));
    assert_eq!((result.expected, result.received, result.lost), (1000, 1000, 0));
    assert_eq!(result.duplicates, 0);
    // Open loop: every publish was offered, and its latency counts from its scheduled time.
    assert_eq!(result.send_lag.count, 20);
    assert!(result.latency.p50_ms >= result.send_lag.p50_ms);
    assert_eq!(result.latency.count, 1000);
    assert_eq!(result.fanout_complete.count, 20);
}

#[test]
fn publish_load_counts_every_answered_request() {
    let addr = baseline();
    let args = PublishArgs {
        kind: PublishTarget::Noop,
        base_url: format!("http://{addr}"),
        admin_secret: None,
        concurrency: 4,
        requests: 200,
        warmup: 10,
        max_secs: 30,
        server_pids: vec![],
    };
    let result = publish::run(&args).unwrap();
    assert_eq!((result.ok, result.failures), (200, 0));
    assert_eq!(result.latency.count, 200);
}

#[test]
fn a_storm_subscribes_everyone_and_each_mass_disconnect_drains_the_baseline_to_zero() {
    let addr = baseline();
    let args = StormArgs {
        kind: TargetKind::Baseline,
        base_url: format!("http://{addr}"),
        admin_secret: None,
        subscribers: 50,
        concurrency: None,
        probe_every_ms: 20,
        probe_secs: 0.2,
        drain_secs: 10,
        subs_per_token: 100,
        source_ip: "127.0.0.1".parse().unwrap(),
        deadline_secs: 60,
    };
    let result = storm::run(&args).unwrap();
    assert_eq!(result.errors, Vec::<String>::new());
    assert_eq!((result.storm.connected, result.storm.failures), (50, 0));
    assert_eq!(result.storm.subscribe.count, 50);
    let modes: Vec<DropMode> = result.disconnects.iter().map(|d| d.mode).collect();
    assert_eq!(modes, [DropMode::Reset, DropMode::CloseFrame]);
    for d in &result.disconnects {
        assert_eq!((d.dropped, d.probes, d.probe_failures, d.probe.count), (50, 10, 0, 10));
        assert!(d.to_zero_secs.is_some(), "{d:?}");
    }
}
