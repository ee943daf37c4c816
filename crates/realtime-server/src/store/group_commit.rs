//! Group commit: the writes of concurrent requests share one transaction.
//!
//! Each request paying for a transaction of its own is what limits durable writes: on
//! SQLite, one writer, each transaction its `BEGIN IMMEDIATE`, its pages appended to the
//! WAL, its `COMMIT`; on PostgreSQL, a WAL flush per commit, during which the account's
//! row stays locked, so one account's publishes go one flush at a time. Here a writer
//! task per store takes every job waiting in its queue (up to [`MAX_BATCH`]), runs them
//! in one transaction, commits once, and only then answers each job. A batch runs first
//! without savepoints, which cost a round trip per job on PostgreSQL and a copy of every
//! page a job touches on SQLite; should a job fail (a refusal: rare), the batch is rolled
//! back whole and runs again with each job in a savepoint, so that a job that fails rolls
//! back to its savepoint and leaves the others be. Jobs can therefore run twice, and only
//! their last run answers. After a batch ran twice the next few run with savepoints at
//! once ([`Caution`]), so that a caller refused again and again does not double the work
//! of every batch. A commit that fails fails them all. A job that writes with one
//! statement runs without a savepoint (the engine undoes a failed statement itself); its
//! failure can only be the engine's, and fails the batch. Nothing is answered before it is committed, so an answered
//! request survives a crash exactly as with a transaction of its own.
//!
//! Jobs run in the order of their accounts (and in queue order within one), and touch
//! only their account's rows: two nodes' batches lock accounts in one order and cannot
//! deadlock on them.
//!
//! A job runs on the writer's connection in the writer task, so what it runs must own its
//! inputs (the seal of an idempotent answer included: see [`crate::store::SealOf`]). What a
//! job needs done once per batch rather than once per job (a publish's trim of its
//! channel's history) it leaves to the batch: [`BeforeCommit`].
//!
//! This writer serves PostgreSQL. SQLite's is [`super::sqlite`]'s own: the same batches,
//! run synchronously on a thread of their own, because there each statement through
//! sqlx is a round trip between threads, and those round trips were what a publish cost.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use sqlx::{Connection, Database, Executor, Pool};
use tokio::sync::{mpsc, oneshot};

use crate::store::{StoreError, StoreResult};

/// The most jobs one transaction takes.
pub const MAX_BATCH: usize = 64;

/// Jobs waiting for the writer.
const QUEUE: usize = 1024;

/// Statements a batch runs once, just before its commit, for the jobs of it that asked: a
/// channel's history is trimmed once per batch, not after each publish to it (on SQLite the
/// trim was 9% of the REST publish's CPU; on PostgreSQL it is a round trip). Of the
/// statements asked for under one key, only the last runs; those of a job that is rolled
/// back are dropped with it. One that fails fails the batch, as a failed commit would.
/// `S` is a statement as the store's writer runs it.
pub struct BeforeCommit<S> {
    statements: Vec<(String, S)>,
}

impl<S> Default for BeforeCommit<S> {
    fn default() -> Self {
        BeforeCommit { statements: Vec::new() }
    }
}

impl<S> BeforeCommit<S> {
    /// Asks for `statement` before the commit, in place of any asked for earlier under `key`.
    pub fn last_of(&mut self, key: String, statement: S) {
        self.statements.push((key, statement));
    }

    /// How many statements were asked for so far: a job that is rolled back forgets what
    /// it asked for after this ([`BeforeCommit::forget_since`]).
    pub(in crate::store) fn asked(&self) -> usize {
        self.statements.len()
    }

    /// Forgets the statements asked for since `asked`.
    pub(in crate::store) fn forget_since(&mut self, asked: usize) {
        self.statements.truncate(asked);
    }

    /// The last statement of each key, in the order they were asked for.
    pub(in crate::store) fn take(&mut self) -> Vec<S> {
        let statements = std::mem::take(&mut self.statements);
        let mut last = std::collections::HashMap::with_capacity(statements.len());
        for (index, (key, _)) in statements.iter().enumerate() {
            last.insert(key.clone(), index);
        }
        let keep = |(index, (key, statement)): (usize, (String, S))| (last[&key] == index).then_some(statement);
        statements.into_iter().enumerate().filter_map(keep).collect()
    }
}

/// A statement a PostgreSQL job leaves to its batch.
pub type LaterStatement<DB> =
    Box<dyn for<'c> FnOnce(&'c mut <DB as Database>::Connection) -> BoxFuture<'c, StoreResult<()>> + Send>;

/// What a job of this writer leaves to its batch.
pub type Later<DB> = BeforeCommit<LaterStatement<DB>>;

/// A job as the writer runs it: its statements, then what to answer once the commit is
/// known.
struct Job<DB: Database> {
    /// The account whose rows the job writes.
    account: String,
    run: RunJob<DB>,
    /// Whether the job writes with one statement only. SQLite undoes a failed statement by
    /// itself, so such a job needs no savepoint (two round trips to the connection's
    /// thread fewer: the statements of a batch are what it costs).
    single_statement: bool,
}

/// A job's statements; a job may run twice (see the module's documentation).
type RunJob<DB> =
    Box<dyn for<'c> FnMut(&'c mut <DB as Database>::Connection, &'c mut Later<DB>) -> BoxFuture<'c, Ran> + Send>;

/// A job that ran: whether to keep its writes, and how to answer it after the commit.
/// SQLite's writer (`store/sqlite/writer.rs`) answers its jobs the same way.
pub(in crate::store) struct Ran {
    pub(in crate::store) kept: bool,
    pub(in crate::store) answer: Answer,
}

/// Answers a job with whether its batch committed (or why not).
pub(in crate::store) type Answer = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// Where a job's result goes: a job that runs twice answers once, from the run whose
/// batch's commit is known (the answer of a run rolled back with its batch is dropped).
pub(in crate::store) struct ReplyTo<T>(Arc<Mutex<Option<oneshot::Sender<StoreResult<T>>>>>);

impl<T> Clone for ReplyTo<T> {
    fn clone(&self) -> Self {
        ReplyTo(self.0.clone())
    }
}

impl<T> ReplyTo<T> {
    /// Replies through `sender`.
    pub(in crate::store) fn new(sender: oneshot::Sender<StoreResult<T>>) -> ReplyTo<T> {
        ReplyTo(Arc::new(Mutex::new(Some(sender))))
    }

    fn send(&self, result: StoreResult<T>) {
        if let Some(sender) = self.0.lock().expect("reply lock").take() {
            let _ = sender.send(result);
        }
    }
}

impl Ran {
    /// A job whose statements gave `result`: its writes are kept when it succeeded, and
    /// `reply` gets the result once the batch's commit is known (a failed commit fails it).
    pub(in crate::store) fn of<T: Send + 'static>(result: StoreResult<T>, reply: &ReplyTo<T>) -> Ran {
        let kept = result.is_ok();
        let reply = reply.clone();
        let answer = Box::new(move |committed: Result<(), &str>| {
            let result = match committed {
                Ok(()) => result,
                Err(error) => result.and(Err(not_committed(error))),
            };
            reply.send(result);
        });
        Ran { kept, answer }
    }
}

/// The queue of the writer task; cheap to clone.
pub struct GroupWriter<DB: Database> {
    jobs: mpsc::Sender<Job<DB>>,
}

impl<DB: Database> Clone for GroupWriter<DB> {
    fn clone(&self) -> Self {
        GroupWriter { jobs: self.jobs.clone() }
    }
}

impl<DB: Database> std::fmt::Debug for GroupWriter<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter").field("queued", &(QUEUE - self.jobs.capacity())).finish()
    }
}

impl<DB: Database> GroupWriter<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Starts the writer task over `pool` (for SQLite, the pool of the one writing
    /// connection: other writers take it between batches); each batch starts with
    /// `begin`.
    pub fn start(pool: Pool<DB>, begin: &'static str) -> GroupWriter<DB> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool, begin, queue));
        GroupWriter { jobs }
    }

    /// Runs `job` in the next batch and returns its result once that batch committed; its
    /// writes (and what it left to the batch) are rolled back when it returns an error.
    /// It may run twice (its first batch rolled back whole): its future owns what it reads.
    pub async fn run<T, F>(&self, account: &str, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut DB::Connection, &'c mut Later<DB>) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        self.submit(account, job, false).await
    }

    /// [`GroupWriter::run`] for a job whose writes are one statement (reads besides are
    /// fine): no savepoint is needed to undo it.
    pub async fn run_single_statement<T, F>(&self, account: &str, mut job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut DB::Connection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        self.submit(account, move |connection, _| job(connection), true).await
    }

    async fn submit<T, F>(&self, account: &str, mut job: F, single_statement: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut DB::Connection, &'c mut Later<DB>) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (result_tx, result_rx) = oneshot::channel::<StoreResult<T>>();
        let reply = ReplyTo::new(result_tx);
        let run: RunJob<DB> = Box::new(move |connection, later| {
            let ran = job(connection, later);
            let reply = reply.clone();
            Box::pin(async move { Ran::of(ran.await, &reply) })
        });
        self.jobs
            .send(Job { account: account.to_owned(), run, single_statement })
            .await
            .map_err(|_| not_committed("the writer has stopped"))?;
        result_rx.await.map_err(|_| not_committed("the writer has stopped"))?
    }
}

/// The error of a job whose writes did not commit.
pub(in crate::store) fn not_committed(reason: &str) -> StoreError {
    StoreError::Internal(sqlx::Error::Protocol(format!("not committed: {reason}")))
}

async fn write_batches<DB: Database>(pool: Pool<DB>, begin: &'static str, mut queue: mpsc::Receiver<Job<DB>>)
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut caution = Caution::default();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batch.sort_by(|a, b| a.account.cmp(&b.account));
        let answers = match pool.acquire().await {
            Ok(mut connection) => run_batch(&mut connection, begin, &mut batch, &mut caution).await,
            Err(error) => Err((error.to_string(), Vec::new())),
        };
        match answers {
            Ok(answers) => answers.into_iter().for_each(|answer| answer(Ok(()))),
            Err((error, answers)) => {
                tracing::error!(%error, jobs = batch.len(), "a batch of writes was not committed");
                answers.into_iter().for_each(|answer| answer(Err(&error)));
                // Jobs that never ran are dropped: their callers learn the writes did not happen.
            }
        }
        batch.clear();
    }
}

/// Runs the jobs in one transaction, first without savepoints (unless a batch lately had
/// to run again: `caution`) and, should one of them fail, again with each in a savepoint
/// (see the module's documentation); returns their answers once it committed, or the
/// error and the answers of the jobs that ran.
async fn run_batch<DB: Database>(
    connection: &mut DB::Connection,
    begin: &'static str,
    batch: &mut [Job<DB>],
    caution: &mut Caution,
) -> Result<Vec<Answer>, (String, Vec<Answer>)>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let again = !caution.savepoints_first();
    if again && let Attempt::Done(answers) = run_jobs(connection, begin, batch, false).await {
        caution.ran(false);
        return answers;
    }
    caution.ran(again);
    match run_jobs(connection, begin, batch, true).await {
        Attempt::Done(answers) => answers,
        Attempt::OneFailed => Err(("a job failed outside a savepoint".to_owned(), Vec::new())),
    }
}

/// Whether a writer's next batch runs without savepoints first. After a batch had to run
/// again, the next [`Caution::BATCHES`] run with savepoints at once: a caller that keeps
/// being refused (publishing without credit, say) would otherwise have every batch it is
/// in run twice.
#[derive(Debug, Default)]
pub(in crate::store) struct Caution {
    careful_batches_left: u32,
}

impl Caution {
    /// Batches run with savepoints at once after one had to run again.
    const BATCHES: u32 = 16;

    /// Whether the next batch runs with savepoints at once.
    pub(in crate::store) fn savepoints_first(&self) -> bool {
        self.careful_batches_left > 0
    }

    /// Notes how a batch ran: `again` when it had to run again with savepoints.
    pub(in crate::store) fn ran(&mut self, again: bool) {
        self.careful_batches_left = if again { Self::BATCHES } else { self.careful_batches_left.saturating_sub(1) };
    }
}

/// How a batch's run ended.
pub(in crate::store) enum Attempt<A> {
    /// Committed (the answers), or failed as a whole (the error and the answers of the jobs
    /// that ran).
    Done(Result<A, (String, A)>),
    /// A job failed in a batch run without savepoints, which was rolled back whole.
    OneFailed,
}

/// Runs the jobs in one transaction, each in a savepoint (`savepoints`) or none.
async fn run_jobs<DB: Database>(
    connection: &mut DB::Connection,
    begin: &'static str,
    batch: &mut [Job<DB>],
    savepoints: bool,
) -> Attempt<Vec<Answer>>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut answers = Vec::with_capacity(batch.len());
    let mut later = Later::<DB>::default();
    let mut transaction = match connection.begin_with(begin).await {
        Ok(transaction) => transaction,
        Err(error) => return Attempt::Done(Err((error.to_string(), answers))),
    };
    // A kept job's savepoint stays open until the next savepoint releases it in the same
    // round trip, or the commit does: each round trip to PostgreSQL is what a job costs.
    let mut open = false;
    for job in batch.iter_mut() {
        if job.single_statement {
            let ran = (job.run)(&mut transaction, &mut later).await;
            answers.push(ran.answer);
            // Its error is the engine's (a refusal would be an answer), and some (I/O,
            // full disk) end the whole transaction: so does this, for every job of it.
            if !ran.kept {
                return Attempt::Done(Err(("a statement of the batch failed".to_owned(), answers)));
            }
            continue;
        }
        if !savepoints {
            let ran = (job.run)(&mut transaction, &mut later).await;
            answers.push(ran.answer);
            if !ran.kept {
                // Rolled back, the batch runs again and these answers are dropped unsaid.
                if let Err(error) = transaction.rollback().await {
                    return Attempt::Done(Err((error.to_string(), answers)));
                }
                return Attempt::OneFailed;
            }
            continue;
        }
        let begin = if open { "RELEASE job; SAVEPOINT job" } else { "SAVEPOINT job" };
        if let Err(error) = sqlx::raw_sql(begin).execute(&mut *transaction).await {
            return Attempt::Done(Err((error.to_string(), answers)));
        }
        let asked = later.asked();
        let ran = (job.run)(&mut transaction, &mut later).await;
        answers.push(ran.answer);
        open = ran.kept;
        if !ran.kept {
            later.forget_since(asked);
            if let Err(error) = sqlx::raw_sql("ROLLBACK TO job; RELEASE job").execute(&mut *transaction).await {
                return Attempt::Done(Err((error.to_string(), answers)));
            }
        }
    }
    for statement in later.take() {
        if let Err(error) = statement(&mut transaction).await {
            return Attempt::Done(Err((error.to_string(), answers)));
        }
    }
    Attempt::Done(match transaction.commit().await {
        Ok(()) => Ok(answers),
        Err(error) => Err((error.to_string(), answers)),
    })
}

#[cfg(test)]
mod tests {
    use super::Caution;

    #[test]
    fn after_a_batch_ran_again_the_next_sixteen_take_savepoints_at_once_then_batches_try_without() {
        let mut caution = Caution::default();
        assert!(!caution.savepoints_first(), "a writer starts without savepoints");
        caution.ran(false);
        assert!(!caution.savepoints_first(), "a batch that committed at once changes nothing");
        caution.ran(true);
        for batch in 1..=Caution::BATCHES {
            assert!(caution.savepoints_first(), "batch {batch} after the one that ran again");
            caution.ran(false);
        }
        assert!(!caution.savepoints_first(), "then batches try without savepoints again");
    }
}
