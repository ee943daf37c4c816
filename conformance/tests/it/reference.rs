//! The reference server is certified, and a run is repeatable.

use realtime_conformance::{Kind, Outcome};

use crate::support::Target;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_passes_every_check() {
    let target = Target::reference().await;
    let report = target.certify_with(|config| config.require_full_coverage = true).await;
    let table = report.render_table();
    for check in &report.checks {
        match &check.outcome {
            Outcome::Pass => {}
            Outcome::Fail(mismatch) => panic!("{} failed: {mismatch}\n{table}", check.id),
            // Restarting needs the real binary: `cargo xtask conformance` runs these checks.
            Outcome::Skip(reason) if check.kind == Kind::Durability && reason.contains("no --restart-command") => {}
            Outcome::Skip(reason) => panic!("{} was skipped ({reason}) with every key given\n{table}", check.id),
        }
    }
    for kind in Kind::ALL.into_iter().filter(|kind| !kind.is_pusher() && *kind != Kind::Durability) {
        assert!(report.summary_of(kind).passed > 0, "no {} check passed\n{table}", kind.as_str());
    }
    let coverage = report.coverage.as_ref().expect("the report has the coverage");
    assert!(coverage.uncovered.is_empty(), "every reachable cell is covered\n{table}");
    assert_eq!(coverage.percent(), 100.0);
    assert!(table.contains("coverage 100.0%") && table.contains("not reachable from outside"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&report.render_json()).unwrap();
    assert_eq!(json["seed"], report.seed);
    assert!(json["coverage"]["unreachable"].as_array().is_some_and(|cells| !cells.is_empty()), "{json}");
    assert!(report.render_junit().contains(&format!(r#"<property name="seed" value="{}"/>"#, report.seed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_names_on_fresh_targets() {
    async fn names(seed: u64) -> Vec<String> {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let target = crate::support::Target::broken(move |_| {
            crate::support::Tamper::before(move |request| {
                if request.path == "/v1/realtime/channel/create" {
                    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
                    if let Some(name) = body["name"].as_str() {
                        record.lock().unwrap().push(name.to_owned());
                    }
                }
                None
            })
        })
        .await;
        let mut config = realtime_conformance::Config::new(&target.base_url, &target.funded_key);
        config.seed = seed;
        config.live_bound = std::time::Duration::from_secs(2);
        let report = realtime_conformance::run(&config).await.expect("the harness runs");
        assert_eq!(report.seed, seed);
        assert!(report.render_table().contains(&format!("seed {seed}")));
        seen.lock().unwrap().clone()
    }
    let first = names(42).await;
    assert!(first.len() > 5, "{first:?}");
    assert_eq!(first, names(42).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_the_same_target_gives_the_same_verdict() {
    let target = Target::reference().await;
    let first = target.certify().await;
    // The first run completed the checkout, so the zero-credit account now has credit; the
    // second run goes without it, and the checks that need it must say why they skip.
    let mut second = {
        let mut config = realtime_conformance::Config::new(&target.base_url, &target.funded_key);
        config.live_bound = std::time::Duration::from_secs(2);
        realtime_conformance::run(&config).await.expect("the harness runs")
    };
    let outcomes = |report: &realtime_conformance::Report| -> Vec<(String, &'static str)> {
        report
            .checks
            .iter()
            .filter(|check| !needs_second_account(check))
            .map(|check| {
                let label = match check.outcome {
                    Outcome::Pass => "pass",
                    Outcome::Fail(_) => "fail",
                    Outcome::Skip(_) => "skip",
                };
                (check.id.clone(), label)
            })
            .collect()
    };
    assert_eq!(outcomes(&first), outcomes(&second));
    second.checks.retain(needs_second_account);
    assert!(second.checks.len() >= 23, "{} checks need the second account", second.checks.len());
    for check in &second.checks {
        match &check.outcome {
            Outcome::Skip(reason) => assert!(reason.contains("no zero-credit key given"), "{reason}"),
            other => panic!("{} should be skipped without a zero-credit key, it is {other:?}", check.id),
        }
    }
}

/// The checks that need the zero-credit key (a second account).
fn needs_second_account(check: &realtime_conformance::Check) -> bool {
    matches!(check.kind, Kind::Credit | Kind::Tenancy)
        || check.id.starts_with("auth/another account")
        || check.id.contains("without credit is 402")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_credit_key_with_credit_fails_the_run_and_says_why() {
    let target = Target::reference().await;
    let mut config = realtime_conformance::Config::new(&target.base_url, &target.funded_key);
    config.zero_credit_api_key = Some(target.funded_key.clone());
    let report = realtime_conformance::run(&config).await.expect("the harness runs");
    let setup = report.check("credit/setup").expect("the setup is reported");
    match &setup.outcome {
        Outcome::Fail(reason) => assert!(reason.contains("has a balance of"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let check = report.check("credit/token.issue without credit is 402 INSUFFICIENT_CREDIT").expect("credit check");
    assert!(matches!(check.outcome, Outcome::Skip(_)), "{:?}", check.outcome);
}
