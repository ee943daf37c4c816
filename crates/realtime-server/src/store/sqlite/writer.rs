//! SQLite's group writer: the batches of [`crate::store::group_commit`], run on a thread
//! of their own with a connection of its own (rusqlite), statement after statement
//! without leaving the thread.
//!
//! Through sqlx, every statement is a round trip between a task and the connection's
//! worker thread: two thread wake-ups, each a context switch. A publish writes some eight
//! statements, and the profile of the publish bench showed the server spending most of its
//! time switching threads and almost none in SQLite. Here a batch costs one wake-up of
//! this thread and one of each caller, whatever its statements. The callers are woken
//! through the runtime's I/O driver ([`super::replies`]), not from this thread.
//!
//! The thread still takes the store's one sqlx writing connection for the length of each
//! batch, so that the other writes (through sqlx) queue behind it in the pool instead of
//! meeting SQLite's lock, whose busy handler sleeps.
//!
//! A job is a closure over the thread's connection: it must own its inputs (the seal of an
//! idempotent answer included, see [`crate::store::SealOf`]) and must not block on anything
//! but SQLite. What a job needs done once per batch rather than once per job (a publish's
//! trim of its channel's history) it leaves to the batch ([`BeforeCommit`]).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::replies::Replies;
use crate::store::group_commit::{Answer, Attempt, BeforeCommit, Caution, Ran, ReplyTo, not_committed};
use crate::store::{StoreError, StoreResult};

/// The most jobs one transaction takes.
const MAX_BATCH: usize = 64;

/// Jobs waiting for the writer.
const QUEUE: usize = 1024;

/// A job as the writer runs it.
struct Job {
    /// The account whose rows the job writes: a batch runs its jobs in account order.
    account: String,
    /// Whether the job writes with one statement only: SQLite undoes a failed statement by
    /// itself, so such a job needs no savepoint.
    single_statement: bool,
    run: RunJob,
}

/// A job's statements; a job may run twice (see [`crate::store::group_commit`]).
type RunJob = Box<dyn FnMut(&Connection, &mut Later) -> Ran + Send>;

/// A statement a job leaves to its batch.
pub(super) type LaterStatement = Box<dyn FnOnce(&Connection) -> StoreResult<()> + Send>;

/// What a job of this writer leaves to its batch.
pub(super) type Later = BeforeCommit<LaterStatement>;

/// The queue of the writer thread; cheap to clone.
#[derive(Clone)]
pub(super) struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").field("queued", &(QUEUE - self.jobs.capacity())).finish()
    }
}

impl SqliteWriter {
    /// Opens the database file at `path` (migrated already) and starts the writer thread;
    /// `lock` is the store's pool of its one sqlx writing connection. The thread ends
    /// when the last clone of the writer is dropped.
    pub(super) fn start(path: &Path, lock: SqlitePool) -> anyhow::Result<SqliteWriter> {
        let connection = Connection::open_with_flags(
            path,
            // Only this thread uses the connection: SQLite's own mutex around every call
            // (5% of the publish bench's CPU) guards nothing.
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "foreign_keys", true)?;
        // A job in a savepoint (when its batch runs again, one having failed) has SQLite
        // keep the first image of every page it changes in a sub-journal: a temporary file
        // by default, written with a `pwrite` per page (14% of the publish bench's CPU when
        // every job ran in one). In memory, it is a copy.
        connection.pragma_update(None, "temp_store", "MEMORY")?;
        connection.pragma_update(None, "wal_autocheckpoint", super::WAL_AUTOCHECKPOINT)?;
        connection.set_prepared_statement_cache_capacity(64);
        let runtime = tokio::runtime::Handle::current();
        let replies = Replies::start(&runtime)?;
        let (jobs, queue) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || write_batches(&connection, &runtime, &lock, queue, &replies))?;
        Ok(SqliteWriter { jobs })
    }

    /// Runs `job` in the next batch and returns its result once that batch committed; its
    /// writes (and what it left to the batch) are rolled back when it returns an error. It
    /// may run twice (its first batch rolled back whole).
    pub(super) async fn run<T, F>(&self, account: &str, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut Later) -> StoreResult<T> + Send + 'static,
    {
        self.submit(account, job, false).await
    }

    /// [`SqliteWriter::run`] for a job whose writes are one statement (reads besides are
    /// fine): no savepoint is needed to undo it.
    pub(super) async fn run_single_statement<T, F>(&self, account: &str, mut job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(account, move |connection: &Connection, _: &mut Later| job(connection), true).await
    }

    async fn submit<T, F>(&self, account: &str, mut job: F, single_statement: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, &mut Later) -> StoreResult<T> + Send + 'static,
    {
        let (result_tx, result_rx) = oneshot::channel::<StoreResult<T>>();
        let reply = ReplyTo::new(result_tx);
        let run = Box::new(move |connection: &Connection, later: &mut Later| Ran::of(job(connection, later), &reply));
        self.jobs
            .send(Job { account: account.to_owned(), single_statement, run })
            .await
            .map_err(|_| not_committed("the writer has stopped"))?;
        result_rx.await.map_err(|_| not_committed("the writer has stopped"))?
    }
}

/// What the engine said, as the store reports it: a busy or failing file is the store
/// being unavailable, anything else a failure.
pub(super) fn engine_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    let unavailable = matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::SystemIoFailure | ErrorCode::DiskFull)
    );
    let error = sqlx::Error::AnyDriverError(Box::new(error));
    if unavailable { StoreError::Unavailable(error) } else { StoreError::Internal(error) }
}

/// The thread's loop: waits for a job, takes every job waiting behind it, runs them as one
/// batch, answers them (through `replies`); until every sender is gone.
fn write_batches(
    connection: &Connection,
    runtime: &tokio::runtime::Handle,
    lock: &SqlitePool,
    mut queue: mpsc::Receiver<Job>,
    replies: &Replies,
) {
    // sqlx spawns tasks of its own (to replace a connection it closed, say).
    let _in_runtime = runtime.enter();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut caution = Caution::default();
    while let Some(first) = queue.blocking_recv() {
        // Woken by the first job, this thread would take the core from the requests
        // about to send the next ones (on a core of its own, this returns at once):
        // batches grew, and the REST publish spent 5% less CPU per request.
        std::thread::yield_now();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batch.sort_by(|a, b| a.account.cmp(&b.account));
        let held = runtime.block_on(lock.acquire());
        let answers = match &held {
            Ok(_) => run_batch(connection, &mut batch, &mut caution),
            Err(error) => Err((error.to_string(), Vec::new())),
        };
        match answers {
            Ok(answers) => replies.send(answers, Ok(())),
            Err((error, answers)) => {
                tracing::error!(%error, jobs = batch.len(), "a batch of writes was not committed");
                if !connection.is_autocommit()
                    && let Err(error) = connection.execute_batch("ROLLBACK")
                {
                    tracing::error!(%error, "a failed batch could not be rolled back");
                }
                replies.send(answers, Err(&error));
                // Jobs that never ran are dropped: their callers learn the writes did not happen.
            }
        }
        // Given back from here, not by the task dropping it would spawn: that task would
        // queue behind the runtime's whole backlog (during a fan-out, thousands of socket
        // writers), and the next batch would wait for it (130 ms at 30 publishes/s to
        // 10,000 subscribers).
        if let Ok(mut held) = held {
            runtime.block_on(held.return_to_pool());
        }
        batch.clear();
    }
}

/// Answers of the jobs that ran.
type Answers = Vec<Answer>;

/// Runs the jobs in one transaction, first without savepoints (unless a batch lately had
/// to run again: `caution`) and, should one of them fail, again with each in a savepoint
/// (see [`crate::store::group_commit`]); returns their answers once it committed, or the
/// error and the answers of the jobs that ran.
fn run_batch(connection: &Connection, batch: &mut [Job], caution: &mut Caution) -> Result<Answers, (String, Answers)> {
    let again = !caution.savepoints_first();
    if again && let Attempt::Done(answers) = run_jobs(connection, batch, false) {
        caution.ran(false);
        return answers;
    }
    caution.ran(again);
    match run_jobs(connection, batch, true) {
        Attempt::Done(answers) => answers,
        Attempt::OneFailed => Err(("a job failed outside a savepoint".to_owned(), Vec::new())),
    }
}

/// Runs the jobs in one transaction, each in a savepoint (`savepoints`; never single
/// statements) or none, then what they left to the batch.
fn run_jobs(connection: &Connection, batch: &mut [Job], savepoints: bool) -> Attempt<Answers> {
    let mut answers: Answers = Vec::with_capacity(batch.len());
    let mut later = Later::default();
    if let Err(error) = run_cached(connection, "BEGIN IMMEDIATE") {
        return Attempt::Done(Err((error.to_string(), answers)));
    }
    for job in batch.iter_mut() {
        if job.single_statement {
            let ran = (job.run)(connection, &mut later);
            answers.push(ran.answer);
            // Its error is the engine's (a refusal would be an answer), and some (I/O,
            // full disk) end the whole transaction: so does this, for every job of it.
            if !ran.kept {
                return Attempt::Done(Err(("a statement of the batch failed".to_owned(), answers)));
            }
            continue;
        }
        if !savepoints {
            let ran = (job.run)(connection, &mut later);
            answers.push(ran.answer);
            if !ran.kept {
                // Rolled back, the batch runs again and these answers are dropped unsaid.
                if let Err(error) = run_cached(connection, "ROLLBACK") {
                    return Attempt::Done(Err((error.to_string(), answers)));
                }
                return Attempt::OneFailed;
            }
            continue;
        }
        if let Err(error) = run_cached(connection, "SAVEPOINT job") {
            return Attempt::Done(Err((error.to_string(), answers)));
        }
        let asked = later.asked();
        let ran = (job.run)(connection, &mut later);
        let end = if ran.kept {
            run_cached(connection, "RELEASE job")
        } else {
            later.forget_since(asked);
            rollback_job(connection)
        };
        answers.push(ran.answer);
        if let Err(error) = end {
            return Attempt::Done(Err((error.to_string(), answers)));
        }
    }
    for statement in later.take() {
        if let Err(error) = statement(connection) {
            return Attempt::Done(Err((error.to_string(), answers)));
        }
    }
    Attempt::Done(match run_cached(connection, "COMMIT") {
        Ok(()) => Ok(answers),
        Err(error) => Err((error.to_string(), answers)),
    })
}

/// Runs a statement without parameters, prepared once (each batch runs several).
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Undoes the writes of a job that failed, and leaves its savepoint.
fn rollback_job(connection: &Connection) -> rusqlite::Result<()> {
    run_cached(connection, "ROLLBACK TO job")?;
    run_cached(connection, "RELEASE job")
}
