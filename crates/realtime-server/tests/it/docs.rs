//! `GET /docs`: the API reference page renders the committed document offline.

use crate::support::Env;

#[tokio::test]
async fn the_docs_page_lists_every_operation_of_the_document_with_a_curl_example() {
    let env = Env::start().await;
    let answer = env.http.get(env.url("/docs")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = answer.text().await.unwrap();

    let document: serde_json::Value =
        serde_json::from_str(include_str!("../../../../openapi/realtime.openapi.json")).unwrap();
    let mut operations = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (_, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(page.contains(&format!("id=\"{id}\"")), "{id} has a section");
            assert!(page.contains(&format!("<code>{path}</code>")), "{path} is shown");
            operations += 1;
        }
    }
    assert!(operations >= 20, "{operations}");
    assert!(page.contains("curl -X POST &quot;$REALTIME_URL/v1/realtime/publish&quot;"), "a curl example");
    assert!(page.contains("&quot;channel&quot;:&quot;room-42&quot;"), "built from the schema's examples, escaped");
    assert!(!page.contains("<script") && !page.contains("https://"), "self-contained: no script, nothing fetched");
}
