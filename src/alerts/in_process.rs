//! [`Webhooks::spawn_in_process`]: delivery from one breaker's subscription,
//! retried in this process.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::builder::Webhooks;
use super::endpoint::Endpoint;
use super::handle::{WebhookHandle, stopped};
use super::stats::{DeliveryOutcome, Stats};
use crate::Transition;
use crate::breaker::CircuitBreaker;
use crate::store::DEFAULT_PREFIX;

/// Transitions waiting per URL; past this, new ones are dropped (and
/// counted as dead-lettered).
pub const IN_PROCESS_QUEUE: usize = 1024;

/// One transition to POST.
struct Job {
    id: String,
    body: Arc<[u8]>,
    transition: Arc<Transition>,
}

impl Webhooks {
    /// Starts delivery of the transitions `breaker` observes, from
    /// [`CircuitBreaker::subscribe`]: for the embedded store, or a process
    /// without Redis.
    ///
    /// ## Behavior
    ///
    /// - One task reads the subscription (taken before this returns) and
    ///   queues each transition for every URL; one task per URL POSTs them
    ///   in order, retrying a failed one with backoff up to `max_tries`
    ///   before the next. A URL with more than [`IN_PROCESS_QUEUE`] waiting
    ///   drops new ones.
    /// - A transition given up on is logged at ERROR (with its JSON) and
    ///   counted as dead-lettered; nothing is stored.
    /// - A transition a webhook's filter or format leaves out is counted as
    ///   filtered, not POSTed. The PagerDuty dedup key uses the default
    ///   prefix, `fleet-breaker`.
    /// - The delivery id (`X-Fleet-Breaker-Delivery`) is `local-` and a
    ///   random UUID, the same for every try of one transition.
    /// - On a Redis store this delivers what *this* process observes: every
    ///   instance would POST every transition. Use
    ///   [`spawn_redis`](Self::spawn_redis) there.
    ///
    /// Needs a tokio runtime.
    #[must_use]
    pub fn spawn_in_process(&self, breaker: &CircuitBreaker) -> WebhookHandle {
        let stats = Arc::new(Stats::new(
            self.endpoints.iter().map(|e| e.shown().to_owned()),
            self.observer.clone(),
        ));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::with_capacity(self.endpoints.len() + 1);
        let mut queues = Vec::with_capacity(self.endpoints.len());
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let (tx, rx) = mpsc::channel(IN_PROCESS_QUEUE);
            queues.push(tx);
            let worker = Worker {
                index,
                endpoint: endpoint.clone(),
                hooks: self.clone(),
                stats: Arc::clone(&stats),
                stop: stop_rx.clone(),
            };
            tasks.push(tokio::spawn(worker.run(rx)));
        }
        if !queues.is_empty() {
            let transitions = breaker.subscribe();
            let mut stop = stop_rx;
            let stats = Arc::clone(&stats);
            tasks.push(tokio::spawn(async move {
                let mut transitions = Box::pin(transitions);
                loop {
                    let transition = tokio::select! {
                        biased;
                        () = stopped(&mut stop) => break,
                        next = transitions.next() => match next {
                            Some(transition) => transition,
                            None => break,
                        },
                    };
                    let body: Arc<[u8]> = match serde_json::to_vec(&transition) {
                        Ok(body) => body.into(),
                        Err(error) => {
                            tracing::error!(%error, "webhooks: cannot encode a transition");
                            continue;
                        }
                    };
                    let id = format!("local-{}", uuid::Uuid::new_v4().simple());
                    let shared = Arc::new(transition.clone());
                    for (index, queue) in queues.iter().enumerate() {
                        let job = Job {
                            id: id.clone(),
                            body: Arc::clone(&body),
                            transition: Arc::clone(&shared),
                        };
                        if queue.try_send(job).is_err() {
                            stats.record(index, DeliveryOutcome::DeadLettered);
                            tracing::error!(
                                agent = %transition.agent_id, generation = transition.generation,
                                "webhooks: a URL has {IN_PROCESS_QUEUE} transitions waiting; dropping this one"
                            );
                        }
                    }
                }
            }));
        }
        tracing::info!(
            urls = self.endpoints.len(),
            "webhooks: delivering this process's transitions"
        );
        WebhookHandle::new(stop_tx, tasks, stats)
    }
}

/// The delivery task of one URL.
struct Worker {
    index: usize,
    endpoint: Endpoint,
    hooks: Webhooks,
    stats: Arc<Stats>,
    stop: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut stop = self.stop.clone();
        loop {
            let job = tokio::select! {
                biased;
                () = stopped(&mut stop) => return,
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
            };
            if !self.deliver(&job).await {
                return;
            }
        }
    }

    /// Tries `job` until delivered or given up on; `false` when told to
    /// stop meanwhile.
    async fn deliver(&mut self, job: &Job) -> bool {
        let settings = Arc::clone(&self.hooks.settings);
        let url = self.endpoint.shown();
        let Some(body) = self
            .endpoint
            .body_for(&job.transition, &job.body, DEFAULT_PREFIX)
        else {
            self.stats.record(self.index, DeliveryOutcome::Filtered);
            return true;
        };
        let max_tries = u64::from(settings.max_tries);
        for tries in 1..=max_tries {
            let started = tokio::time::Instant::now();
            let result = self
                .endpoint
                .post(
                    &self.hooks.client,
                    body.clone(),
                    &job.id,
                    tries,
                    settings.timeout,
                )
                .await;
            let error = match result {
                Ok(()) => {
                    self.stats.record(self.index, DeliveryOutcome::Delivered);
                    tracing::debug!(url, id = %job.id, tries, "webhooks: delivered");
                    return true;
                }
                Err(error) => error,
            };
            if tries == max_tries {
                self.stats.record(self.index, DeliveryOutcome::DeadLettered);
                tracing::error!(
                    url, id = %job.id, tries, %error,
                    transition = %String::from_utf8_lossy(&job.body),
                    "webhooks: gave up on a transition"
                );
                return true;
            }
            self.stats.record(self.index, DeliveryOutcome::Failed);
            let delay = settings.backoff(tries);
            tracing::warn!(
                url, id = %job.id, tries, max_tries, %error,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "webhooks: delivery failed; will retry"
            );
            tokio::select! {
                () = stopped(&mut self.stop) => return false,
                () = tokio::time::sleep_until(started + delay) => {}
            }
        }
        true
    }
}
