//! The reference server is certified, and a run is repeatable.

use realtime_conformance::{Kind, Outcome};

use crate::support::Target;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_passes_every_check() {
    let target = Target::reference().await;
    let report = target.certify().await;
    let table = report.render_table();
    for check in &report.checks {
        match &check.outcome {
            Outcome::Pass => {}
            Outcome::Fail(mismatch) => panic!("{} failed: {mismatch}\n{table}", check.id),
            Outcome::Skip(reason) => panic!("{} was skipped ({reason}) with every key given\n{table}", check.id),
        }
    }
    for kind in Kind::ALL.into_iter().filter(|kind| !kind.is_pusher()) {
        assert!(report.summary_of(kind).passed > 0, "no {} check passed\n{table}", kind.as_str());
    }
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
            .filter(|check| check.kind != Kind::Credit && !check.id.starts_with("auth/another account"))
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
    second.checks.retain(|check| check.kind == Kind::Credit || check.id.starts_with("auth/another account"));
    assert_eq!(second.checks.len(), 16);
    for check in &second.checks {
        match &check.outcome {
            Outcome::Skip(reason) => assert!(reason.contains("no zero-credit key given"), "{reason}"),
            other => panic!("{} should be skipped without a zero-credit key, it is {other:?}", check.id),
        }
    }
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
