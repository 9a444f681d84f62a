//! Image rollouts to ECS released under faults: `ecs-rolling`, `codedeploy-blue-green` and
//! `ecs-blue-green`, with proxies in front of the ECS double, the CodeDeploy double and the
//! state bucket that answer `503`, throttle (`400 ThrottlingException`, `503 SlowDown`) or reset
//! the connection before or after the server acted: at random over several seeds, and one
//! reset after the server acted at each distinct call of a release in turn. Every run ends with
//! exit 0, 1 or 3, the lock given back and the ledger telling what runs (the service's task
//! definition read back through moto's ECS API); a clean rerun then converges on the new image.

use deploy_tests::rollout_faults::ecs::{Fixture, Kind, operations};
use deploy_tests::rollout_faults::{Running, exit};
use deploy_tests::s3_proxy::{Fault, Rule};

/// Random faults on ECS (and CodeDeploy) and on the state bucket, over three seeds.
async fn random_faults(kind: Kind) {
    let mut codes = Vec::new();
    for seed in [5, 17, 29] {
        let f = Fixture::new(kind).await;
        for proxy in f.service_proxies() {
            proxy.random_of(20, seed, "", &Fault::SERVICE);
        }
        f.s3.random_matching(15, seed, &format!("/{}", f.ledger.bucket));
        let out = f.release();
        let injected: usize = f.service_proxies().iter().map(|p| p.faults()).sum();
        assert!(
            injected + f.s3.faults() > 0,
            "{kind:?} seed {seed}: no fault was injected"
        );
        let label = format!("{kind:?} seed {seed}");
        codes.push(f.check_and_converge(&out, &label).await);
    }
    eprintln!("{kind:?}: exit codes under random faults: {codes:?}");
}

/// A clean release's calls to ECS (and CodeDeploy), then one release per distinct call (a
/// call unlike the one before it: repeated polls count once) whose answer is lost after the
/// server acted.
async fn an_answer_lost_at_each_call(kind: Kind) {
    let clean = Fixture::new(kind).await;
    let (code, text) = exit(&clean.release());
    assert_eq!(code, 0, "{text}");
    assert_eq!(clean.running().await, Running::New, "{text}");
    for (index, proxy) in clean.service_proxies().into_iter().enumerate() {
        let sequence = operations(proxy);
        let mut codes = Vec::new();
        for k in 0..sequence.len() {
            if k > 0 && sequence[k - 1] == sequence[k] {
                continue;
            }
            let f = Fixture::new(kind).await;
            let skip = u32::try_from(k).expect("few calls");
            f.service_proxies()[index].add(Rule::any(Fault::ResetAfter, 1).after(skip));
            let out = f.release();
            let label = format!("{kind:?}: answer lost at call {} ({})", k + 1, sequence[k]);
            codes.push(f.check_and_converge(&out, &label).await);
        }
        eprintln!("{kind:?}: exit codes, one lost answer per call: {codes:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_rolling_under_random_faults() {
    random_faults(Kind::Rolling).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_rolling_with_an_answer_lost_at_each_call() {
    an_answer_lost_at_each_call(Kind::Rolling).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codedeploy_under_random_faults() {
    random_faults(Kind::CodeDeploy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn codedeploy_with_an_answer_lost_at_each_call() {
    an_answer_lost_at_each_call(Kind::CodeDeploy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_blue_green_under_random_faults() {
    random_faults(Kind::BlueGreen).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ecs_blue_green_with_an_answer_lost_at_each_call() {
    an_answer_lost_at_each_call(Kind::BlueGreen).await;
}
