//! How answers and errors are printed: aligned tables for people, JSON for scripts.

use std::io::Write;

use realtime_client::ClientError;
use serde::Serialize;
use serde_json::Value;

use crate::settings::SettingsError;

/// Where a command's answer goes, and in which form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    /// Prints one object: `field  value` lines, or the JSON body.
    pub(crate) fn object<T: Serialize>(&self, body: &T) -> anyhow::Result<()> {
        if self.json {
            return print_json(body);
        }
        let value = serde_json::to_value(body)?;
        let Value::Object(fields) = &value else {
            println!("{}", cell(&value));
            return Ok(());
        };
        let rows: Vec<Vec<String>> = fields.iter().map(|(name, value)| vec![name.clone(), cell(value)]).collect();
        print_rows(&rows);
        Ok(())
    }

    /// Prints a list of objects as a table with these columns, or the whole JSON body.
    pub(crate) fn table<T: Serialize, R: Serialize>(
        &self,
        body: &T,
        rows: &[R],
        columns: &[&str],
    ) -> anyhow::Result<()> {
        if self.json {
            return print_json(body);
        }
        if rows.is_empty() {
            println!("(none)");
            return Ok(());
        }
        let mut lines = vec![columns.iter().map(|column| column.to_ascii_uppercase()).collect::<Vec<_>>()];
        for row in rows {
            let row = serde_json::to_value(row)?;
            lines.push(columns.iter().map(|column| row.get(*column).map(cell).unwrap_or_default()).collect());
        }
        print_rows(&lines);
        Ok(())
    }
}

/// Pretty JSON in the field order of the wire type.
fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// A value as one table cell: strings bare, absent values empty, the rest as compact JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn format_rows(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|index| rows.iter().filter_map(|row| row.get(index)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (index, value) in row.iter().enumerate() {
            if index + 1 == row.len() {
                line.push_str(value);
            } else {
                line.push_str(&format!("{value:<width$}  ", width = widths[index]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn print_rows(rows: &[Vec<String>]) {
    print!("{}", format_rows(rows));
}

/// The exit code of a failure (see the `--help` text). The first error of the chain that
/// says what kind of failure it is decides: context added on the way up says nothing, and
/// a failure kept as the source of another (a token the subscriber could not get because
/// the server did not answer) keeps its code.
pub(crate) fn exit_code(error: &anyhow::Error) -> i32 {
    error.chain().find_map(code_of).unwrap_or(1)
}

/// The exit code `cause` stands for, when its type says.
fn code_of(cause: &(dyn std::error::Error + 'static)) -> Option<i32> {
    if cause.is::<UsageError>() || cause.is::<SettingsError>() {
        return Some(2);
    }
    if cause.is::<Unreachable>() {
        return Some(3);
    }
    match cause.downcast_ref::<ClientError>()? {
        ClientError::Api { .. } => Some(1),
        ClientError::Transport { .. } => Some(3),
        ClientError::Decode { .. } => Some(4),
        ClientError::Config(_) => Some(2),
    }
}

/// A command line or settings mistake: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// A request outside the typed client (the admin API) got no answer: exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("no answer from {url}")]
pub(crate) struct Unreachable {
    /// The URL that was called.
    pub(crate) url: String,
    /// Why: connection refused, timeout, DNS.
    #[source]
    pub(crate) source: reqwest::Error,
}

/// Prints a failure to stderr: a problem's title, code, detail and offending values, or
/// the error chain.
pub(crate) fn report(error: &anyhow::Error, json: bool) {
    let mut stderr = std::io::stderr().lock();
    // Writing to stderr can only fail when it is closed, and then nobody is listening.
    let _ = match error.downcast_ref::<ClientError>().and_then(ClientError::problem) {
        Some(problem) if json => serde_json::to_writer_pretty(&mut stderr, problem)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(stderr)),
        Some(problem) => {
            let mut text = format!("error: {} ({}, HTTP {})\n", problem.title, problem.code, problem.status);
            if let Some(detail) = &problem.detail {
                text.push_str(&format!("  {detail}\n"));
            }
            for field in &problem.errors {
                text.push_str(&format!("  {}: {}\n", field.pointer, field.detail));
            }
            if problem.topup_url.is_some() {
                text.push_str("  add credit with: realtime account topup --amount 5000000\n");
            }
            if let Some(request_id) = &problem.request_id {
                text.push_str(&format!("  request id: {request_id}\n"));
            }
            stderr.write_all(text.as_bytes())
        }
        None => {
            let mut text = format!("error: {error}\n");
            for cause in error.chain().skip(1) {
                text.push_str(&format!("  caused by: {cause}\n"));
            }
            stderr.write_all(text.as_bytes())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_lines_not_padded() {
        let rows = vec![
            vec!["NAME".to_owned(), "TYPE".to_owned(), "X".to_owned()],
            vec!["room-42".to_owned(), "presence".to_owned(), String::new()],
        ];
        assert_eq!(format_rows(&rows), "NAME     TYPE      X\nroom-42  presence\n");
    }

    #[test]
    fn cells_show_strings_bare_and_lists_joined() {
        assert_eq!(cell(&serde_json::json!("a")), "a");
        assert_eq!(cell(&serde_json::json!(["a", "b"])), "a,b");
        assert_eq!(cell(&serde_json::json!({"k": 1})), "{\"k\":1}");
        assert_eq!(cell(&Value::Null), "");
    }

    #[test]
    fn the_exit_code_is_the_first_known_kind_of_the_error_chain() {
        let usage = anyhow::Error::new(UsageError("bad flag".into())).context("while running");
        assert_eq!(exit_code(&usage), 2, "a context says nothing");
        let missing = anyhow::Error::new(SettingsError::Missing { path: "/nowhere".into() });
        assert_eq!(exit_code(&missing), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("anything else")), 1);
    }
}
