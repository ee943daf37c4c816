//! The `channel.list` cursor as the document describes it: any unpadded base64url string
//! is a position in the list, and any other string is a 422.

use crate::support::Env;

fn names(page: &serde_json::Value) -> Vec<String> {
    page["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn any_cursor_of_the_documented_form_is_a_position_in_the_list() {
    let env = Env::start().await;
    for name in ["a", "b", "c"] {
        env.create_channel(name, "public").await;
    }
    let list = async |cursor: &str| names(&env.get(&format!("/v1/realtime/channel/list?cursor={cursor}")).await.ok());
    // `YQ` is the cursor after "a"; `YR` carries stray low bits but names the same byte.
    assert_eq!(list("YQ").await, ["b", "c"]);
    assert_eq!(list("YR").await, ["b", "c"]);
    // `_w` is the byte 0xFF, which is no UTF-8: a position after every ASCII name.
    assert_eq!(list("_w").await, Vec::<String>::new());
    assert_eq!(list("").await, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_cursor_not_of_the_documented_form_is_a_422() {
    let env = Env::start().await;
    for cursor in ["A", "YQ%3D%3D", "a+b", "%C3%A9t%C3%A9"] {
        env.get(&format!("/v1/realtime/channel/list?cursor={cursor}")).await.problem(422, "VALIDATION_ERROR");
    }
}
