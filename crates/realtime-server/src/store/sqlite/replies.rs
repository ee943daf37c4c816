//! How the writer thread's answers reach the tasks waiting for them: through the
//! runtime's I/O driver, not as wake-ups from a thread outside the runtime.
//!
//! A task woken from outside the runtime is queued at the back of the runtime's shared
//! queue, behind every task already there; under a fan-out those are thousands of socket
//! writers. At 30 publishes/s to 10,000 subscribers, the first subscriber of a publish got
//! it after 219 ms (p50) with the answers woken from the writer thread, and after 104 ms
//! through the driver (6 ms once the thread also gave its connection back itself, see
//! [`super::writer`]); the bare baseline's publish, woken by its socket, takes 4 ms. So the
//! thread hands a batch's answers to a task of the runtime and rings it through a socket
//! pair: the driver wakes that task on its worker, and the callers it answers are woken
//! there too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::store::group_commit::Answer;

/// A batch's answers, and whether it committed (the reason why not).
type Answered = (Vec<Answer>, Result<(), String>);

/// The writer thread's end; the runtime's task holds the other.
pub(super) struct Replies {
    shared: Arc<Shared>,
    #[cfg(unix)]
    bell: std::os::unix::net::UnixStream,
}

#[derive(Default)]
struct Shared {
    waiting: Mutex<Vec<Answered>>,
    /// Set while the bell rang and its task has not taken the answers yet: one ring is
    /// enough for every batch answered meanwhile.
    rung: AtomicBool,
}

impl Replies {
    /// Starts the task that answers, on `runtime`; it ends once these replies are dropped
    /// and every answer is given.
    #[cfg(unix)]
    pub(super) fn start(runtime: &tokio::runtime::Handle) -> std::io::Result<Replies> {
        let (bell, ringing) = std::os::unix::net::UnixStream::pair()?;
        ringing.set_nonblocking(true)?;
        let shared = Arc::new(Shared::default());
        let ringing = {
            let _in_runtime = runtime.enter();
            tokio::net::UnixStream::from_std(ringing)?
        };
        runtime.spawn(answer_when_rung(shared.clone(), ringing));
        Ok(Replies { shared, bell })
    }

    /// Without Unix sockets the writer thread answers by itself.
    #[cfg(not(unix))]
    pub(super) fn start(_runtime: &tokio::runtime::Handle) -> std::io::Result<Replies> {
        Ok(Replies { shared: Arc::new(Shared::default()) })
    }

    /// Hands the answers of a batch over, with whether it committed.
    pub(super) fn send(&self, answers: Vec<Answer>, committed: Result<(), &str>) {
        if answers.is_empty() {
            return;
        }
        let committed = committed.map_err(str::to_owned);
        #[cfg(unix)]
        {
            use std::io::Write;
            self.shared.waiting.lock().expect("replies lock").push((answers, committed));
            if !self.shared.rung.swap(true, Ordering::SeqCst) {
                // A full socket buffer cannot happen: one byte per ring, and no ring before
                // the task has read the last. Should the task be gone, so is the runtime.
                let _ = (&self.bell).write_all(&[1]);
            }
        }
        #[cfg(not(unix))]
        answer(vec![(answers, committed)]);
    }
}

#[cfg(unix)]
async fn answer_when_rung(shared: Arc<Shared>, ringing: tokio::net::UnixStream) {
    let mut rings = [0_u8; 64];
    loop {
        if ringing.readable().await.is_err() {
            break;
        }
        match ringing.try_read(&mut rings) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(error) => {
                tracing::error!(%error, "the writer's answers could not be read");
                break;
            }
        }
        // Cleared before the answers are taken: a batch answered after the take rings again.
        shared.rung.store(false, Ordering::SeqCst);
        answer(std::mem::take(&mut *shared.waiting.lock().expect("replies lock")));
    }
    // The writer thread has ended: whatever it answered last is still given.
    answer(std::mem::take(&mut *shared.waiting.lock().expect("replies lock")));
}

fn answer(batches: Vec<Answered>) {
    for (answers, committed) in batches {
        for answer in answers {
            answer(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}
