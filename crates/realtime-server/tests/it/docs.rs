//! `GET /docs`: the API reference page renders the committed document offline, over
//! HTTP and in Debian's headless Chromium (which saves `target/docs.png`).

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

#[tokio::test]
async fn headless_chromium_renders_the_docs_page_offline() {
    let env = Env::start().await;
    let url = env.url("/docs");
    let screenshot = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/docs.png");
    std::fs::create_dir_all(std::path::Path::new(screenshot).parent().unwrap()).unwrap();
    let chromium = |args: Vec<String>| async move {
        let output = tokio::process::Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"])
            .args(args)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), output)
            .await
            .expect("chromium answers within 60 s")
            .expect("Debian's chromium is needed (.ci/run installs it)");
        assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dom = chromium(vec!["--dump-dom".into(), url.clone()]).await;
    assert!(dom.contains("<h1>realtime"), "the page rendered: {}", &dom[..dom.len().min(500)]);
    assert!(dom.contains("id=\"realtime.publish\"") && dom.contains("id=\"schema-PublishRequest\""));
    // The description's CommonMark became HTML.
    assert!(dom.contains("<code>INSUFFICIENT_CREDIT</code>"), "code spans rendered");
    chromium(vec![format!("--screenshot={screenshot}"), url]).await;
    assert!(std::fs::metadata(screenshot).unwrap().len() > 10_000, "a screenshot of the page");
}
