//! The store suite's behaviours of idempotency keys and of the writes that seal them,
//! group commit's included.

use super::*;

pub(super) async fn a_new_key_is_written_and_a_retained_one_is_returned(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope("acct_a", "k1");
    let first = claim("fp", now);
    assert_eq!(store.insert(&key, &first, since).await.unwrap(), None);
    let second = claim("fp", now);
    let held = store.insert(&key, &second, since).await.unwrap().expect("the first claim holds");
    assert_eq!((held.lease.id, held.fingerprint), (first.lease.id.clone(), first.fingerprint.clone()));
    let other_account = scope("acct_b", "k1");
    assert_eq!(store.insert(&other_account, &second, since).await.unwrap(), None, "keys are per account");
    let other_operation = Scope { operation: "realtime.token.issue", ..key.clone() };
    assert_eq!(store.insert(&other_operation, &second, since).await.unwrap(), None, "and per operation");
    let much_later = now + Duration::hours(25);
    let late = claim("different", much_later);
    assert_eq!(
        store.insert(&key, &late, much_later - Duration::hours(24)).await.unwrap(),
        None,
        "a record past retention is written over"
    );
}

pub(super) async fn an_answer_is_stored_only_under_its_lease_and_then_returned(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope("acct_a", "k2");
    let first = claim("fp", now);
    store.insert(&key, &first, since).await.unwrap();
    store.finish(&key, "another-lease", r#"{"stale":true}"#).await.unwrap();
    store.release(&key, "another-lease").await.unwrap();
    store.finish(&key, &first.lease.id, r#"{"ok":true}"#).await.unwrap();
    store.release(&key, &first.lease.id).await.unwrap();
    let seen = store.insert(&key, &claim("fp", now), since).await.unwrap().expect("the record stays");
    assert_eq!(seen.answer.as_deref(), Some(r#"{"ok":true}"#), "an answered record is never released");
}

pub(super) async fn a_released_key_is_free_again(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope("acct_a", "k3");
    let first = claim("fp", now);
    store.insert(&key, &first, since).await.unwrap();
    store.release(&key, &first.lease.id).await.unwrap();
    assert_eq!(store.insert(&key, &claim("another", now), since).await.unwrap(), None);
}

pub(super) async fn a_lease_is_replaced_only_by_whoever_knows_it_and_never_once_answered(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope("acct_a", "k4");
    let dead = claim("fp", now);
    store.insert(&key, &dead, since).await.unwrap();
    let taker = claim("fp", now);
    assert!(!store.replace(&key, "not-the-lease", &taker).await.unwrap());
    assert!(store.replace(&key, &dead.lease.id, &taker).await.unwrap());
    assert!(!store.replace(&key, &dead.lease.id, &claim("fp", now)).await.unwrap(), "the dead holder lost it");
    store.finish(&key, &taker.lease.id, "{}").await.unwrap();
    assert!(!store.replace(&key, &taker.lease.id, &claim("fp", now)).await.unwrap(), "answered records stay");
}

pub(super) async fn concurrent_claims_of_one_key_have_exactly_one_owner(store: Arc<dyn Store>) {
    let now = Utc::now();
    let claims: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = scope("acct_a", "contested");
                store.insert(&key, &claim("fp", now), now - Duration::hours(24)).await.unwrap()
            })
        })
        .collect();
    let mut owners = 0;
    for claim in claims {
        if claim.await.unwrap().is_none() {
            owners += 1;
        }
    }
    assert_eq!(owners, 1);
}

pub(super) async fn an_effect_commits_with_its_sealed_answer_or_not_at_all(store: Arc<dyn Store>) {
    let id = account(&store, 5000).await;
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope(&id, "sealed");
    let held = claim("fp", now);
    store.insert(&key, &held, since).await.unwrap();
    let taker = claim("fp", now);
    assert!(store.replace(&key, &held.lease.id, &taker).await.unwrap(), "another request took the key over");

    let stale = seal_of(&key, &held, r#"{"by":"the dead request"}"#);
    let lost = store.create_channel(&channel(&id, "room"), 1000, Some(&stale)).await;
    assert!(matches!(lost, Err(StoreError::LeaseLost)), "{lost:?}");
    assert_eq!(store.channel(&id, "room").await.unwrap(), None, "no effect without its answer");
    assert_eq!(balance(&store, &id).await, 5000, "and no charge");

    let live = seal_of(&key, &taker, r#"{"by":"the live request"}"#);
    store.create_channel(&channel(&id, "room"), 1000, Some(&live)).await.unwrap();
    assert_eq!(balance(&store, &id).await, 4000);
    let seen = store.insert(&key, &claim("fp", now), since).await.unwrap().unwrap();
    assert_eq!(seen.answer.as_deref(), Some(r#"{"by":"the live request"}"#), "the answer committed with the effect");
    assert!(store.release_all_leases().await.unwrap() == 0, "an answered record is no lease to release");
}

/// A request claimed at its seal ([`realtime_api::Idempotency::claiming_at_seal`]) writes
/// its key's record with its effect; a second one finds that record and writes nothing.
pub(super) async fn a_key_claimed_at_the_seal_is_written_with_the_effect_or_names_its_holder(store: Arc<dyn Store>) {
    let id = account(&store, 5000).await;
    store.create_channel(&channel(&id, "room"), 0, None).await.unwrap();
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let key = scope(&id, "at-seal");
    let publish = async |record: &Record, answer: &'static str| {
        let claim = Claim::new(record.clone(), since);
        let seal = Seal { claim: Some(claim.clone()), ..seal_of(&key, record, answer) };
        let recorded = store
            .record_messages(
                &id,
                &[message("room", "e")],
                10,
                keep(10),
                Box::new(move |_: &[Position]| Some(seal.clone())),
            )
            .await;
        (recorded, claim.holder())
    };

    let first = claim("fp", now);
    let (recorded, holder) = publish(&first, r#"{"n":1}"#).await;
    assert!(recorded.is_ok() && holder.is_none(), "{recorded:?} {holder:?}");
    let written = store.insert(&key, &claim("fp", now), since).await.unwrap().expect("the seal wrote the record");
    assert_eq!((written.lease.id.as_str(), written.answer.as_deref()), (first.lease.id.as_str(), Some(r#"{"n":1}"#)));

    let (recorded, holder) = publish(&claim("fp", now), r#"{"n":2}"#).await;
    assert!(matches!(recorded, Err(StoreError::LeaseLost)), "{recorded:?}");
    assert_eq!(holder.map(|record| record.lease.id), Some(first.lease.id.clone()), "the holder is named");
    let history = store.history(&id, "room", None, 10, Direction::Forward).await.unwrap();
    assert_eq!(history.len(), 1, "the second effect rolled back");
    assert_eq!(balance(&store, &id).await, 4990, "and charged nothing");
}

pub(super) async fn every_effect_seals_its_answer(store: Arc<dyn Store>) {
    let id = account(&store, 1_000_000).await;
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let sealed = async |name: &str| {
        let key = scope(&id, name);
        let record = claim("fp", now);
        store.insert(&key, &record, since).await.unwrap();
        (key.clone(), seal_of(&key, &record, &format!("\"{name}\"")))
    };
    let answer = async |key: &Scope| store.insert(key, &claim("fp", now), since).await.unwrap().unwrap().answer;
    let (key, seal) = sealed("create").await;
    store.create_channel(&channel(&id, "room"), 10, Some(&seal)).await.unwrap();
    assert_eq!(answer(&key).await.as_deref(), Some("\"create\""));
    let (key, seal) = sealed("publish").await;
    store
        .record_messages(&id, &[message("room", "e")], 10, keep(10), Box::new(move |_: &[Position]| Some(seal.clone())))
        .await
        .unwrap();
    assert_eq!(answer(&key).await.as_deref(), Some("\"publish\""));
    let (key, seal) = sealed("token").await;
    let token = TokenRow { jti: "j1".into(), account_id: id.clone(), client_id: "c".into(), expires_at: now };
    store.record_token(&token, 10, Some(&seal)).await.unwrap();
    assert_eq!(answer(&key).await.as_deref(), Some("\"token\""));
    let (key, seal) = sealed("charge").await;
    store.charge(&id, 10, Some(&seal)).await.unwrap();
    assert_eq!(answer(&key).await.as_deref(), Some("\"charge\""));
    let (key, seal) = sealed("checkout").await;
    let checkout = CheckoutRow {
        checkout_id: "co_sealed".into(),
        account_id: id.clone(),
        amount: 10,
        completed: false,
        expires_at: now + Duration::hours(1),
    };
    store.create_checkout(&checkout, Some(&seal)).await.unwrap();
    assert_eq!(answer(&key).await.as_deref(), Some("\"checkout\""));
    let (key, seal) = sealed("delete").await;
    assert!(store.delete_channel(&id, "room", Some(&seal)).await.unwrap());
    assert_eq!(answer(&key).await.as_deref(), Some("\"delete\""));
}

pub(super) async fn releasing_all_leases_frees_exactly_the_unanswered_keys(store: Arc<dyn Store>) {
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let answered = scope("acct_leases", "answered");
    let record = claim("fp", now);
    store.insert(&answered, &record, since).await.unwrap();
    store.finish(&answered, &record.lease.id, "{}").await.unwrap();
    let dead = scope("acct_leases", "dead");
    store.insert(&dead, &claim("fp", now), since).await.unwrap();

    assert!(store.release_all_leases().await.unwrap() >= 1);

    assert_eq!(store.insert(&dead, &claim("fp", now), since).await.unwrap(), None, "the dead request's key is free");
    assert!(store.insert(&answered, &claim("fp", now), since).await.unwrap().is_some(), "the answer stays");
}

/// SQLite runs concurrent writes in one shared transaction (group commit): a record
/// refused or unsealed among accepted ones must roll back alone, and every accepted one
/// must be numbered, charged and sealed exactly once.
pub(super) async fn concurrent_records_succeed_or_fail_each_on_its_own(store: Arc<dyn Store>) {
    const WRITERS: usize = 48;
    let id = account(&store, 1_000_000).await;
    store.create_channel(&channel(&id, "room"), 0, None).await.unwrap();
    let now = Utc::now();
    let since = now - Duration::hours(24);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|n| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                let key = scope(&id, &format!("k{n}"));
                let held = claim("fp", now);
                assert_eq!(store.insert(&key, &held, since).await.unwrap(), None, "k{n} is new");
                let message = match n % 4 {
                    1 => message("nowhere", "missing"),
                    _ => message("room", &format!("m{n}")),
                };
                // Every fourth seals under a lease it no longer holds.
                let lease = if n % 4 == 3 { claim("fp", now) } else { held.clone() };
                let sealed = seal_of(&key, &lease, &format!("answer {n}"));
                let seal = move |_: &[Position]| Some(sealed.clone());
                (n, store.record_messages(&id, &[message], 10, keep(1000), Box::new(seal)).await)
            })
        })
        .collect();
    let mut recorded = Vec::new();
    for task in tasks {
        let (n, result) = task.await.unwrap();
        match n % 4 {
            1 => assert!(matches!(result, Err(StoreError::MessagesRefused(_))), "k{n}: {result:?}"),
            3 => assert!(matches!(result, Err(StoreError::LeaseLost)), "k{n}: {result:?}"),
            _ => recorded.push((n, result.unwrap_or_else(|error| panic!("k{n}: {error:?}"))[0].offset)),
        }
    }
    let mut offsets: Vec<u64> = recorded.iter().map(|(_, offset)| *offset).collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (1..=WRITERS as u64 / 2).collect::<Vec<_>>(), "consecutive offsets, none lost to a rollback");
    assert_eq!(balance(&store, &id).await, 1_000_000 - 10 * (WRITERS as i64 / 2), "only the accepted were charged");
    let history = store.history(&id, "room", None, 1000, Direction::Forward).await.unwrap();
    assert_eq!(history.len(), WRITERS / 2);
    for (n, _) in &recorded {
        let seen = store.insert(&scope(&id, &format!("k{n}")), &claim("fp", now), since).await.unwrap().unwrap();
        assert_eq!(seen.answer, Some(format!("answer {n}")), "k{n} was sealed with its effect");
    }
}
