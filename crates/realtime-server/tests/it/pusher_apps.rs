//! Pusher apps through the admin API: listed without their secrets, a rotated secret
//! refused at once (by the HTTP API, checked with the Python `pusher` package, and by
//! channel authorization on a socket that was already open), and a deleted app's sockets
//! closed with 4001 and its HTTP API and key refused; on one node, and across two nodes
//! sharing PostgreSQL and Redis (the admin call on one, the socket on the other).

use serde_json::{Value, json};

use crate::pusher_cluster::Pair;
use crate::pusher_support::{App, PusherSocket};
use crate::support::{Answer, Env};
use crate::vendors::python;

/// Sends an admin API request to the node at `base_url`.
async fn admin(base_url: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    let url = format!("{base_url}{path}");
    let mut request = reqwest::Client::new()
        .request(method.parse().unwrap(), url)
        .bearer_auth(realtime_server::testing::ADMIN_SECRET);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Answer { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}

/// A new account (returns its id) with `apps` Pusher apps.
async fn account_with_apps(env: &Env, apps: usize) -> (String, Vec<App>) {
    let api_key = env.server.create_account(1_000_000).await.unwrap();
    let account = env.send_as(&api_key, "GET", "/v1/account", None, &[]).await.ok();
    let account_id = account["account_id"].as_str().unwrap().to_owned();
    let mut created = Vec::new();
    for _ in 0..apps {
        let body = json!({"account_id": account_id});
        let app = admin(&env.server.base_url(), "POST", "/admin/v1/pusher/apps", Some(body)).await.ok();
        created.push(app_of(&app));
    }
    (account_id, created)
}

fn app_of(answer: &Value) -> App {
    App {
        app_id: answer["app_id"].as_u64().unwrap().to_string(),
        key: answer["key"].as_str().unwrap().into(),
        secret: answer["secret"].as_str().unwrap().into(),
    }
}

/// The Python `pusher` package triggers with `app`'s credentials: "ok", or the name of
/// the error it raised.
const TRIGGER: &str = r#"
import json, sys, pusher
i = json.load(sys.stdin)
client = pusher.Pusher(app_id=i["app_id"], key=i["key"], secret=i["secret"], host=i["host"], port=i["port"], ssl=False)
try:
    client.trigger("room", "e", {"n": 1})
    print(json.dumps("ok"))
except Exception as error:
    print(json.dumps(type(error).__name__))
"#;

/// Off the test's runtime thread, which serves the server meanwhile.
async fn python_trigger(base_url: &str, app: &App) -> Value {
    let url = reqwest::Url::parse(base_url).unwrap();
    let input = json!({
        "app_id": app.app_id, "key": app.key, "secret": app.secret,
        "host": url.host_str().unwrap(), "port": url.port().unwrap(),
    });
    tokio::task::spawn_blocking(move || python(TRIGGER, &input)).await.unwrap()
}

#[tokio::test]
async fn an_account_s_apps_are_listed_without_their_secrets() {
    let env = Env::start().await;
    let (account_id, apps) = account_with_apps(&env, 2).await;
    let base = env.server.base_url();

    let listed = admin(&base, "GET", &format!("/admin/v1/pusher/apps?account_id={account_id}"), None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let ids: Vec<String> = listed.body["apps"].as_array().unwrap().iter().map(|a| a["app_id"].to_string()).collect();
    assert_eq!(ids, apps.iter().map(|app| app.app_id.clone()).collect::<Vec<_>>(), "oldest first");
    assert_eq!(listed.body["apps"][0]["key"], apps[0].key.as_str());
    assert_eq!(listed.body["apps"][0]["account_id"], account_id.as_str());
    assert!(listed.body["apps"][0]["created_at"].is_string());
    let text = listed.body.to_string();
    for app in &apps {
        assert!(!text.contains(&app.secret), "a secret was listed: {text}");
    }
    assert!(!text.contains("secret"), "{text}");

    let unknown = admin(&base, "GET", "/admin/v1/pusher/apps?account_id=acct_nobody", None).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.body["code"], "NOT_FOUND");
    let missing = admin(&base, "GET", "/admin/v1/pusher/apps", None).await;
    assert_eq!((missing.status.as_u16(), &missing.body["code"]), (422, &json!("VALIDATION_ERROR")), "{}", missing.body);
    let path = format!("/admin/v1/pusher/apps?account_id={account_id}");
    assert_eq!(env.send_as("wrong", "GET", &path, None, &[]).await.status, 401);
}

#[tokio::test]
async fn a_rotated_secret_is_shown_once_and_the_old_one_is_refused_at_once() {
    let env = Env::start().await;
    let (_, apps) = account_with_apps(&env, 1).await;
    let old = apps[0].clone();
    let base = env.server.base_url();
    assert_eq!(python_trigger(&base, &old).await, "ok");
    // A socket admitted before the rotation.
    let mut socket = PusherSocket::connect(&env, &old.key).await;

    let path = format!("/admin/v1/pusher/apps/{}/rotate", old.app_id);
    let rotated = admin(&base, "POST", &path, None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = app_of(&rotated.body);
    assert_eq!((&new.app_id, &new.key), (&old.app_id, &old.key), "only the secret changes");
    assert_ne!(new.secret, old.secret);

    assert_eq!(python_trigger(&base, &old).await, "PusherBadAuth", "the old secret signs nothing any more");
    assert_eq!(python_trigger(&base, &new).await, "ok");
    let refused = old.trigger(&env, &["room"], "e", "{}").await;
    assert_eq!(refused.status, 401, "{}", refused.body);

    let stale = old.auth(&socket.socket_id, "private-room", None);
    socket.send("pusher:subscribe", None, json!({"channel": "private-room", "auth": stale})).await;
    let error = socket.expect("pusher:subscription_error").await;
    assert_eq!(error["data"]["status"], 401, "{error}");
    socket.subscribe("private-room", Some(new.auth(&socket.socket_id, "private-room", None)), None).await;

    let unknown = admin(&base, "POST", "/admin/v1/pusher/apps/999999999999/rotate", None).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}

#[tokio::test]
async fn a_deleted_app_s_sockets_close_with_4001_and_its_api_and_key_are_refused() {
    let env = Env::start().await;
    let (account_id, apps) = account_with_apps(&env, 2).await;
    let (doomed, kept) = (&apps[0], &apps[1]);
    let base = env.server.base_url();
    let mut socket = PusherSocket::connect(&env, &doomed.key).await;
    socket.subscribe("room", None, None).await;
    let mut neighbour = PusherSocket::connect(&env, &kept.key).await;
    neighbour.subscribe("room", None, None).await;

    let deleted = admin(&base, "DELETE", &format!("/admin/v1/pusher/apps/{}", doomed.app_id), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(socket.close_code().await, Some(4001));

    assert_eq!(doomed.trigger(&env, &["room"], "e", "{}").await.status, 404);
    let mut again = PusherSocket::open(&env, &doomed.key, "protocol=7").await;
    assert_eq!(crate::pusher_support::close_code(&mut again).await, Some(4001));
    let listed = admin(&base, "GET", &format!("/admin/v1/pusher/apps?account_id={account_id}"), None).await.ok();
    assert_eq!(listed["apps"].as_array().unwrap().len(), 1);
    let twice = admin(&base, "DELETE", &format!("/admin/v1/pusher/apps/{}", doomed.app_id), None).await;
    assert_eq!(twice.status, 404, "{}", twice.body);

    // The account's other app and its socket are untouched.
    assert_eq!(kept.trigger(&env, &["room"], "still", "{}").await.status, 200);
    assert_eq!(neighbour.expect("still").await["channel"], "room");
}

#[tokio::test]
async fn rotating_or_deleting_on_one_node_acts_on_the_other_node_s_sockets() {
    let pair = Pair::start().await;
    let (a, b) = (pair.a.base_url(), pair.b.base_url());
    let app = App::dev();
    let mut socket = PusherSocket::connect_to(&b, &app.key).await;

    let rotated = admin(&a, "POST", &format!("/admin/v1/pusher/apps/{}/rotate", app.app_id), None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new = app_of(&rotated.body);
    let stale = app.auth(&socket.socket_id, "private-room", None);
    socket.send("pusher:subscribe", None, json!({"channel": "private-room", "auth": stale})).await;
    assert_eq!(socket.expect("pusher:subscription_error").await["data"]["status"], 401);
    socket.subscribe("private-room", Some(new.auth(&socket.socket_id, "private-room", None)), None).await;
    let trigger = json!({"name": "e", "data": "", "channel": "x"});
    assert_eq!(app.request_to(&b, "POST", "/events", &[], Some(&trigger), None).await.status, 401);

    let deleted = admin(&a, "DELETE", &format!("/admin/v1/pusher/apps/{}", app.app_id), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(socket.close_code().await, Some(4001));
}

#[tokio::test]
async fn subscription_counting_is_an_app_setting_set_at_creation_or_changed_later() {
    // The server setting is off: only the app that enables counting counts.
    let env = Env::start().await;
    let base = env.server.base_url();
    let api_key = env.server.create_account(1_000_000).await.unwrap();
    let account = env.send_as(&api_key, "GET", "/v1/account", None, &[]).await.ok();
    let body = json!({"account_id": account["account_id"], "subscription_count": true});
    let created = admin(&base, "POST", "/admin/v1/pusher/apps", Some(body)).await.ok();
    assert_eq!(created["subscription_count"], true);
    let counting = app_of(&created);
    let (account_id, others) = account_with_apps(&env, 1).await;
    let listed = admin(&base, "GET", &format!("/admin/v1/pusher/apps?account_id={account_id}"), None).await.ok();
    assert_eq!(listed["apps"][0]["subscription_count"], false);

    let mut first = PusherSocket::connect(&env, &counting.key).await;
    first.subscribe("room", None, None).await;
    let mut second = PusherSocket::connect(&env, &counting.key).await;
    second.subscribe("room", None, None).await;
    crate::pusher_counts::expect_count(&mut first, "room", 2).await;

    let mut quiet = PusherSocket::connect(&env, &others[0].key).await;
    quiet.subscribe("room", None, None).await;
    assert!(quiet.next(std::time::Duration::from_millis(1500)).await.is_none(), "an app that does not count");

    // Turned on later for the other app, off for the first.
    let path = format!("/admin/v1/pusher/apps/{}", others[0].app_id);
    let on = admin(&base, "PATCH", &path, Some(json!({"subscription_count": true}))).await.ok();
    assert_eq!((on["subscription_count"].as_bool(), on["key"].as_str()), (Some(true), Some(others[0].key.as_str())));
    crate::pusher_counts::expect_count(&mut quiet, "room", 1).await;
    let path = format!("/admin/v1/pusher/apps/{}", counting.app_id);
    let off = admin(&base, "PATCH", &path, Some(json!({"subscription_count": false}))).await.ok();
    assert_eq!(off["subscription_count"], false);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    while first.next(std::time::Duration::from_millis(100)).await.is_some() {}
    drop(second);
    assert!(first.next(std::time::Duration::from_millis(1500)).await.is_none(), "counting was turned off");

    let unknown =
        admin(&base, "PATCH", "/admin/v1/pusher/apps/999999999999", Some(json!({"subscription_count": true})));
    assert_eq!(unknown.await.status, 404);
    let wrong = admin(&base, "PATCH", &path, Some(json!({"counting": true}))).await;
    assert_eq!((wrong.status.as_u16(), &wrong.body["code"]), (422, &json!("VALIDATION_ERROR")), "{}", wrong.body);
}
