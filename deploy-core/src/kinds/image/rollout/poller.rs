//! One `DescribeServices` per cluster per round: rollouts of many services of one cluster that
//! run at once share their polls. Whoever polls first in a round describes every service being
//! followed in that cluster (ten per call, ECS's limit); the others, polling moments later,
//! read that answer instead of asking again.
//!
//! Followers of one cluster wait for the cluster's next round ([`Poller::next_round`]) rather
//! than each keeping its own rhythm, so their polls fall together. An answer is only shared
//! with a follower when it was fetched after that follower's own change (`not_before`), so
//! nobody reads a state from before its `UpdateService`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::Service;

use super::cleanup::DESCRIBE_SERVICES_BATCH;
use crate::aws::SdkFailure;

/// The shared polls of every cluster, for one engine.
#[derive(Debug, Default)]
pub struct Poller {
    /// By environment and cluster.
    clusters: Mutex<HashMap<(String, String), SharedRound>>,
}

type SharedRound = Arc<tokio::sync::Mutex<Round>>;

/// What was last read of one cluster.
#[derive(Debug, Default)]
struct Round {
    /// Services being followed, with how many followers each.
    watched: BTreeMap<String, usize>,
    /// Their last descriptions (`None`: ECS does not know the service).
    last: HashMap<String, Option<Service>>,
    fetched_at: Option<Instant>,
}

/// A service's description, as one round read it.
pub(crate) type Described = Result<Option<Service>, SdkFailure>;

impl Poller {
    fn round(&self, environment: &str, cluster: &str) -> SharedRound {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        clusters
            .entry((environment.to_owned(), cluster.to_owned()))
            .or_default()
            .clone()
    }

    /// Starts following `service`: later rounds describe it with the others of its cluster.
    pub(crate) async fn watch(&self, environment: &str, cluster: &str, service: &str) {
        let round = self.round(environment, cluster);
        *round
            .lock()
            .await
            .watched
            .entry(service.to_owned())
            .or_default() += 1;
    }

    /// Stops following `service`.
    pub(crate) async fn unwatch(&self, environment: &str, cluster: &str, service: &str) {
        let round = self.round(environment, cluster);
        let mut round = round.lock().await;
        if let Some(count) = round.watched.get_mut(service) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                round.watched.remove(service);
                round.last.remove(service);
            }
        }
    }

    /// When the cluster's next round is due: one `poll` after the last, so that followers of
    /// one cluster poll together; now when there was none.
    pub(crate) async fn next_round(
        &self,
        environment: &str,
        cluster: &str,
        poll: Duration,
    ) -> Instant {
        let round = self.round(environment, cluster);
        let last = round.lock().await.fetched_at;
        last.map_or_else(Instant::now, |at| at + poll)
    }

    /// `service` as of a round fetched after `not_before` and less than `fresh` before this
    /// call; a new
    /// round of the cluster's watched services when there is none.
    pub(crate) async fn describe(
        &self,
        ecs: &aws_sdk_ecs::Client,
        (environment, cluster, service): (&str, &str, &str),
        not_before: Instant,
        fresh: Duration,
    ) -> Described {
        let asked = Instant::now();
        let round = self.round(environment, cluster);
        let mut round = round.lock().await;
        // Fresh when fetched less than `fresh` before this call asked: a follower that waited
        // for the lock while a round was fetched takes that round.
        let usable = round
            .fetched_at
            .is_some_and(|at| at >= not_before && asked.saturating_duration_since(at) < fresh);
        if usable && let Some(found) = round.last.get(service) {
            return Ok(found.clone());
        }
        let mut names: BTreeSet<String> = round.watched.keys().cloned().collect();
        names.insert(service.to_owned());
        let fetched_at = Instant::now();
        let found = describe_all(ecs, cluster, &names).await?;
        round.last = found;
        round.fetched_at = Some(fetched_at);
        Ok(round.last.get(service).cloned().flatten())
    }
}

/// Every service of `names` in `cluster`, ten per call.
async fn describe_all(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    names: &BTreeSet<String>,
) -> Result<HashMap<String, Option<Service>>, SdkFailure> {
    let names: Vec<String> = names.iter().cloned().collect();
    let mut found: HashMap<String, Option<Service>> =
        names.iter().map(|n| (n.clone(), None)).collect();
    for batch in names.chunks(DESCRIBE_SERVICES_BATCH) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(batch.to_vec()))
            .send()
            .await
            .map_err(SdkFailure::new)?;
        for service in out.services() {
            let name = batch.iter().find(|n| {
                service.service_name() == Some(n.as_str())
                    || service.service_arn() == Some(n.as_str())
            });
            if let Some(name) = name {
                found.insert(name.clone(), Some(service.clone()));
            }
        }
    }
    Ok(found)
}
