//! What a channel keeps of its stream: the newest messages by count and by age.

use super::*;

pub(super) async fn retention_keeps_the_newest_messages_by_count_and_by_age(store: Arc<dyn Store>) {
    let id = account(&store, 0).await;
    store.create_channel(&channel(&id, "room"), 0, None).await.unwrap();
    let batch: Vec<MessageRow> = (0..4).map(|n| message("room", &format!("e{n}"))).collect();
    store.record_messages(&id, &batch, 0, keep(2), Box::new(no_seal)).await.unwrap();
    let kept = store.history(&id, "room", None, 10, Direction::Forward).await.unwrap();
    assert_eq!(kept.iter().map(|row| row.offset).collect::<Vec<_>>(), [3, 4], "the newest two");
    let expired = Retention { messages: 100, published_after: Utc::now() + Duration::hours(1) };
    let positions =
        store.record_messages(&id, &[message("room", "late")], 0, expired, Box::new(no_seal)).await.unwrap();
    assert_eq!(positions[0].offset, 5, "offsets go on when history is trimmed");
    assert!(store.history(&id, "room", None, 10, Direction::Forward).await.unwrap().is_empty(), "all too old");
}

/// Concurrent publishes share their writer's batches, which trim each channel once; a
/// publish rolled back in a batch (its key's lease lost) takes its trim back with it.
pub(super) async fn concurrent_publishes_keep_the_newest_of_each_channel(store: Arc<dyn Store>) {
    const PUBLISHES: usize = 60;
    let id = account(&store, 0).await;
    for name in ["one", "two"] {
        store.create_channel(&channel(&id, name), 0, None).await.unwrap();
    }
    let now = Utc::now();
    let tasks: Vec<_> = (0..PUBLISHES)
        .map(|n| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move {
                let name = if n % 2 == 0 { "one" } else { "two" };
                let key = scope(&id, &format!("k{n}"));
                let held = claim("fp", now);
                store.insert(&key, &held, now - Duration::hours(24)).await.unwrap();
                // Every third seals under a lease it no longer holds, and is rolled back.
                let lease = if n % 3 == 2 { claim("fp", now) } else { held };
                let sealed = seal_of(&key, &lease, "answer");
                let seal = move |_: &[Position]| Some(sealed.clone());
                (name, store.record_messages(&id, &[message(name, "e")], 0, keep(5), Box::new(seal)).await.is_ok())
            })
        })
        .collect();
    let mut committed = std::collections::HashMap::<&str, u64>::new();
    for task in tasks {
        let (name, ok) = task.await.unwrap();
        *committed.entry(name).or_default() += u64::from(ok);
    }
    for name in ["one", "two"] {
        let last = committed[name];
        let kept = store.history(&id, name, None, 100, Direction::Forward).await.unwrap();
        let kept: Vec<u64> = kept.iter().map(|row| row.offset).collect();
        assert_eq!(kept, (last - 4..=last).collect::<Vec<_>>(), "channel {name}: the newest five of {last}");
    }
}
