//! `GET /docs`: the committed OpenAPI document as one self-contained HTML page (no
//! script, no CDN, nothing fetched), rendered once at start from the same document
//! `/openapi.json` serves: every operation by tag with its parameters, request body,
//! responses and a curl example built from the schemas' examples, then every schema.

use std::sync::Arc;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::{Map, Value};

/// The `/docs` route.
pub fn router() -> Router {
    let document: Value = serde_json::from_str(&realtime_api::openapi_json()).expect("the document is JSON");
    let page: Arc<str> = Arc::from(render(&document).into_string());
    Router::new().route("/docs", get(move || async move { Html(page.to_string()) }))
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}\
code,pre{font:13px/1.45 ui-monospace,monospace}pre{background:#f4f5f7;padding:.75rem;overflow-x:auto;border-radius:4px}\
.op{border-top:1px solid #dde;padding-top:.5rem;margin-top:1.5rem}.method{font-weight:700;text-transform:uppercase;margin-right:.5rem}\
.deprecated{color:#a33;font-size:.85em}table{border-collapse:collapse}td,th{border:1px solid #dde;padding:.25rem .5rem;vertical-align:top;text-align:left}";

/// The methods an operation may have, in the order they are shown.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// One operation of the document.
struct Operation<'a> {
    method: &'a str,
    path: &'a str,
    spec: &'a Map<String, Value>,
}

impl Operation<'_> {
    fn id(&self) -> &str {
        self.spec.get("operationId").and_then(Value::as_str).unwrap_or(self.path)
    }

    fn text(&self, field: &str) -> &str {
        self.spec.get(field).and_then(Value::as_str).unwrap_or("")
    }
}

fn operations(document: &Value) -> Vec<Operation<'_>> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in METHODS {
            if let Some(spec) = item.get(method).and_then(Value::as_object) {
                found.push(Operation { method, path, spec });
            }
        }
    }
    found
}

/// The name a `$ref` points to (`#/components/schemas/Name` → `Name`).
fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.rsplit('/').next()
}

/// A link to the schema of a body, or its type when it is inline.
fn schema_link(schema: &Value) -> Markup {
    match ref_name(schema) {
        Some(name) => html! { a href={ "#schema-" (name) } { code { (name) } } },
        None => html! { code { (schema.get("type").map(Value::to_string).unwrap_or_default()) } },
    }
}

/// The example of a schema: its own, else one built from its properties' examples.
fn example(document: &Value, schema: &Value) -> Option<Value> {
    let schema = match ref_name(schema) {
        Some(name) => &document["components"]["schemas"][name],
        None => schema,
    };
    if let Some(example) = schema.get("example") {
        return Some(example.clone());
    }
    let properties = schema.get("properties")?.as_object()?;
    let built: Map<String, Value> = properties
        .iter()
        .filter_map(|(name, property)| Some((name.clone(), property.get("example")?.clone())))
        .collect();
    (!built.is_empty()).then_some(Value::Object(built))
}

/// A curl command for the operation, from the request body's example.
fn curl(document: &Value, operation: &Operation<'_>) -> String {
    let mut lines = vec![format!("curl -X {} \"$REALTIME_URL{}\"", operation.method.to_uppercase(), operation.path)];
    if operation.spec.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty()) {
        lines.push("  -H \"Authorization: Bearer $REALTIME_API_KEY\"".to_owned());
    }
    let body =
        &operation.spec.get("requestBody").cloned().unwrap_or(Value::Null)["content"]["application/json"]["schema"];
    if let Some(example) = example(document, body) {
        lines.push("  -H 'Content-Type: application/json'".to_owned());
        lines.push(format!("  -d '{}'", example.to_string().replace('\'', "'\\''")));
    }
    lines.join(" \\\n")
}

/// Prose of the document, which is CommonMark (the document is ours: its HTML is trusted).
fn prose(text: &str) -> Markup {
    let mut rendered = String::new();
    pulldown_cmark::html::push_html(&mut rendered, pulldown_cmark::Parser::new(text));
    PreEscaped(rendered)
}

fn operation(document: &Value, operation: &Operation<'_>) -> Markup {
    let deprecated = operation.spec.get("deprecated").and_then(Value::as_bool).unwrap_or(false);
    let parameters = operation.spec.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let request = operation
        .spec
        .get("requestBody")
        .map(|body| body["content"]["application/json"]["schema"].clone())
        .filter(|schema| !schema.is_null());
    let responses = operation.spec.get("responses").and_then(Value::as_object).cloned().unwrap_or_default();
    html! {
        section.op id=(operation.id()) {
            h3 {
                span.method { (operation.method) } code { (operation.path) }
                @if deprecated { " " span.deprecated { "deprecated" } }
            }
            p { code { (operation.id()) } " — " (operation.text("summary")) }
            (prose(operation.text("description")))
            @if !parameters.is_empty() {
                h4 { "Parameters" }
                table { @for parameter in &parameters {
                    tr {
                        td { code { (parameter["name"].as_str().unwrap_or("")) } }
                        td { (parameter["in"].as_str().unwrap_or("")) }
                        td { @if parameter["required"] == true { "required" } @else { "optional" } }
                        td { (parameter["description"].as_str().unwrap_or("")) }
                    }
                } }
            }
            @if let Some(schema) = &request { h4 { "Request body" } p { (schema_link(schema)) } }
            h4 { "Example" }
            pre { (curl(document, operation)) }
            h4 { "Responses" }
            table { @for (status, response) in &responses {
                tr {
                    td { code { (status) } }
                    td { (response["description"].as_str().unwrap_or("")) }
                    td { @let schema = &response["content"]["application/json"]["schema"];
                         @if !schema.is_null() { (schema_link(schema)) }
                         @let problem = &response["content"]["application/problem+json"]["schema"];
                         @if !problem.is_null() { (schema_link(problem)) } }
                }
            } }
        }
    }
}

fn render(document: &Value) -> Markup {
    let title = document["info"]["title"].as_str().unwrap_or("API");
    let version = document["info"]["version"].as_str().unwrap_or("");
    let operations = operations(document);
    let tags: Vec<&str> =
        document["tags"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    let tagged = |tag: &str| -> Vec<&Operation<'_>> {
        operations.iter().filter(|op| op.spec["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == tag))).collect()
    };
    let schemas = document["components"]["schemas"].as_object().cloned().unwrap_or_default();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " " (version) " — API reference" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) " " small { (version) } }
                (prose(document["info"]["description"].as_str().unwrap_or("")))
                p { "The machine-readable document: " a href="/openapi.json" { "/openapi.json" } ". Set "
                    code { "REALTIME_URL" } " and " code { "REALTIME_API_KEY" } " to run the examples." }
                nav { @for tag in &tags {
                    h4 { (tag) }
                    ul { @for op in tagged(tag) {
                        li { a href={ "#" (op.id()) } { span.method { (op.method) } code { (op.path) } } " " (op.text("summary")) }
                    } }
                } }
                h2 { "Operations" }
                @for op in &operations { (operation(document, op)) }
                h2 { "Schemas" }
                @for (name, schema) in &schemas {
                    section.op id={ "schema-" (name) } {
                        h3 { code { (name) } }
                        pre { (serde_json::to_string_pretty(schema).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}
