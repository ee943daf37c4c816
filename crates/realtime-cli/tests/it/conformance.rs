//! `realtime conformance`: the harness's flags and exit status (0 passed, 1 a check
//! failed, 2 the run could not start).

use crate::Cli;

#[tokio::test]
async fn conformance_against_an_unreachable_url_exits_2_and_says_so() {
    let cli = Cli::start().await;
    let ran = cli.run(&["conformance", "--base-url", "http://127.0.0.1:1"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(ran.stderr.contains("cannot reach http://127.0.0.1:1"), "{}", ran.stderr);
}

#[tokio::test]
async fn conformance_with_a_refused_key_exits_2_and_says_so() {
    let cli = Cli::start().await;
    // The server of --url, with the key of --api-key (the global flags), as other commands.
    let ran = cli.run(&["--api-key", "ifr_pk_proj_0000000000000000000000000000", "conformance"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(ran.stderr.contains("the key is refused"), "{}", ran.stderr);
}

#[tokio::test]
async fn conformance_takes_the_harness_flags() {
    let cli = Cli::start().await;
    let ran = cli.run(&["conformance", "--help"]).await;
    for flag in ["--base-url", "--profile", "--seed", "--restart-command", "--kill-command", "--report-json", "--junit"]
    {
        assert!(ran.stdout.contains(flag), "{flag} missing from:\n{}", ran.stdout);
    }
}
