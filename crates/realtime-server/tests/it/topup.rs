//! A 402's `topup_url` opened in a browser: a page that starts a top-up with the person's
//! key and leads to the dev checkout's Pay button, which credits the account.

use serde_json::json;

use crate::browser::Page;
use crate::support::Env;

#[tokio::test]
async fn the_topup_url_is_a_page_for_browsers_and_an_operation_for_programs() {
    let env = Env::start().await;
    let page = env.http.get(env.url("/v1/account/topup")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = page.text().await.unwrap();
    assert!(page.contains("id=\"topup\"") && !page.contains("ifr_pk_"), "a form, and no key");
    let program = env.send_as(&env.key, "GET", "/v1/account/topup", None, &[]).await;
    program.problem(405, "METHOD_NOT_ALLOWED");
    env.post("/v1/account/topup", json!({"amount": 1_000_000})).await.ok();
}

#[tokio::test]
async fn the_topup_page_is_absent_without_the_dev_checkout() {
    let env = Env::start_with(json!({"dev_checkout": false})).await;
    let page = env.http.get(env.url("/v1/account/topup")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status().as_u16(), 405);
}

#[tokio::test]
async fn headless_chromium_pays_from_the_topup_url_of_a_402() {
    let env = Env::start().await;
    let broke = env.server.create_account(0).await.unwrap();
    let refused = env.send_as(&broke, "POST", "/v1/realtime/channel/create", Some(json!({"name": "room"})), &[]).await;
    refused.problem(402, "INSUFFICIENT_CREDIT");
    let topup_url = refused.body["topup_url"].as_str().unwrap();

    let mut page = Page::open(topup_url).await;
    let start = format!(
        "document.getElementById('key').value = {}; document.getElementById('amount').value = '3'; \
         document.getElementById('topup').requestSubmit(); true",
        json!(broke)
    );
    page.eval(&start).await;
    page.until("the checkout page opened", "document.getElementById('state')?.dataset.state === 'pending'").await;
    assert!(page.eval("location.pathname").await.as_str().unwrap().starts_with("/checkout/"));
    page.eval("document.querySelector('form button').click(); true").await;
    page.until("the checkout was paid", "document.getElementById('state')?.dataset.state === 'paid'").await;
    page.screenshot("topup.png").await;
    assert_eq!(env.balance(&broke).await, 3_000_000);
}
