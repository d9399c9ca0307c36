//! Opportunistic batching: concurrent calls of one operation (a node's `sendrawtransactions`, a
//! database write) are merged into one call, and each caller gets its share of the answer.
//!
//! Why: under concurrency, most of a single-transaction submission is per-call overhead (a round
//! trip, a statement, a commit), not per-transaction work. Nothing waits for a batch to fill: a
//! call starts at once when a slot is free; calls arriving while every slot is busy are merged into
//! the next one. At concurrency 1 this is a direct call.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, mpsc, oneshot};

struct Job<Req, Resp> {
    req: Req,
    reply: oneshot::Sender<Resp>,
}

/// How a batch is formed and run.
pub trait Batch: Send + Sync + 'static {
    /// One caller's request.
    type Req: Send + 'static;
    /// One caller's answer.
    type Resp: Send + 'static;

    /// Items a request adds to a batch (batches stop growing at `max_items`).
    fn size(req: &Self::Req) -> usize;

    /// Whether `req` may join a batch already holding `batch` (no item twice in one call, where
    /// the operation cannot take that).
    fn fits(batch: &[&Self::Req], req: &Self::Req) -> bool;

    /// Runs the merged call; one answer per request, in order.
    fn run(&self, reqs: Vec<Self::Req>) -> impl Future<Output = Vec<Self::Resp>> + Send;
}

/// A handle to a batching worker. Cheap to clone.
pub struct Coalescer<B: Batch> {
    jobs: mpsc::UnboundedSender<Job<B::Req, B::Resp>>,
    batch: Arc<B>,
    slots: Arc<Semaphore>,
    /// Requests waiting for the worker.
    queued: Arc<AtomicUsize>,
    parallel: usize,
}

impl<B: Batch> Clone for Coalescer<B> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            batch: self.batch.clone(),
            slots: self.slots.clone(),
            queued: self.queued.clone(),
            parallel: self.parallel,
        }
    }
}

impl<B: Batch> std::fmt::Debug for Coalescer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl<B: Batch> Coalescer<B> {
    /// Starts the worker: at most `parallel` merged calls in flight, each of at most `max_items`
    /// items (a single larger request still goes alone).
    pub fn start(batch: B, parallel: usize, max_items: usize) -> Self {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job<B::Req, B::Resp>>();
        let batch = Arc::new(batch);
        let parallel = parallel.max(1);
        let slots = Arc::new(Semaphore::new(parallel));
        let queued = Arc::new(AtomicUsize::new(0));
        let handle =
            Self { jobs, batch: batch.clone(), slots: slots.clone(), queued: queued.clone(), parallel };
        tokio::spawn(async move {
            let mut carried: Option<Job<B::Req, B::Resp>> = None;
            loop {
                let first = match carried.take() {
                    Some(job) => job,
                    None => match queue.recv().await {
                        Some(job) => job,
                        None => return,
                    },
                };
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                // Everything that queued meanwhile joins, as far as it fits.
                queued.fetch_sub(1, Ordering::SeqCst);
                let mut items = B::size(&first.req);
                let mut taken = vec![first];
                while items < max_items {
                    let Ok(job) = queue.try_recv() else { break };
                    queued.fetch_sub(1, Ordering::SeqCst);
                    let reqs: Vec<&B::Req> = taken.iter().map(|j| &j.req).collect();
                    if !B::fits(&reqs, &job.req) {
                        // Still waiting: counted until a batch takes it.
                        queued.fetch_add(1, Ordering::SeqCst);
                        carried = Some(job);
                        break;
                    }
                    items += B::size(&job.req);
                    taken.push(job);
                }
                let batch = batch.clone();
                tokio::spawn(async move {
                    let (reqs, replies): (Vec<_>, Vec<_>) =
                        taken.into_iter().map(|j| (j.req, j.reply)).unzip();
                    let answers = batch.run(reqs).await;
                    for (answer, reply) in answers.into_iter().zip(replies) {
                        // A caller that went away does not matter.
                        let _ = reply.send(answer);
                    }
                    drop(slot);
                });
            }
        });
        handle
    }

    /// Submits a request and waits for its share of the answer; `None` if the worker is gone.
    /// When nothing is in flight or waiting, the call runs at once in the caller's task (no hop
    /// to the worker: at concurrency 1 this is a direct call); under concurrency it goes to the
    /// worker, where it can be merged.
    pub async fn call(&self, req: B::Req) -> Option<B::Resp> {
        if self.queued.load(Ordering::SeqCst) == 0
            && self.slots.available_permits() == self.parallel
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            let answer = self.batch.run(vec![req]).await.pop();
            drop(slot);
            return answer;
        }
        let (reply, answer) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.jobs.send(Job { req, reply }).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Doubles numbers; counts calls; refuses a number twice in one call.
    struct Double(Arc<AtomicUsize>);

    impl Batch for Double {
        type Req = Vec<u32>;
        type Resp = Vec<u32>;

        fn size(req: &Vec<u32>) -> usize {
            req.len()
        }

        fn fits(batch: &[&Vec<u32>], req: &Vec<u32>) -> bool {
            !batch.iter().any(|b| b.iter().any(|x| req.contains(x)))
        }

        async fn run(&self, reqs: Vec<Vec<u32>>) -> Vec<Vec<u32>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            reqs.into_iter().map(|r| r.into_iter().map(|x| x * 2).collect()).collect()
        }
    }

    #[tokio::test]
    async fn concurrent_calls_are_merged_and_each_gets_its_own_answer() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Coalescer::start(Double(calls.clone()), 1, 1000);
        let handles: Vec<_> = (0..50u32)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { (i, c.call(vec![i, i + 1000]).await.unwrap()) })
            })
            .collect();
        for h in handles {
            let (i, answer) = h.await.unwrap();
            assert_eq!(answer, vec![i * 2, (i + 1000) * 2]);
        }
        let n = calls.load(Ordering::SeqCst);
        assert!((1..50).contains(&n), "50 calls were merged into {n}");
    }

    #[tokio::test]
    async fn a_request_that_does_not_fit_waits_for_the_next_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Coalescer::start(Double(calls.clone()), 1, 1000);
        let (a, b) = tokio::join!(c.call(vec![7]), c.call(vec![7]));
        assert_eq!((a.unwrap(), b.unwrap()), (vec![14], vec![14]));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the same item never goes twice in one call");
    }
}
