//! Group commit: concurrent proposals share one log entry.
//!
//! openraft 0.9 appends each client write on its own and waits for the log
//! to be flushed before it takes the next one, so one entry per command
//! caps a node at one command per disk flush. Here every proposal goes
//! through a queue; one task takes everything waiting (up to
//! [`MAX_BATCH`]) and writes it as a single entry, whose payload is the list
//! of commands. Each is applied in order on every replica, each proposer
//! gets its own command's output, and a failed write fails every proposal
//! of the batch alike. With few proposals a batch is one command and
//! nothing waits; under load, batches grow and flushes stay few.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::{Error, StateMachine, TypeConfig};

/// Most commands carried by one log entry.
pub const MAX_BATCH: usize = 512;

/// Batches written and not yet applied at one time. One: whatever arrives
/// while a batch is flushed, replicated and applied waits for the next, so
/// batches grow with the load (with two in flight, each batch was half as
/// big and every flush, which wakes sled's I/O threads, cost as much).
const MAX_IN_FLIGHT: usize = 1;

/// How often the batching task lets the runtime's other ready tasks run
/// before it takes a batch, when the last batch held more than one command
/// (others propose concurrently): requests about to propose do so and
/// join the batch. Under the standard scale run this cut the log entries
/// (and disk flushes, each waking all of sled's I/O threads) from 11,000
/// to 4,000 and the manager's CPU by a third. No timer: a lone proposal,
/// or one after a lone one, is written at once.
const YIELDS_BEFORE_BATCH: usize = 8;

/// One command waiting for its batch, and where its output goes.
pub(crate) struct Proposal<S: StateMachine> {
    command: S::Command,
    reply: oneshot::Sender<Result<S::Output, Error>>,
}

/// The sending side of the queue (cheap to clone).
pub(crate) struct Proposer<S: StateMachine> {
    queue: mpsc::UnboundedSender<Proposal<S>>,
}

impl<S: StateMachine> Clone for Proposer<S> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<S: StateMachine> Proposer<S> {
    /// Starts the batching task of `raft`; it ends when every `Proposer` is
    /// dropped and the batches in flight are answered.
    pub(crate) fn start(raft: openraft::Raft<TypeConfig<S>>) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(raft, waiting));
        Self { queue }
    }

    /// Queues `command`; answers its output once its entry is applied.
    pub(crate) async fn propose(&self, command: S::Command) -> Result<S::Output, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Proposal { command, reply })
            .map_err(|_| Error::Fatal("the proposer stopped".to_string()))?;
        answer
            .await
            .map_err(|_| Error::Fatal("the proposer stopped".to_string()))?
    }
}

async fn write_batches<S: StateMachine>(
    raft: openraft::Raft<TypeConfig<S>>,
    mut waiting: mpsc::UnboundedReceiver<Proposal<S>>,
) {
    let mut in_flight = JoinSet::new();
    let mut open = true;
    let mut last_batch = 0;
    while open || !in_flight.is_empty() {
        tokio::select! {
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            next = waiting.recv(), if open && in_flight.len() < MAX_IN_FLIGHT => {
                let Some(first) = next else {
                    open = false;
                    continue;
                };
                if last_batch > 1 {
                    for _ in 0..YIELDS_BEFORE_BATCH {
                        tokio::task::yield_now().await;
                    }
                }
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match waiting.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                last_batch = batch.len();
                in_flight.spawn(write_batch(raft.clone(), batch));
            }
        }
    }
}

async fn write_batch<S: StateMachine>(
    raft: openraft::Raft<TypeConfig<S>>,
    batch: Vec<Proposal<S>>,
) {
    let (commands, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    let count = commands.len();
    match raft.client_write(commands).await {
        Ok(written) if written.data.len() == count => {
            for (reply, output) in replies.into_iter().zip(written.data) {
                let _ = reply.send(Ok(output));
            }
        }
        Ok(written) => {
            let e = Error::Fatal(format!(
                "a batch of {count} commands answered {} outputs",
                written.data.len()
            ));
            for reply in replies {
                let _ = reply.send(Err(e.duplicate()));
            }
        }
        Err(e) => {
            let e = Error::from(e);
            for reply in replies {
                let _ = reply.send(Err(e.duplicate()));
            }
        }
    }
}
