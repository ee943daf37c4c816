//! Strict settings: the real binary refuses what it does not know, naming it and the
//! nearest key it knows, and `check-config` says so without starting.

use std::process::Command;

fn check(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_realtime-server"));
    command.arg("check-config").args(args).current_dir(dir.path()).env("RUST_BACKTRACE", "0");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

#[test]
fn the_defaults_and_the_client_tools_variables_pass_check_config() {
    let (ok, said) = check(&[], &[("REALTIME_URL", "http://127.0.0.1:8080"), ("REALTIME_API_KEY", "ifr_pk_proj_x")]);
    assert!(ok, "{said}");
    assert!(said.contains("valid"), "{said}");
}

#[test]
fn a_numeric_pusher_app_id_passes_check_config() {
    let (ok, output) = check(&[], &[("REALTIME_VENDORS__PUSHER__APP_ID", "123456")]);
    assert!(ok, "{output}");
}

#[test]
fn a_misspelt_variable_is_refused_with_the_key_it_meant() {
    let (ok, said) = check(&[], &[("REALTIME_GATWAY__OUTBOUND_QUEUE", "3")]);
    assert!(!ok);
    assert!(said.contains("gatway.outbound_queue") && said.contains("did you mean `gateway.outbound_queue`"), "{said}");
}

#[test]
fn a_misspelt_key_in_the_file_is_refused_with_the_key_it_meant() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.toml");
    std::fs::write(&file, "history_per_chanel = 5\n").unwrap();
    let (ok, said) = check(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(said.contains("history_per_chanel") && said.contains("`history_per_channel`"), "{said}");
}

#[test]
fn a_config_that_is_missing_or_not_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().join("nowhere.toml"), dir.path().to_owned()] {
        let (ok, said) = check(&["--config", path.to_str().unwrap()], &[]);
        assert!(!ok && said.contains(path.to_str().unwrap()), "{said}");
    }
    let (ok, said) = check(&["--config"], &[]);
    assert!(!ok && said.contains("--config needs a file"), "{said}");
}

#[test]
fn the_console_and_the_dev_checkout_are_on_by_default_only_on_a_loopback_address() {
    let on = |overrides: serde_json::Value| {
        let config = realtime_server::Config::with(overrides).unwrap();
        (config.console, config.dev_checkout)
    };
    assert_eq!(on(serde_json::json!({})), (true, true), "the dev defaults listen on 127.0.0.1");
    assert_eq!(on(serde_json::json!({"listen": "[::1]:8080"})), (true, true));
    assert_eq!(on(serde_json::json!({"listen": "0.0.0.0:8080"})), (false, false), "a deployed server");
    assert_eq!(on(serde_json::json!({"listen": "0.0.0.0:8080", "console": true})), (true, false), "unless told");
    assert_eq!(on(serde_json::json!({"console": false})), (false, true));
}

#[test]
fn check_config_takes_the_console_and_the_dev_checkout_as_settings() {
    let (ok, said) = check(&[], &[("REALTIME_LISTEN", "0.0.0.0:8080"), ("REALTIME_CONSOLE", "true")]);
    assert!(ok, "{said}");
}

#[test]
fn help_lists_every_key_with_its_default_and_meaning() {
    let output = Command::new(env!("CARGO_BIN_EXE_realtime-server")).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let docs = realtime_server::config::key_docs();
    for key in realtime_server::config::known_keys() {
        let doc = docs.iter().find(|doc| doc.key == key).unwrap_or_else(|| panic!("{key} has no meaning"));
        let line = help
            .lines()
            .find(|line| line.split_whitespace().next() == Some(key.as_str()))
            .unwrap_or_else(|| panic!("--help does not list {key}:\n{help}"));
        assert!(line.contains(&doc.default) && line.contains(doc.meaning), "{key}: {line}");
        assert!(doc.meaning.split_whitespace().count() >= 3, "{key} needs a meaning, not a word: {line}");
    }
}

#[test]
fn a_log_setting_that_is_not_a_tracing_filter_is_refused() {
    let (ok, said) = check(&[], &[("REALTIME_LOG", "realtime_server=loud")]);
    assert!(!ok, "{said}");
    assert!(said.contains("log = \"realtime_server=loud\" is not a tracing filter"), "{said}");
}

/// The README's table of settings, between its two markers.
const README_TABLE_START: &str = "<!-- settings: generated from config/keys.rs; a test holds it equal -->\n";
const README_TABLE_END: &str = "<!-- end of settings -->";

#[test]
fn the_readme_lists_every_key_with_its_default_and_meaning() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let expected = realtime_server::config::markdown_table();
    let table = readme
        .split_once(README_TABLE_START)
        .and_then(|(_, rest)| rest.split_once(README_TABLE_END))
        .map(|(table, _)| table);
    assert_eq!(table, Some(expected.as_str()), "put this between the README's markers:\n{expected}");
    for key in realtime_server::config::known_keys() {
        assert!(expected.contains(&format!("| `{key}` |")), "{key}");
    }
}
