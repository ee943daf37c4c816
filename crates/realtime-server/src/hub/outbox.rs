//! [`Outbox`]: a connection's bounded queue of frames, drained by the connection's one
//! writer, and the request to close the connection, under one lock.
//!
//! One lock, because the writer's wait is one question: is there a frame to send, or
//! must the connection end? It is asked on every frame of every socket, so it costs a
//! lock and at most a waker clone, and allocates nothing. (flume's channel, used before,
//! allocated and registered a hook each time the writer waited, and the close request
//! needed a waker of its own; the fan-out's CPU did not move measurably, an idle
//! connection's memory fell by about 0.45 KiB.) An idle socket holds no slot: the queue
//! grows as frames arrive and gives back a burst's room once drained.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

use super::connection::Closing;

/// Room a drained queue keeps; a larger one, left by a burst, is given back.
const KEPT_SLOTS: usize = 64;

/// Why a frame was not queued.
#[derive(Debug, PartialEq)]
pub(super) enum Refused {
    /// The queue holds `capacity` frames: the writer does not keep up.
    Full,
    /// The connection was asked to close, or its socket is gone.
    Closed,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    /// Woken when room is made for a waiting sender, and when the close is asked.
    changed: Notify,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Utf8Bytes>,
    /// The writer, while it waits for a frame or for the close.
    writer: Option<Waker>,
    /// Whether the writer waits for a frame, not only for the close (while it writes, a
    /// frame queued meanwhile must not wake it: it takes it once the write is done).
    wants_frames: bool,
    /// A sender waits for room ([`Outbox::push_waiting`]).
    room_wanted: bool,
    /// How the connection must end, once asked (the first ask wins).
    close: Option<Closing>,
    /// Set once the socket is gone ([`Outbox::shut`]): nothing is queued after.
    shut: bool,
}

impl Outbox {
    /// A queue of at most `capacity` frames (at least one).
    pub(super) fn new(capacity: usize) -> Self {
        Outbox { state: Mutex::default(), capacity: capacity.max(1), changed: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("outbox lock")
    }

    /// Queues a frame for the writer, without waiting.
    pub(super) fn push(&self, frame: Utf8Bytes) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.close.is_some() || state.shut {
            return Err(Refused::Closed);
        }
        if state.frames.len() >= self.capacity {
            return Err(Refused::Full);
        }
        state.frames.push_back(frame);
        let writer = state.frame_waiter();
        drop(state);
        if let Some(writer) = writer {
            writer.wake();
        }
        Ok(())
    }

    /// Queues a frame, waiting while the queue is full; false when the connection closes
    /// first.
    pub(super) async fn push_waiting(&self, frame: Utf8Bytes) -> bool {
        let mut frame = Some(frame);
        loop {
            // Listening before the room is looked at, so room made in between wakes it.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.close.is_some() || state.shut {
                    return false;
                }
                if state.frames.len() < self.capacity {
                    state.frames.push_back(frame.take().expect("pushed once"));
                    let writer = state.frame_waiter();
                    drop(state);
                    if let Some(writer) = writer {
                        writer.wake();
                    }
                    return true;
                }
                state.room_wanted = true;
            }
            changed.await;
        }
    }

    /// The writer's wait: the next frame, or how the connection must end (a close request
    /// wins over queued frames). Only one task may wait this way.
    pub(super) fn poll_next(&self, context: &mut Context<'_>) -> Poll<Result<Utf8Bytes, Closing>> {
        let mut state = self.lock();
        if let Some(close) = &state.close {
            return Poll::Ready(Err(close.clone()));
        }
        match self.pop(&mut state) {
            Some(frame) => Poll::Ready(Ok(frame)),
            None => {
                register(&mut state.writer, context);
                state.wants_frames = true;
                Poll::Pending
            }
        }
    }

    /// A frame already queued, if any (the rest of a burst goes out in the same write).
    pub(super) fn try_next(&self) -> Option<Utf8Bytes> {
        let mut state = self.lock();
        if state.close.is_some() {
            return None;
        }
        self.pop(&mut state)
    }

    /// Takes the oldest frame; tells a sender waiting for room that there is some.
    fn pop(&self, state: &mut State) -> Option<Utf8Bytes> {
        let frame = state.frames.pop_front()?;
        if state.frames.is_empty() && state.frames.capacity() > KEPT_SLOTS {
            state.frames = VecDeque::new();
        }
        if state.room_wanted {
            state.room_wanted = false;
            self.changed.notify_waiters();
        }
        Some(frame)
    }

    /// The writer's wait for the close alone, while it writes.
    pub(super) fn poll_close(&self, context: &mut Context<'_>) -> Poll<Closing> {
        let mut state = self.lock();
        match &state.close {
            Some(close) => Poll::Ready(close.clone()),
            None => {
                register(&mut state.writer, context);
                state.wants_frames = false;
                Poll::Pending
            }
        }
    }

    /// Waits until the close is asked, and says how.
    pub(super) async fn closed(&self) -> Closing {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(close) = self.lock().close.clone() {
                return close;
            }
            changed.await;
        }
    }

    /// Asks the connection to end as `closing` says; false when it was asked already.
    pub(super) fn close(&self, closing: Closing) -> bool {
        let mut state = self.lock();
        if state.close.is_some() {
            return false;
        }
        state.close = Some(closing);
        let writer = state.writer.take();
        drop(state);
        // Every waiter: the writer and a sender waiting for room both must end.
        if let Some(writer) = writer {
            writer.wake();
        }
        self.changed.notify_waiters();
        true
    }

    /// Refuses every frame from now on (the socket is gone); returns the close asked, if
    /// any, and how many frames were left queued.
    pub(super) fn shut(&self) -> (Option<Closing>, usize) {
        let mut state = self.lock();
        state.shut = true;
        let left = std::mem::take(&mut state.frames).len();
        (state.close.clone(), left)
    }
}

impl State {
    /// The writer to wake for a new frame: only one waiting for frames.
    fn frame_waiter(&mut self) -> Option<Waker> {
        if self.wants_frames { self.writer.take() } else { None }
    }
}

/// Keeps the waker of the task to wake, cloning it only when the task changed.
fn register(slot: &mut Option<Waker>, context: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(context.waker()) => {}
        _ => *slot = Some(context.waker().clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use realtime_types::ws::CloseCode;

    use super::*;

    fn frame(text: &'static str) -> Utf8Bytes {
        Utf8Bytes::from_static(text)
    }

    async fn next(outbox: &Outbox) -> Result<Utf8Bytes, Closing> {
        poll_fn(|context| outbox.poll_next(context)).await
    }

    #[tokio::test]
    async fn frames_come_out_in_order_and_a_full_queue_refuses_the_next() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push(frame("a")), Ok(()));
        assert_eq!(outbox.push(frame("b")), Ok(()));
        assert_eq!(outbox.push(frame("c")), Err(Refused::Full));

        assert_eq!(next(&outbox).await.unwrap(), "a");
        assert_eq!(outbox.try_next().unwrap(), "b");
        assert_eq!(outbox.try_next(), None);
    }

    #[tokio::test]
    async fn a_waiting_writer_is_woken_by_a_frame_and_by_the_close() {
        let outbox = std::sync::Arc::new(Outbox::new(4));
        let writer = tokio::spawn({
            let outbox = outbox.clone();
            async move { (next(&outbox).await, next(&outbox).await) }
        });
        tokio::task::yield_now().await;
        outbox.push(frame("a")).unwrap();
        tokio::task::yield_now().await;
        outbox.close(Closing::With(CloseCode::TryAgainLater, "bye".into()));

        let (first, second) = writer.await.unwrap();
        assert_eq!(first.unwrap(), "a");
        assert_eq!(second.unwrap_err(), Closing::With(CloseCode::TryAgainLater, "bye".into()));
    }

    #[tokio::test]
    async fn the_close_wins_over_queued_frames_and_refuses_new_ones() {
        let outbox = Outbox::new(4);
        outbox.push(frame("a")).unwrap();
        assert!(outbox.close(Closing::Vanish));
        assert!(!outbox.close(Closing::With(CloseCode::TryAgainLater, "late".into())), "the first ask wins");

        assert_eq!(next(&outbox).await.unwrap_err(), Closing::Vanish);
        assert_eq!(outbox.push(frame("b")), Err(Refused::Closed));
        assert_eq!(outbox.shut(), (Some(Closing::Vanish), 1), "the frame queued before the close was never sent");
    }

    /// A queue of one, full, and a sender waiting for room in it.
    async fn full_with_a_waiting_sender() -> (std::sync::Arc<Outbox>, tokio::task::JoinHandle<bool>) {
        let outbox = std::sync::Arc::new(Outbox::new(1));
        outbox.push(frame("a")).unwrap();
        let sender = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push_waiting(frame("b")).await }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished(), "the queue is full");
        (outbox, sender)
    }

    #[tokio::test]
    async fn a_sender_waiting_for_room_gets_it_when_the_writer_takes_a_frame() {
        let (outbox, sender) = full_with_a_waiting_sender().await;
        assert_eq!(next(&outbox).await.unwrap(), "a");
        assert!(sender.await.unwrap(), "queued once there was room");
        assert_eq!(next(&outbox).await.unwrap(), "b");
    }

    #[tokio::test]
    async fn a_sender_waiting_for_room_gives_up_when_the_connection_closes() {
        let (outbox, sender) = full_with_a_waiting_sender().await;
        outbox.close(Closing::Vanish);
        assert!(!sender.await.unwrap());
    }

    #[test]
    fn a_writer_busy_writing_is_woken_by_the_close_but_not_by_a_frame() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let wakes = std::sync::Arc::new(Count(Default::default()));
        let waker = Waker::from(wakes.clone());
        let mut context = Context::from_waker(&waker);
        let outbox = Outbox::new(4);

        assert!(outbox.poll_close(&mut context).is_pending());
        outbox.push(frame("a")).unwrap();
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 0, "the frame waits for the write to end");
        outbox.close(Closing::Vanish);
        assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1, "the close wakes it");
    }

    #[test]
    fn a_drained_queue_gives_back_a_burst_s_room() {
        let outbox = Outbox::new(1000);
        for _ in 0..500 {
            outbox.push(frame("x")).unwrap();
        }
        while outbox.try_next().is_some() {}
        assert_eq!(outbox.lock().frames.capacity(), 0);
    }
}
