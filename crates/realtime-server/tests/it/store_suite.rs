//! The store's behaviour suite: every behaviour runs against SQLite and PostgreSQL
//! (`store_suite::sqlite::…`, `store_suite::postgres::…`), so the backends cannot drift.

use std::sync::Arc;

use chrono::{Duration, Utc};
use realtime_api::IdempotencyKey;
use realtime_api::idempotency::{Claim, Fingerprint, Lease, Record, Scope, Seal};
use realtime_server::secret::Secret;
use realtime_server::service::MAX_BALANCE;
use realtime_server::store::{
    AppRow, AppSettings, AppSettingsChange, ChannelRow, CheckoutRow, Completion, MessageRow, MessagesRefused,
    Retention, Store, StoreError, TokenRow, WebhookRow,
};
use realtime_types::{ChannelType, Direction, Position};

mod idempotency;
mod retention;

use self::idempotency::*;
use self::retention::*;

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
    messages_get_consecutive_offsets_per_channel_and_history_reads_them_both_ways,
    retention_keeps_the_newest_messages_by_count_and_by_age,
    concurrent_publishes_keep_the_newest_of_each_channel,
    a_token_is_recorded_with_its_charge_and_revoked_idempotently,
    a_new_key_is_written_and_a_retained_one_is_returned,
    an_answer_is_stored_only_under_its_lease_and_then_returned,
    a_released_key_is_free_again,
    a_lease_is_replaced_only_by_whoever_knows_it_and_never_once_answered,
    concurrent_claims_of_one_key_have_exactly_one_owner,
    an_effect_commits_with_its_sealed_answer_or_not_at_all,
    a_key_claimed_at_the_seal_is_written_with_the_effect_or_names_its_holder,
    every_effect_seals_its_answer,
    releasing_all_leases_frees_exactly_the_unanswered_keys,
    a_credit_past_the_maximum_balance_is_refused,
    a_checkout_credits_exactly_once,
    an_expired_or_unknown_checkout_credits_nothing,
    a_setting_keeps_its_first_value,
    purging_deletes_only_expired_records,
    refused_messages_report_every_reason_and_charge_nothing,
    an_app_is_found_by_id_and_key_and_neither_is_taken_twice,
    the_webhook_outbox_claims_retries_and_cancels_removals,
    an_app_s_settings_change_one_at_a_time_and_go_with_the_app,
    concurrent_records_succeed_or_fail_each_on_its_own,
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
        last_offset: 0,
    }
}

fn message(channel: &str, event: &str) -> MessageRow {
    MessageRow {
        message_id: ulid::Ulid::generate().to_string(),
        offset: 0,
        channel: channel.to_owned(),
        event: event.to_owned(),
        data: "{}".to_owned(),
        published_at: Utc::now(),
    }
}

/// Keeps the newest `messages` of a channel, whatever their age.
fn keep(messages: u32) -> Retention {
    Retention { messages, published_after: Utc::now() - Duration::days(365) }
}

fn no_seal(_: &[Position]) -> Option<Seal> {
    None
}

fn scope(account_id: &str, key: &str) -> Scope {
    Scope { account_id: account_id.into(), operation: "realtime.publish", key: IdempotencyKey::parse(key).unwrap() }
}

/// A fresh claim of a key for a request with `fingerprint`, made at `now`.
fn claim(fingerprint: &str, now: chrono::DateTime<Utc>) -> Record {
    Record {
        fingerprint: Fingerprint::from_stored(fingerprint.into()),
        answer: None,
        created_at: now,
        lease: Lease { id: ulid::Ulid::generate().to_string(), until: now + Duration::seconds(10) },
    }
}

fn seal_of(scope: &Scope, record: &Record, answer: &str) -> Seal {
    Seal { scope: scope.clone(), lease: record.lease.id.clone(), answer: answer.into(), claim: None }
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
    store.charge(&id, 600, None).await.unwrap();
    let refused = store.charge(&id, 600, None).await.unwrap_err();
    assert!(matches!(refused, StoreError::InsufficientCredit { balance: 400, required: 600 }), "{refused:?}");
    store.charge(&id, 0, None).await.unwrap();
    assert_eq!(balance(&store, &id).await, 400);
}

async fn concurrent_charges_never_overdraw(store: Arc<dyn Store>) {
    let id = account(&store, 1000).await;
    let charges: Vec<_> = (0..30)
        .map(|_| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.charge(&id, 100, None).await })
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
    let (row, created) = store.create_channel(&first, 1000, None).await.unwrap();
    assert!(created);
    assert_eq!(row.channel_id, first.channel_id);
    let (again, created) = store.create_channel(&channel(&id, "room"), 1000, None).await.unwrap();
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
            tokio::spawn(async move { store.create_channel(&row, 1000, None).await })
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
    let refused = store.create_channel(&channel(&id, "room"), 1000, None).await.unwrap_err();
    assert!(matches!(refused, StoreError::InsufficientCredit { balance: 500, required: 1000 }), "{refused:?}");
    assert_eq!(store.channel(&id, "room").await.unwrap(), None);
}

async fn channels_are_listed_by_name_in_pages(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    let other = account(&store, 0).await;
    for name in ["c", "a", "B", "b"] {
        store.create_channel(&channel(&id, name), 0, None).await.unwrap();
    }
    store.create_channel(&channel(&other, "a"), 0, None).await.unwrap();
    let names = |rows: Vec<ChannelRow>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(names(store.list_channels(&id, None, 2).await.unwrap()), ["B", "a"]);
    assert_eq!(names(store.list_channels(&id, Some("a"), 2).await.unwrap()), ["b", "c"]);
    assert_eq!(names(store.list_channels(&id, Some("c"), 2).await.unwrap()), Vec::<String>::new());
}

async fn deleting_a_channel_reports_whether_it_existed(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    store.create_channel(&channel(&id, "room"), 0, None).await.unwrap();
    store.record_messages(&id, &[message("room", "e")], 0, keep(10), Box::new(no_seal)).await.unwrap();
    assert!(store.delete_channel(&id, "room", None).await.unwrap());
    assert!(!store.delete_channel(&id, "room", None).await.unwrap());
    assert_eq!(store.channel(&id, "room").await.unwrap(), None);
    let (_, created) = store.create_channel(&channel(&id, "room"), 0, None).await.unwrap();
    assert!(created, "the name is free again");
}

async fn recording_messages_is_all_or_nothing(store: Arc<dyn Store>) {
    let id = account(&store, 100).await;
    store.create_channel(&channel(&id, "room"), 0, None).await.unwrap();
    let missing = store
        .record_messages(&id, &[message("room", "a"), message("nowhere", "b")], 20, keep(10), Box::new(no_seal))
        .await;
    let expected = MessagesRefused { insufficient_credit: None, missing_channel: Some(1) };
    assert!(matches!(missing, Err(StoreError::MessagesRefused(refused)) if refused == expected), "{missing:?}");
    let poor = store.record_messages(&id, &[message("room", "a")], 1000, keep(10), Box::new(no_seal)).await;
    let expected = MessagesRefused { insufficient_credit: Some((100, 1000)), missing_channel: None };
    assert!(matches!(poor, Err(StoreError::MessagesRefused(refused)) if refused == expected), "{poor:?}");
    assert_eq!(balance(&store, &id).await, 100);
    assert_eq!(store.channel(&id, "room").await.unwrap().unwrap().last_published_at, None);
}

async fn recording_messages_charges_and_stamps_the_channel(store: Arc<dyn Store>) {
    let id = account(&store, 1000).await;
    store.create_channel(&channel(&id, "one"), 0, None).await.unwrap();
    store.create_channel(&channel(&id, "two"), 0, None).await.unwrap();
    for _ in 0..5 {
        let batch = [message("two", "x"), message("one", "y"), message("two", "z")];
        store.record_messages(&id, &batch, 30, keep(2), Box::new(no_seal)).await.unwrap();
    }
    assert_eq!(balance(&store, &id).await, 850);
    let stamped = store.channel(&id, "one").await.unwrap().unwrap().last_published_at;
    assert!(stamped.is_some());
}

async fn messages_get_consecutive_offsets_per_channel_and_history_reads_them_both_ways(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    let (one, _) = store.create_channel(&channel(&id, "one"), 0, None).await.unwrap();
    let (two, _) = store.create_channel(&channel(&id, "two"), 0, None).await.unwrap();
    let batch = [message("one", "a"), message("two", "b"), message("one", "c")];
    let positions = store.record_messages(&id, &batch, 0, keep(100), Box::new(no_seal)).await.unwrap();
    let at = |row: &ChannelRow, offset| Position { epoch: row.channel_id.clone(), offset };
    assert_eq!(positions, [at(&one, 1), at(&two, 1), at(&one, 2)], "the epoch is the channel id");
    let more = store.record_messages(&id, &[message("one", "d")], 0, keep(100), Box::new(no_seal)).await.unwrap();
    assert_eq!(more, [at(&one, 3)]);
    assert_eq!(store.channel(&id, "one").await.unwrap().unwrap().position(), at(&one, 3));

    let offsets = |rows: Vec<MessageRow>| rows.iter().map(|row| (row.offset, row.event.clone())).collect::<Vec<_>>();
    let all = store.history(&id, "one", None, 10, Direction::Forward).await.unwrap();
    assert_eq!(offsets(all), [(1, "a".into()), (2, "c".into()), (3, "d".into())]);
    let after_one = store.history(&id, "one", Some(1), 1, Direction::Forward).await.unwrap();
    assert_eq!(offsets(after_one), [(2, "c".into())]);
    let newest = store.history(&id, "one", None, 2, Direction::Backward).await.unwrap();
    assert_eq!(offsets(newest), [(3, "d".into()), (2, "c".into())]);
    let before_two = store.history(&id, "one", Some(2), 10, Direction::Backward).await.unwrap();
    assert_eq!(offsets(before_two), [(1, "a".into())]);
}

async fn a_token_is_recorded_with_its_charge_and_revoked_idempotently(store: Arc<dyn Store>) {
    let id = account(&store, 150).await;
    let token = TokenRow {
        jti: ulid::Ulid::generate().to_string(),
        account_id: id.clone(),
        client_id: "alice".into(),
        expires_at: Utc::now() + Duration::hours(1),
    };
    store.record_token(&token, 100, None).await.unwrap();
    let second = TokenRow { jti: ulid::Ulid::generate().to_string(), ..token.clone() };
    assert!(matches!(store.record_token(&second, 100, None).await, Err(StoreError::InsufficientCredit { .. })));
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

async fn a_credit_past_the_maximum_balance_is_refused(store: Arc<dyn Store>) {
    let id = account(&store, MAX_BALANCE - 5).await;
    let checkout = CheckoutRow {
        checkout_id: format!("co_{}", ulid::Ulid::generate()),
        account_id: id.clone(),
        amount: 10,
        completed: false,
        expires_at: Utc::now() + Duration::hours(1),
    };
    store.create_checkout(&checkout, None).await.unwrap();
    let completion = store.complete_checkout(&checkout.checkout_id, Utc::now(), MAX_BALANCE).await.unwrap();
    assert_eq!(completion, Completion::OverLimit);
    assert_eq!(balance(&store, &id).await, MAX_BALANCE - 5);
    assert!(!store.checkout(&checkout.checkout_id).await.unwrap().unwrap().completed, "it can be completed later");
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
    store.create_checkout(&checkout, None).await.unwrap();
    assert_eq!(
        store.checkout(&checkout.checkout_id).await.unwrap().unwrap().expires_at.timestamp(),
        checkout.expires_at.timestamp()
    );
    let completions: Vec<_> = (0..8)
        .map(|_| {
            let (store, checkout_id) = (store.clone(), checkout.checkout_id.clone());
            tokio::spawn(async move { store.complete_checkout(&checkout_id, Utc::now(), MAX_BALANCE).await.unwrap() })
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
    store.create_checkout(&checkout, None).await.unwrap();
    assert_eq!(
        store.complete_checkout(&checkout.checkout_id, Utc::now(), MAX_BALANCE).await.unwrap(),
        Completion::Expired
    );
    assert_eq!(store.complete_checkout("co_unknown", Utc::now(), MAX_BALANCE).await.unwrap(), Completion::NotFound);
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
    store.record_token(&token("expired", now - Duration::hours(1)), 0, None).await.unwrap();
    store.record_token(&token("live", now + Duration::hours(1)), 0, None).await.unwrap();
    let old = scope(&id, "old");
    let record = claim("fp", now - Duration::hours(30));
    store.insert(&old, &record, now - Duration::hours(60)).await.unwrap();
    store.finish(&old, &record.lease.id, "{}").await.unwrap();
    let recent = scope(&id, "recent");
    let record = claim("fp", now);
    store.insert(&recent, &record, now - Duration::hours(24)).await.unwrap();
    store.finish(&recent, &record.lease.id, "{}").await.unwrap();

    let cutoffs = realtime_server::store::Cutoffs {
        idempotency: now - Duration::hours(24),
        expired: now,
        messages: now - Duration::days(1),
        user_messages: now - Duration::days(7),
    };
    let deleted = store.purge(&cutoffs).await.unwrap();

    assert_eq!(deleted, 2, "the expired token and the old idempotency record");
    assert_eq!(store.token(&id, "expired").await.unwrap(), None);
    assert!(store.token(&id, "live").await.unwrap().is_some());
    let since = now - Duration::hours(48);
    assert_eq!(store.insert(&old, &claim("fp", now), since).await.unwrap(), None, "the old record is gone");
    let kept = store.insert(&recent, &claim("fp", now), since).await.unwrap().unwrap();
    assert_eq!(kept.answer.as_deref(), Some("{}"));
}

async fn refused_messages_report_every_reason_and_charge_nothing(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    let refused = store.record_messages(&id, &[message("never-created", "e")], 10, keep(100), Box::new(no_seal)).await;
    let both = MessagesRefused { insufficient_credit: Some((0, 10)), missing_channel: Some(0) };
    assert!(matches!(refused, Err(StoreError::MessagesRefused(reasons)) if reasons == both), "{refused:?}");
    let funded = account(&store, 100).await;
    let missing =
        store.record_messages(&funded, &[message("never-created", "e")], 10, keep(100), Box::new(no_seal)).await;
    let only_missing = MessagesRefused { insufficient_credit: None, missing_channel: Some(0) };
    assert!(matches!(missing, Err(StoreError::MessagesRefused(reasons)) if reasons == only_missing), "{missing:?}");
    assert_eq!(balance(&store, &funded).await, 100, "the refused call was not charged");
}

async fn an_app_is_found_by_id_and_key_and_neither_is_taken_twice(store: Arc<dyn Store>) {
    let owner = account(&store, 0).await;
    let other = account(&store, 0).await;
    let app = |app_id: u64, key: &str, account_id: &str, age: i64| AppRow {
        app_id,
        account_id: account_id.to_owned(),
        key: key.to_owned(),
        secret: Secret::new(format!("secret-{app_id}")),
        created_at: Utc::now() - Duration::seconds(age),
        webhook_url: None,
    };
    let unique = ulid::Ulid::generate().to_string();
    let base = u64::from(ulid::Ulid::generate().random() as u32) + 1_000_000;
    let key = |n: u8| format!("key-{n}-{unique}");
    assert!(store.create_app(&app(base, &key(1), &owner, 10)).await.unwrap());
    assert!(!store.create_app(&app(base, &key(2), &other, 0)).await.unwrap(), "the id is taken");
    assert!(!store.create_app(&app(base + 1, &key(1), &other, 0)).await.unwrap(), "the key is taken");
    assert!(store.create_app(&app(base + 2, &key(3), &owner, 20)).await.unwrap());

    let found = store.app(base).await.unwrap().expect("found by id");
    assert_eq!((found.account_id.as_str(), found.key.as_str()), (owner.as_str(), key(1).as_str()));
    assert_eq!(found.secret.expose(), format!("secret-{base}"));
    assert_eq!(store.app_by_key(&key(3)).await.unwrap().map(|app| app.app_id), Some(base + 2));
    assert!(store.app(base + 1).await.unwrap().is_none());
    let owned: Vec<u64> = store.apps_of(&owner).await.unwrap().iter().map(|app| app.app_id).collect();
    assert_eq!(owned, [base + 2, base], "oldest first");
    assert!(store.apps_of(&other).await.unwrap().is_empty());
}

/// A new app of `owner` with a random id, its webhooks to `webhook_url`.
async fn new_app(store: &Arc<dyn Store>, owner: &str, webhook_url: Option<&str>) -> AppRow {
    let app_id = u64::from(ulid::Ulid::generate().random() as u32) + 1_000_000;
    let app = AppRow {
        app_id,
        account_id: owner.to_owned(),
        key: format!("key-{app_id}"),
        secret: Secret::new("secret-1"),
        created_at: Utc::now(),
        webhook_url: webhook_url.map(str::to_owned),
    };
    assert!(store.create_app(&app).await.unwrap());
    app
}

async fn an_app_s_settings_change_one_at_a_time_and_go_with_the_app(store: Arc<dyn Store>) {
    let owner = account(&store, 0).await;
    let app_id = new_app(&store, &owner, None).await.app_id;
    assert_eq!(store.app_settings(app_id).await.unwrap(), AppSettings::default(), "all off at first");

    let batch = AppSettingsChange { batch_webhooks: Some(true), ..AppSettingsChange::default() };
    let on = AppSettings { subscription_count: false, batch_webhooks: true };
    assert_eq!(store.change_app_settings(app_id, batch).await.unwrap(), Some(on));
    let count = AppSettingsChange { subscription_count: Some(true), ..AppSettingsChange::default() };
    let both = AppSettings { subscription_count: true, batch_webhooks: true };
    assert_eq!(store.change_app_settings(app_id, count).await.unwrap(), Some(both), "the other setting stays");
    assert_eq!(store.app_settings(app_id).await.unwrap(), both);
    assert!(store.counting_apps().await.unwrap().contains(&(app_id, owner.clone())));
    assert_eq!(store.change_app_settings(app_id, AppSettingsChange::default()).await.unwrap(), Some(both));

    assert_eq!(store.change_app_settings(app_id + 1, batch).await.unwrap(), None, "no such app");
    assert_eq!(store.app_settings(app_id + 1).await.unwrap(), AppSettings::default());
    store.delete_app(app_id).await.unwrap().expect("deleted");
    assert_eq!(store.app_settings(app_id).await.unwrap(), AppSettings::default(), "gone with the app");
}

async fn the_webhook_outbox_claims_retries_and_cancels_removals(store: Arc<dyn Store>) {
    let owner = account(&store, 0).await;
    let app = new_app(&store, &owner, Some("http://127.0.0.1:9/hooks")).await;
    let app_id = app.app_id;
    assert_eq!(store.app(app_id).await.unwrap().unwrap().webhook_url, app.webhook_url);
    assert!(store.webhook_accounts().await.unwrap().contains(&owner));

    let webhook = |id: &str, due_ms: i64| WebhookRow {
        webhook_id: id.into(),
        app_id,
        body: format!("{{\"id\":\"{id}\"}}"),
        created_ms: 1_000,
        due_ms,
        attempts: 0,
    };
    // A removal waits; its addition cancels it (and is not added either).
    assert!(store.enqueue_webhook(&webhook("removed", 5_000), Some("member:u1"), None).await.unwrap());
    assert!(!store.enqueue_webhook(&webhook("added", 2_000), None, Some("member:u1")).await.unwrap());
    assert!(store.claim_webhooks(10_000, 40_000, 10).await.unwrap().is_empty(), "both are gone");
    // Without a waiting removal, an addition is added.
    assert!(store.enqueue_webhook(&webhook("added", 2_000), None, Some("member:u1")).await.unwrap());
    assert!(store.enqueue_webhook(&webhook("later", 8_000), None, None).await.unwrap());

    let due = store.claim_webhooks(3_000, 33_000, 10).await.unwrap();
    assert_eq!(due, [webhook("added", 2_000)], "only what is due");
    assert!(store.claim_webhooks(3_000, 33_000, 10).await.unwrap().is_empty(), "claimed once");
    store.retry_webhook("added", 9_000).await.unwrap();
    let due: Vec<(String, u32)> = store
        .claim_webhooks(9_000, 39_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.webhook_id, w.attempts))
        .collect();
    assert_eq!(due, [("later".to_owned(), 0), ("added".to_owned(), 1)], "by due time, attempts counted");
    // A claim that ran out (its sender died) is claimed again.
    assert_eq!(store.claim_webhooks(40_000, 70_000, 1).await.unwrap().len(), 1);
    store.finish_webhook("added").await.unwrap();
    store.finish_webhook("later").await.unwrap();
    assert!(store.claim_webhooks(100_000, 130_000, 10).await.unwrap().is_empty());
}
