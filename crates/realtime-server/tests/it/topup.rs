//! A 402's `topup_url` opened in a browser: the dev checkout's page (outside `/v1`), which
//! starts a top-up with the person's key and leads to the Pay button that credits the
//! account.

use serde_json::json;

use crate::browser::Page;
use crate::support::Env;

#[tokio::test]
async fn the_topup_url_is_the_checkout_page_and_the_operation_stays_as_documented() {
    let env = Env::start().await;
    let account = env.send_as(&env.key, "GET", "/v1/account", None, &[]).await.ok();
    let topup_url = account["topup_url"].as_str().unwrap();
    assert!(topup_url.ends_with("/checkout"), "{topup_url}");
    let page = env.http.get(topup_url).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = page.text().await.unwrap();
    assert!(page.contains("id=\"topup\"") && !page.contains("ifr_pk_"), "a form, and no key");
    // `/v1` answers as the document says, a browser included: only POST is there.
    for accept in ["text/html", "application/json"] {
        let get = env.http.get(env.url("/v1/account/topup")).header("accept", accept).send().await.unwrap();
        assert_eq!(get.status().as_u16(), 405);
        assert_eq!(get.headers()["allow"].to_str().unwrap(), "POST");
    }
    env.post("/v1/account/topup", json!({"amount": 1_000_000})).await.ok();
}

#[tokio::test]
async fn the_topup_page_is_absent_without_the_dev_checkout() {
    let env = Env::start_with(json!({"dev_checkout": false})).await;
    let page = env.http.get(env.url("/checkout")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status().as_u16(), 404);
    let account = env.send_as(&env.key, "GET", "/v1/account", None, &[]).await.ok();
    assert!(account["topup_url"].as_str().unwrap().ends_with("/v1/account/topup"));
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
