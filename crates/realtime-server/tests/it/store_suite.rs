//! The store's behaviour suite: every behaviour runs against SQLite and PostgreSQL
//! (`store_suite::sqlite::…`, `store_suite::postgres::…`), so the backends cannot drift.

use std::sync::Arc;

use chrono::{Duration, Utc};
use realtime_server::store::{
    ChannelRow, CheckoutRow, Claim, Completion, IdempotencyScope, MessageRow, Store, StoreError, TokenRow,
};
use realtime_types::ChannelType;

/// Instantiates each behaviour once per engine.
macro_rules! suite {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let engine = crate::engines::StoreEngine::sqlite().await;
                    super::$behaviour(engine.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let engine = crate::engines::StoreEngine::postgres().await;
                    super::$behaviour(engine.store.clone()).await;
                }
            )*
        }
    };
}

suite!(
    an_empty_store_reports_it_until_an_account_exists,
    an_account_is_found_by_its_key_hash_and_id,
    a_charge_debits_only_when_the_balance_covers_it,
    concurrent_charges_never_overdraw,
    creating_a_channel_charges_once_and_returns_the_existing_one,
    concurrent_creates_of_one_channel_charge_once,
    a_channel_is_not_created_without_credit,
    channels_are_listed_by_name_in_pages,
    deleting_a_channel_reports_whether_it_existed,
    recording_messages_is_all_or_nothing,
    recording_messages_charges_and_stamps_the_channel,
    a_token_is_recorded_with_its_charge_and_revoked_idempotently,
    an_idempotency_key_is_owned_then_in_flight_then_replayed,
    an_idempotency_key_used_with_another_request_is_a_mismatch,
    a_released_idempotency_key_can_be_claimed_again,
    an_abandoned_claim_is_taken_over_after_its_lease_and_old_records_are_ignored,
    concurrent_claims_of_one_key_have_exactly_one_owner,
    a_checkout_credits_exactly_once,
    an_expired_or_unknown_checkout_credits_nothing,
    a_setting_keeps_its_first_value,
    purging_deletes_only_expired_records,
    without_credit_a_missing_channel_is_reported_as_insufficient_credit,
);

fn hash(n: u8) -> [u8; 32] {
    [n; 32]
}

async fn account(store: &Arc<dyn Store>, balance: i64) -> String {
    let id = format!("acct_{}", ulid::Ulid::generate());
    let key = ulid::Ulid::generate().to_bytes();
    let mut key_hash = [0u8; 32];
    key_hash[..16].copy_from_slice(&key);
    store.create_account(&id, &key_hash, balance).await.unwrap();
    id
}

async fn balance(store: &Arc<dyn Store>, account_id: &str) -> i64 {
    store.account(account_id).await.unwrap().unwrap().balance
}

fn channel(account_id: &str, name: &str) -> ChannelRow {
    ChannelRow {
        channel_id: format!("ch_{}", ulid::Ulid::generate()),
        account_id: account_id.to_owned(),
        name: name.to_owned(),
        channel_type: ChannelType::Public,
        created_at: Utc::now(),
        last_published_at: None,
    }
}

fn message(channel: &str, event: &str) -> MessageRow {
    MessageRow {
        message_id: ulid::Ulid::generate().to_string(),
        channel: channel.to_owned(),
        event: event.to_owned(),
        data: "{}".to_owned(),
        published_at: Utc::now(),
    }
}

fn scope<'a>(account_id: &'a str, key: &'a str) -> IdempotencyScope<'a> {
    IdempotencyScope { account_id, operation: "realtime.publish", key }
}

async fn an_empty_store_reports_it_until_an_account_exists(store: Arc<dyn Store>) {
    assert!(store.is_empty().await.unwrap());
    account(&store, 0).await;
    assert!(!store.is_empty().await.unwrap());
    store.ping().await.unwrap();
}

async fn an_account_is_found_by_its_key_hash_and_id(store: Arc<dyn Store>) {
    store.create_account("acct_one", &hash(1), 500).await.unwrap();
    let found = store.account_by_key_hash(&hash(1)).await.unwrap().unwrap();
    assert_eq!((found.account_id.as_str(), found.balance), ("acct_one", 500));
    assert_eq!(store.account("acct_one").await.unwrap(), Some(found));
    assert_eq!(store.account_by_key_hash(&hash(2)).await.unwrap(), None);
    assert_eq!(store.account("acct_none").await.unwrap(), None);
}

async fn a_charge_debits_only_when_the_balance_covers_it(store: Arc<dyn Store>) {
    let id = account(&store, 1000).await;
    store.charge(&id, 600).await.unwrap();
    let refused = store.charge(&id, 600).await.unwrap_err();
    assert!(matches!(refused, StoreError::InsufficientCredit { balance: 400, required: 600 }), "{refused:?}");
    store.charge(&id, 0).await.unwrap();
    assert_eq!(balance(&store, &id).await, 400);
}

async fn concurrent_charges_never_overdraw(store: Arc<dyn Store>) {
    let id = account(&store, 1000).await;
    let charges: Vec<_> = (0..30)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.charge(&id, 100).await })
        })
        .collect();
    let mut accepted = 0;
    for charge in charges {
        match charge.await.unwrap() {
            Ok(()) => accepted += 1,
            Err(StoreError::InsufficientCredit { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(balance(&store, &id).await, 0);
}

async fn creating_a_channel_charges_once_and_returns_the_existing_one(store: Arc<dyn Store>) {
    let id = account(&store, 5000).await;
    let first = channel(&id, "room");
    let (row, created) = store.create_channel(&first, 1000).await.unwrap();
    assert!(created);
    assert_eq!(row.channel_id, first.channel_id);
    let (again, created) = store.create_channel(&channel(&id, "room"), 1000).await.unwrap();
    assert!(!created);
    assert_eq!(again.channel_id, first.channel_id);
    assert_eq!(balance(&store, &id).await, 4000);
    let stored = store.channel(&id, "room").await.unwrap().unwrap();
    assert_eq!(stored.channel_type, ChannelType::Public);
    assert_eq!(stored.created_at.timestamp_micros(), first.created_at.timestamp_micros());
    assert_eq!(stored.last_published_at, None);
}

async fn concurrent_creates_of_one_channel_charge_once(store: Arc<dyn Store>) {
    let id = account(&store, 50_000).await;
    let creates: Vec<_> = (0..10)
        .map(|_| {
            let (store, row) = (store.clone(), channel(&id, "contested"));
            tokio::spawn(async move { store.create_channel(&row, 1000).await })
        })
        .collect();
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for create in creates {
        let (row, fresh) = create.await.unwrap().unwrap();
        created += usize::from(fresh);
        ids.insert(row.channel_id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1, "every caller sees the one channel");
    assert_eq!(balance(&store, &id).await, 49_000);
}

async fn a_channel_is_not_created_without_credit(store: Arc<dyn Store>) {
    let id = account(&store, 500).await;
    let refused = store.create_channel(&channel(&id, "room"), 1000).await.unwrap_err();
    assert!(matches!(refused, StoreError::InsufficientCredit { balance: 500, required: 1000 }), "{refused:?}");
    assert_eq!(store.channel(&id, "room").await.unwrap(), None);
}

async fn channels_are_listed_by_name_in_pages(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    let other = account(&store, 0).await;
    for name in ["c", "a", "B", "b"] {
        store.create_channel(&channel(&id, name), 0).await.unwrap();
    }
    store.create_channel(&channel(&other, "a"), 0).await.unwrap();
    let names = |rows: Vec<ChannelRow>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(names(store.list_channels(&id, None, 2).await.unwrap()), ["B", "a"]);
    assert_eq!(names(store.list_channels(&id, Some("a"), 2).await.unwrap()), ["b", "c"]);
    assert_eq!(names(store.list_channels(&id, Some("c"), 2).await.unwrap()), Vec::<String>::new());
}

async fn deleting_a_channel_reports_whether_it_existed(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    store.create_channel(&channel(&id, "room"), 0).await.unwrap();
    store.record_messages(&id, &[message("room", "e")], 0, 10).await.unwrap();
    assert!(store.delete_channel(&id, "room").await.unwrap());
    assert!(!store.delete_channel(&id, "room").await.unwrap());
    assert_eq!(store.channel(&id, "room").await.unwrap(), None);
    let (_, created) = store.create_channel(&channel(&id, "room"), 0).await.unwrap();
    assert!(created, "the name is free again");
}

async fn recording_messages_is_all_or_nothing(store: Arc<dyn Store>) {
    let id = account(&store, 100).await;
    store.create_channel(&channel(&id, "room"), 0).await.unwrap();
    let missing = store.record_messages(&id, &[message("room", "a"), message("nowhere", "b")], 20, 10).await;
    assert!(matches!(missing, Err(StoreError::ChannelNotFound { index: 1 })), "{missing:?}");
    let poor = store.record_messages(&id, &[message("room", "a")], 1000, 10).await;
    assert!(matches!(poor, Err(StoreError::InsufficientCredit { balance: 100, required: 1000 })), "{poor:?}");
    assert_eq!(balance(&store, &id).await, 100);
    assert_eq!(store.channel(&id, "room").await.unwrap().unwrap().last_published_at, None);
}

async fn recording_messages_charges_and_stamps_the_channel(store: Arc<dyn Store>) {
    let id = account(&store, 1000).await;
    store.create_channel(&channel(&id, "one"), 0).await.unwrap();
    store.create_channel(&channel(&id, "two"), 0).await.unwrap();
    for _ in 0..5 {
        let batch = [message("two", "x"), message("one", "y"), message("two", "z")];
        store.record_messages(&id, &batch, 30, 2).await.unwrap();
    }
    assert_eq!(balance(&store, &id).await, 850);
    let stamped = store.channel(&id, "one").await.unwrap().unwrap().last_published_at;
    assert!(stamped.is_some());
}

async fn a_token_is_recorded_with_its_charge_and_revoked_idempotently(store: Arc<dyn Store>) {
    let id = account(&store, 150).await;
    let token = TokenRow {
        jti: ulid::Ulid::generate().to_string(),
        account_id: id.clone(),
        client_id: "alice".into(),
        expires_at: Utc::now() + Duration::hours(1),
    };
    store.record_token(&token, 100).await.unwrap();
    let second = TokenRow { jti: ulid::Ulid::generate().to_string(), ..token.clone() };
    assert!(matches!(store.record_token(&second, 100).await, Err(StoreError::InsufficientCredit { .. })));
    assert_eq!(store.token(&id, &second.jti).await.unwrap(), None, "a refused token is not recorded");
    let stored = store.token(&id, &token.jti).await.unwrap().unwrap();
    assert_eq!((stored.client_id.as_str(), stored.expires_at.timestamp()), ("alice", token.expires_at.timestamp()));
    assert_eq!(store.token("acct_other", &token.jti).await.unwrap(), None, "tokens are per account");
    assert!(!store.is_revoked(&token.jti).await.unwrap());
    store.revoke_token(&id, &token.jti).await.unwrap();
    store.revoke_token(&id, &token.jti).await.unwrap();
    assert!(store.is_revoked(&token.jti).await.unwrap());
    assert!(!store.is_revoked("unknown").await.unwrap());
    assert_eq!(balance(&store, &id).await, 50);
}

async fn an_idempotency_key_is_owned_then_in_flight_then_replayed(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope("acct_a", "k1");
    assert_eq!(store.claim(&key, "fp", now, since).await.unwrap(), Claim::Owned);
    assert_eq!(store.claim(&key, "fp", now, since).await.unwrap(), Claim::InFlight);
    store.finish(&key, r#"{"ok":true}"#).await.unwrap();
    store.release(&key).await.unwrap();
    assert_eq!(store.claim(&key, "fp", now, since).await.unwrap(), Claim::Replay(r#"{"ok":true}"#.into()));
    let other_account = scope("acct_b", "k1");
    assert_eq!(store.claim(&other_account, "fp", now, since).await.unwrap(), Claim::Owned, "keys are per account");
    let other_operation = IdempotencyScope { operation: "realtime.token.issue", ..key };
    assert_eq!(store.claim(&other_operation, "fp", now, since).await.unwrap(), Claim::Owned, "and per operation");
}

async fn an_idempotency_key_used_with_another_request_is_a_mismatch(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope("acct_a", "k2");
    assert_eq!(store.claim(&key, "fp", now, since).await.unwrap(), Claim::Owned);
    assert_eq!(store.claim(&key, "other", now, since).await.unwrap(), Claim::Mismatch);
    store.finish(&key, "{}").await.unwrap();
    assert_eq!(store.claim(&key, "other", now, since).await.unwrap(), Claim::Mismatch);
}

async fn a_released_idempotency_key_can_be_claimed_again(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope("acct_a", "k3");
    assert_eq!(store.claim(&key, "fp", now, since).await.unwrap(), Claim::Owned);
    store.release(&key).await.unwrap();
    assert_eq!(store.claim(&key, "another", now, since).await.unwrap(), Claim::Owned);
}

async fn an_abandoned_claim_is_taken_over_after_its_lease_and_old_records_are_ignored(store: Arc<dyn Store>) {
    let start = Utc::now();
    let key = scope("acct_a", "k4");
    assert_eq!(store.claim(&key, "fp", start, start - Duration::hours(24)).await.unwrap(), Claim::Owned);
    let later = start + Duration::seconds(realtime_server::store::LEASE_SECONDS + 1);
    assert_eq!(store.claim(&key, "fp", later, later - Duration::hours(24)).await.unwrap(), Claim::Owned);
    store.finish(&key, "{}").await.unwrap();
    let much_later = later + Duration::hours(25);
    assert_eq!(
        store.claim(&key, "different", much_later, much_later - Duration::hours(24)).await.unwrap(),
        Claim::Owned,
        "a record older than the TTL is treated as absent"
    );
}

async fn concurrent_claims_of_one_key_have_exactly_one_owner(store: Arc<dyn Store>) {
    let now = Utc::now();
    let claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = scope("acct_a", "contested");
                store.claim(&key, "fp", now, now - Duration::hours(24)).await.unwrap()
            })
        })
        .collect();
    let mut owners = 0;
    for claim in claims {
        match claim.await.unwrap() {
            Claim::Owned => owners += 1,
            Claim::InFlight => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(owners, 1);
}

async fn a_checkout_credits_exactly_once(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    let checkout = CheckoutRow {
        checkout_id: format!("co_{}", ulid::Ulid::generate()),
        account_id: id.clone(),
        amount: 5_000_000,
        completed: false,
        expires_at: Utc::now() + Duration::hours(1),
    };
    store.create_checkout(&checkout).await.unwrap();
    assert_eq!(
        store.checkout(&checkout.checkout_id).await.unwrap().unwrap().expires_at.timestamp(),
        checkout.expires_at.timestamp()
    );
    let completions: Vec<_> = (0..8)
        .map(|_| {
            let (store, checkout_id) = (store.clone(), checkout.checkout_id.clone());
            tokio::spawn(async move { store.complete_checkout(&checkout_id, Utc::now()).await.unwrap() })
        })
        .collect();
    let mut credited = 0;
    for completion in completions {
        match completion.await.unwrap() {
            Completion::Credited => credited += 1,
            Completion::AlreadyCompleted => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(credited, 1);
    assert_eq!(balance(&store, &id).await, 5_000_000);
    assert!(store.checkout(&checkout.checkout_id).await.unwrap().unwrap().completed);
}

async fn an_expired_or_unknown_checkout_credits_nothing(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    let checkout = CheckoutRow {
        checkout_id: format!("co_{}", ulid::Ulid::generate()),
        account_id: id.clone(),
        amount: 1000,
        completed: false,
        expires_at: Utc::now() - Duration::minutes(1),
    };
    store.create_checkout(&checkout).await.unwrap();
    assert_eq!(store.complete_checkout(&checkout.checkout_id, Utc::now()).await.unwrap(), Completion::Expired);
    assert_eq!(store.complete_checkout("co_unknown", Utc::now()).await.unwrap(), Completion::NotFound);
    assert_eq!(store.checkout("co_unknown").await.unwrap(), None);
    assert_eq!(balance(&store, &id).await, 0);
}

async fn a_setting_keeps_its_first_value(store: Arc<dyn Store>) {
    assert_eq!(store.setting("token_secret").await.unwrap(), None);
    assert_eq!(store.init_setting("token_secret", "first").await.unwrap(), "first");
    assert_eq!(store.init_setting("token_secret", "second").await.unwrap(), "first");
    assert_eq!(store.setting("token_secret").await.unwrap().as_deref(), Some("first"));
}

async fn purging_deletes_only_expired_records(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    let now = Utc::now();
    let token =
        |jti: &str, expires_at| TokenRow { jti: jti.into(), account_id: id.clone(), client_id: "c".into(), expires_at };
    store.record_token(&token("expired", now - Duration::hours(1)), 0).await.unwrap();
    store.record_token(&token("live", now + Duration::hours(1)), 0).await.unwrap();
    let old = scope(&id, "old");
    store.claim(&old, "fp", now - Duration::hours(30), now - Duration::hours(60)).await.unwrap();
    store.finish(&old, "{}").await.unwrap();
    let recent = scope(&id, "recent");
    store.claim(&recent, "fp", now, now - Duration::hours(24)).await.unwrap();
    store.finish(&recent, "{}").await.unwrap();

    let deleted = store.purge(now - Duration::hours(24), now).await.unwrap();

    assert_eq!(deleted, 2, "the expired token and the old idempotency record");
    assert_eq!(store.token(&id, "expired").await.unwrap(), None);
    assert!(store.token(&id, "live").await.unwrap().is_some());
    let since = now - Duration::hours(48);
    assert_eq!(store.claim(&old, "fp", now, since).await.unwrap(), Claim::Owned, "the old record is gone");
    assert_eq!(store.claim(&recent, "fp", now, since).await.unwrap(), Claim::Replay("{}".into()));
}

async fn without_credit_a_missing_channel_is_reported_as_insufficient_credit(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    let refused = store.record_messages(&id, &[message("never-created", "e")], 10, 100).await;
    assert!(matches!(refused, Err(StoreError::InsufficientCredit { balance: 0, required: 10 })), "{refused:?}");
    let funded = account(&store, 100).await;
    let missing = store.record_messages(&funded, &[message("never-created", "e")], 10, 100).await;
    assert!(matches!(missing, Err(StoreError::ChannelNotFound { index: 0 })), "{missing:?}");
    assert_eq!(balance(&store, &funded).await, 100, "the refused call was not charged");
}
