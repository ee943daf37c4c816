//! Reads documented curl commands: splits a shell script into commands and parses each one.
//!
//! Only what the documented examples use is understood (`-X`, `-H`, `-d` and their long
//! forms, plus a few flags that do not change the request); anything else is an error, so
//! an example the harness cannot replay faithfully is reported instead of half-sent.

use thiserror::Error;

/// One curl command, as written: variables are not expanded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlCommand {
    /// The HTTP method (`-X`), or `GET`/`POST` as curl infers it.
    pub method: String,
    /// The URL as written.
    pub url: String,
    /// Header lines (`-H`), split at the first colon, in order.
    pub headers: Vec<(String, String)>,
    /// The request body (`-d`), as written.
    pub body: Option<String>,
}

/// Why a curl command could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CurlError {
    /// The text is not valid shell words (an unclosed quote).
    #[error("cannot split into shell words: {0}")]
    Shell(String),
    /// The command does not start with `curl`.
    #[error("not a curl command: {0}")]
    NotCurl(String),
    /// An option the harness does not know how to replay.
    #[error("unsupported curl option {0}")]
    Unsupported(String),
    /// An option without its value.
    #[error("curl option {0} needs a value")]
    MissingValue(String),
    /// A header without a colon.
    #[error("malformed header {0:?}")]
    Header(String),
    /// No URL, or more than one.
    #[error("expected exactly one URL, found {0}")]
    Url(usize),
}

/// Splits a documented shell snippet into the curl commands it runs, in order.
///
/// Backslash-newline continuations are joined; blank lines, comment lines and `export`
/// lines (the documented `export INFRAI_API_KEY=...` setup) are dropped. Every remaining
/// logical line must be a curl command.
pub fn split_commands(script: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim_end();
        if current.is_empty() {
            let start = trimmed.trim_start();
            if start.is_empty() || start.starts_with('#') || start.starts_with("export ") {
                continue;
            }
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        commands.push(current);
    }
    commands
}

/// Parses one curl command line.
pub fn parse(command: &str) -> Result<CurlCommand, CurlError> {
    let words = shell_words::split(command).map_err(|err| CurlError::Shell(err.to_string()))?;
    let mut words = words.into_iter();
    match words.next() {
        Some(first) if first == "curl" => {}
        _ => return Err(CurlError::NotCurl(command.chars().take(40).collect())),
    }
    let mut method = None;
    let mut headers = Vec::new();
    let mut body: Option<String> = None;
    let mut urls = Vec::new();
    while let Some(word) = words.next() {
        let mut value = |flag: &str| words.next().ok_or_else(|| CurlError::MissingValue(flag.to_owned()));
        match word.as_str() {
            "-X" | "--request" => method = Some(value(&word)?),
            "-H" | "--header" => {
                let line = value(&word)?;
                let (name, val) = line.split_once(':').ok_or_else(|| CurlError::Header(line.clone()))?;
                headers.push((name.trim().to_owned(), val.trim().to_owned()));
            }
            "-d" | "--data" | "--data-raw" | "--data-binary" => {
                let data = value(&word)?;
                // curl joins repeated -d values with '&'.
                body = Some(match body {
                    Some(previous) => format!("{previous}&{data}"),
                    None => data,
                });
            }
            "-s" | "--silent" | "-S" | "--show-error" | "-f" | "--fail" | "-i" | "--include" | "-L" | "--location" => {}
            flag if flag.starts_with('-') => return Err(CurlError::Unsupported(flag.to_owned())),
            _ => urls.push(word),
        }
    }
    if urls.len() != 1 {
        return Err(CurlError::Url(urls.len()));
    }
    let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.to_owned());
    Ok(CurlCommand { method, url: urls.remove(0), headers, body })
}

/// The path and query of `url` (everything after the authority), or `url` itself when it
/// is already a path.
pub fn path_and_query(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else { return url };
    match rest.find('/') {
        Some(index) => &rest[index..],
        None => "/",
    }
}

/// Bodies up to this size are written into the command; longer ones are generated.
const INLINE_BODY: usize = 64 * 1024;

/// A request as a curl command a person can paste into a shell.
///
/// Each `(secret, variable)` of `secrets` is written as `"$variable"` wherever the secret
/// occurs, so a report never holds a key. A body over 64 KiB (too long for one shell
/// argument) is piped in: its longest run of one byte is generated with `head | tr`.
pub fn command(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    secrets: &[(&str, &str)],
) -> String {
    let mut lines = vec![format!("curl -sS -i -X {method} {}", shell_word(url, secrets))];
    for (name, value) in headers {
        lines.push(format!("  -H {}", shell_word(&format!("{name}: {value}"), secrets)));
    }
    let mut pipe = None;
    if let Some(body) = body {
        let text = String::from_utf8_lossy(body);
        if body.len() <= INLINE_BODY {
            lines.push(format!("  --data-binary {}", shell_word(&text, secrets)));
        } else {
            lines.push("  --data-binary @-".to_owned());
            pipe = Some(generator(body, secrets));
        }
    }
    let command = lines.join(" \\\n");
    match pipe {
        Some(generator) => format!("{generator} | \\\n{command}"),
        None => command,
    }
}

/// Runs of one ASCII byte at least this long are generated rather than written out.
const GENERATED_RUN: usize = 256;

/// A shell command group that prints `body`: each long run of one ASCII byte is produced
/// by `head -c N /dev/zero | tr`, the text between runs is printed as it is.
fn generator(body: &[u8], secrets: &[(&str, &str)]) -> String {
    let mut parts = Vec::new();
    let (mut literal, mut index) = (0, 0);
    while index < body.len() {
        let byte = body[index];
        let run = body[index..].iter().take_while(|next| **next == byte).count();
        if run >= GENERATED_RUN && byte.is_ascii() {
            if literal < index {
                parts.push(format!(
                    "printf %s {}",
                    shell_word(&String::from_utf8_lossy(&body[literal..index]), secrets)
                ));
            }
            let filler =
                if byte.is_ascii_alphanumeric() { char::from(byte).to_string() } else { format!("\\{byte:03o}") };
            parts.push(format!("head -c {run} /dev/zero | tr '\\0' '{filler}'"));
            literal = index + run;
        }
        index += run;
    }
    if literal < body.len() {
        parts.push(format!("printf %s {}", shell_word(&String::from_utf8_lossy(&body[literal..]), secrets)));
    }
    format!("{{ {}; }}", parts.join("; "))
}

/// `text` as one shell word: literal parts single-quoted, secrets as `"$VARIABLE"`.
fn shell_word(text: &str, secrets: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let next = secrets
            .iter()
            .filter(|(secret, _)| !secret.is_empty())
            .filter_map(|(secret, variable)| rest.find(secret).map(|at| (at, *secret, *variable)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, secret, variable)) = next else { break };
        if at > 0 {
            out.push_str(&single_quoted(&rest[..at]));
        }
        out.push_str(&format!("\"${variable}\""));
        rest = &rest[at + secret.len()..];
    }
    if !rest.is_empty() || out.is_empty() {
        out.push_str(&single_quoted(rest));
    }
    out
}

fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_hides_the_keys_behind_variables_and_quotes_the_rest() {
        let headers = vec![
            ("Authorization".to_owned(), "Bearer sk_123".to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ];
        let body = br#"{"a":"it's"}"#;
        let text = command("POST", "http://h/v1/p", &headers, Some(body), &[("sk_123", "REALTIME_API_KEY")]);
        assert_eq!(
            text,
            "curl -sS -i -X POST 'http://h/v1/p' \\\n  -H 'Authorization: Bearer '\"$REALTIME_API_KEY\" \\\n  \
             -H 'Content-Type: application/json' \\\n  --data-binary '{\"a\":\"it'\\''s\"}'"
        );
        assert!(!text.contains("sk_123"));
    }

    #[test]
    fn a_huge_body_is_generated_not_written_out() {
        let mut body = br#"{"d":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024));
        body.extend(br#""}"#);
        let text = command("POST", "http://h/", &[], Some(&body), &[]);
        assert!(text.len() < 300, "{text}");
        assert!(
            text.starts_with(r#"{ printf %s '{"d":"'; head -c 3145728 /dev/zero | tr '\0' 'x'; printf %s '"}'; } |"#),
            "{text}"
        );
        assert!(text.ends_with("--data-binary @-"), "{text}");
    }

    #[test]
    fn the_generated_body_is_the_body() {
        let body = format!(r#"{{"a":"it's","b":"{}","c":"{}"}}"#, "x".repeat(70_000), " ".repeat(300));
        let script = generator(body.as_bytes(), &[]);
        let output = std::process::Command::new("sh").arg("-c").arg(&script).output().expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&output.stdout), body, "{script}");
    }

    #[test]
    fn every_long_run_of_a_body_is_generated() {
        let padding = "x".repeat(9000);
        let message = format!(r#"{{"data":"{padding}"}}"#);
        let body = format!("[{}]", vec![message; 100].join(","));
        let text = command("POST", "http://h/", &[], Some(body.as_bytes()), &[]);
        assert!(text.len() < 10_000, "{} bytes", text.len());
        assert_eq!(text.matches("head -c 9000 /dev/zero").count(), 100);
        assert!(text.starts_with(r#"{ printf %s '[{"data":"'; head -c 9000"#), "{text}");
    }

    #[test]
    fn parses_a_documented_post_with_headers_and_body() {
        let text = "curl -X POST https://api.infrai.cc/v1/realtime/publish \\\n-H \"Authorization: Bearer $INFRAI_API_KEY\" \\\n-H \"Content-Type: application/json\" \\\n-d '{\"channel\": \"room-42\"}'\n";
        let commands = split_commands(text);
        assert_eq!(commands.len(), 1);
        let parsed = parse(&commands[0]).unwrap();
        assert_eq!(parsed.method, "POST");
        assert_eq!(parsed.url, "https://api.infrai.cc/v1/realtime/publish");
        assert_eq!(
            parsed.headers,
            vec![
                ("Authorization".to_owned(), "Bearer $INFRAI_API_KEY".to_owned()),
                ("Content-Type".to_owned(), "application/json".to_owned())
            ]
        );
        assert_eq!(parsed.body.as_deref(), Some("{\"channel\": \"room-42\"}"));
    }

    #[test]
    fn split_drops_comments_exports_and_blank_lines() {
        let text = "# 1) setup\nexport INFRAI_API_KEY=\"ifr_pk_proj_...\" # from the console\n\ncurl -X GET https://x/a \\\n-H \"A: b\"\n# 2) next\ncurl https://x/b\n";
        let commands = split_commands(text);
        assert_eq!(commands.len(), 2);
        assert_eq!(parse(&commands[1]).unwrap().method, "GET");
    }

    #[test]
    fn unknown_options_are_refused_not_ignored() {
        assert_eq!(parse("curl -F a=b https://x/"), Err(CurlError::Unsupported("-F".to_owned())));
        assert_eq!(parse("curl -X"), Err(CurlError::MissingValue("-X".to_owned())));
        assert_eq!(parse("wget https://x/"), Err(CurlError::NotCurl("wget https://x/".to_owned())));
        assert!(matches!(parse("curl 'https://x/"), Err(CurlError::Shell(_))));
    }

    #[test]
    fn path_and_query_strips_scheme_and_authority() {
        assert_eq!(path_and_query("https://api.infrai.cc/v1/a?b=1"), "/v1/a?b=1");
        assert_eq!(path_and_query("http://host"), "/");
        assert_eq!(path_and_query("/v1/a"), "/v1/a");
    }
}
