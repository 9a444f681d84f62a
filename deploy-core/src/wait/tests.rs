//! The wait helper on tokio's paused clock: every instant below is exact.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{CANCELLED, Cancelled, LastPause, Poll, Wait, Waited, deadline_after, sleep};

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs `wait` with polls that answer `answers` in turn (then `NotYet`); returns how it
/// ended and when (since the start) each poll came.
async fn run(
    wait: &Wait<'_>,
    answers: Vec<Poll<&'static str, u32>>,
) -> (Waited<&'static str, u32>, Vec<Duration>) {
    let start = Instant::now();
    let at = Mutex::new(Vec::new());
    let answers = Mutex::new(answers.into_iter());
    let (at_ref, answers) = (&at, &answers);
    let waited = wait
        .until(move || async move {
            let mut at = at_ref.lock().expect("times");
            at.push(start.elapsed());
            let round = u32::try_from(at.len()).expect("few polls");
            let next = answers.lock().expect("answers").next();
            Ok::<_, String>(next.unwrap_or(Poll::NotYet(round)))
        })
        .await
        .expect("no poll fails here");
    (waited, at.into_inner().expect("times"))
}

#[tokio::test(start_paused = true)]
async fn done_on_the_first_poll_does_not_pause() {
    let start = Instant::now();
    let wait = Wait::within(secs(60), secs(10));
    let (waited, at) = run(&wait, vec![Poll::Done("ready")]).await;
    assert_eq!(waited, Waited::Done("ready"));
    assert_eq!(at, [Duration::ZERO]);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn it_times_out_with_a_last_poll_at_the_deadline() {
    let start = Instant::now();
    let wait = Wait::within(secs(35), secs(10));
    let (waited, at) = run(&wait, vec![]).await;
    // Four full pauses would end at 40s: the last one is cut to end at 35s.
    assert_eq!(at, [secs(0), secs(10), secs(20), secs(30), secs(35)]);
    assert_eq!(waited, Waited::TimedOut(5), "with what the last poll found");
    assert_eq!(start.elapsed(), secs(35));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_on_a_poll_ends_the_wait_there() {
    let start = Instant::now();
    let wait = Wait::within(secs(30), secs(10));
    let (waited, at) = run(&wait, vec![]).await;
    assert_eq!(at, [secs(0), secs(10), secs(20), secs(30)]);
    assert_eq!(waited, Waited::TimedOut(4));
    assert_eq!(start.elapsed(), secs(30));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_a_pause_the_poll_chose() {
    let wait = Wait::within(secs(30), secs(10));
    let answers = vec![Poll::After(secs(100), 1), Poll::Done("late")];
    let (waited, at) = run(&wait, answers).await;
    assert_eq!(
        at,
        [secs(0), secs(30)],
        "the 100s pause ends at the deadline"
    );
    assert_eq!(
        waited,
        Waited::Done("late"),
        "the poll on the deadline still counts"
    );
}

#[tokio::test(start_paused = true)]
async fn a_poll_may_choose_a_shorter_pause() {
    let wait = Wait::within(secs(60), secs(10));
    let answers = vec![Poll::After(secs(3), 1), Poll::NotYet(2), Poll::Done("ok")];
    let (waited, at) = run(&wait, answers).await;
    assert_eq!(at, [secs(0), secs(3), secs(13)]);
    assert_eq!(waited, Waited::Done("ok"));
}

#[tokio::test(start_paused = true)]
async fn polling_before_the_deadline_skips_a_pause_that_would_cross_it() {
    let start = Instant::now();
    let wait = Wait::within(secs(35), secs(10)).last_pause(LastPause::Skipped);
    let (waited, at) = run(&wait, vec![]).await;
    // After the poll at 30s a pause would end at 40s: the wait stops at 30s instead.
    assert_eq!(at, [secs(0), secs(10), secs(20), secs(30)]);
    assert_eq!(waited, Waited::TimedOut(4));
    assert_eq!(start.elapsed(), secs(30));
}

#[tokio::test(start_paused = true)]
async fn polling_before_the_deadline_takes_a_pause_ending_on_it() {
    let wait = Wait::within(secs(30), secs(10)).last_pause(LastPause::Skipped);
    let (waited, at) = run(&wait, vec![]).await;
    assert_eq!(at, [secs(0), secs(10), secs(20), secs(30)]);
    assert_eq!(waited, Waited::TimedOut(4));
}

#[tokio::test(start_paused = true)]
async fn polling_past_the_deadline_takes_whole_pauses() {
    let start = Instant::now();
    let wait = Wait::within(secs(35), secs(10)).last_pause(LastPause::Whole);
    let (waited, at) = run(&wait, vec![]).await;
    assert_eq!(at, [secs(0), secs(10), secs(20), secs(30), secs(40)]);
    assert_eq!(waited, Waited::TimedOut(5));
    assert_eq!(start.elapsed(), secs(40));
}

#[tokio::test(start_paused = true)]
async fn backing_off_doubles_the_pause_up_to_the_cap_and_starts_over_after_not_yet() {
    let wait = Wait::within(secs(3600), secs(1)).backing_off_to(secs(5));
    let answers = vec![
        Poll::BackOff(1),
        Poll::BackOff(2),
        Poll::BackOff(3),
        Poll::BackOff(4),
        Poll::BackOff(5),
        Poll::NotYet(6),
        Poll::BackOff(7),
        Poll::BackOff(8),
        Poll::Done("through"),
    ];
    let (waited, at) = run(&wait, answers).await;
    // Pauses 1, 2, 4, 5 (capped), 5; 1 after NotYet; then 1, 2 again.
    let expected = [0, 1, 3, 7, 12, 17, 18, 19, 21].map(secs);
    assert_eq!(at, expected);
    assert_eq!(waited, Waited::Done("through"));
}

#[tokio::test(start_paused = true)]
async fn without_a_cap_backing_off_keeps_the_interval() {
    let wait = Wait::within(secs(3600), secs(2));
    let answers = vec![Poll::BackOff(1), Poll::BackOff(2), Poll::Done("ok")];
    let (_, at) = run(&wait, answers).await;
    assert_eq!(at, [secs(0), secs(2), secs(4)]);
}

#[tokio::test(start_paused = true)]
async fn an_interval_above_the_cap_comes_down_to_it() {
    let wait = Wait::within(secs(3600), secs(10)).backing_off_to(secs(5));
    let answers = vec![Poll::BackOff(1), Poll::BackOff(2), Poll::Done("ok")];
    let (_, at) = run(&wait, answers).await;
    assert_eq!(at, [secs(0), secs(10), secs(15)]);
}

#[tokio::test(start_paused = true)]
async fn cancelling_mid_pause_ends_the_wait_at_once() {
    let token = CancellationToken::new();
    let canceller = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(5)).await;
        canceller.cancel();
    });
    let start = Instant::now();
    let wait = Wait::within(secs(3600), secs(60)).cancelled_by(Some(&token));
    let (waited, at) = run(&wait, vec![Poll::NotYet(7)]).await;
    assert_eq!(
        waited,
        Waited::Cancelled(7),
        "with what the last poll found"
    );
    assert_eq!(at, [Duration::ZERO], "no poll after the cancellation");
    assert_eq!(start.elapsed(), secs(5), "not the rest of the 60s pause");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_run_still_polls_once_then_stops() {
    let token = CancellationToken::new();
    token.cancel();
    let start = Instant::now();
    let wait = Wait::within(secs(3600), secs(60)).cancelled_by(Some(&token));
    let (waited, at) = run(&wait, vec![Poll::NotYet(1)]).await;
    assert_eq!(waited, Waited::Cancelled(1));
    assert_eq!(at, [Duration::ZERO]);
    assert_eq!(start.elapsed(), Duration::ZERO);
    let (waited, _) = run(&wait, vec![Poll::Done("done")]).await;
    assert_eq!(waited, Waited::Done("done"), "a poll that is done wins");
}

#[tokio::test(start_paused = true)]
async fn without_a_token_nothing_cancels() {
    let token = CancellationToken::new();
    token.cancel();
    let wait = Wait::within(secs(20), secs(10)).cancelled_by(None);
    let (waited, at) = run(&wait, vec![]).await;
    assert_eq!(waited, Waited::TimedOut(3));
    assert_eq!(at, [secs(0), secs(10), secs(20)]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_poll_ends_the_wait_with_its_error() {
    let polls = AtomicU32::new(0);
    let polls_ref = &polls;
    let wait = Wait::within(secs(60), secs(10));
    let ended = wait
        .until(move || async move {
            if polls_ref.fetch_add(1, Ordering::SeqCst) == 2 {
                Err("boom".to_owned())
            } else {
                Ok(Poll::<(), ()>::NotYet(()))
            }
        })
        .await;
    assert_eq!(ended, Err("boom".to_owned()));
    assert_eq!(polls.into_inner(), 3);
}

#[tokio::test(start_paused = true)]
async fn before_pause_hears_of_every_pause_and_not_of_the_timeout() {
    let start = Instant::now();
    let mut heard = Vec::new();
    let round = AtomicU32::new(0);
    let round = &round;
    let wait = Wait::within(secs(25), secs(10)).last_pause(LastPause::Skipped);
    let waited = wait
        .until_noting(
            move || async move {
                Ok::<Poll<(), u32>, ()>(Poll::NotYet(round.fetch_add(1, Ordering::SeqCst) + 1))
            },
            |pending| heard.push((*pending, start.elapsed())),
        )
        .await;
    assert_eq!(waited, Ok(Waited::TimedOut(3)));
    assert_eq!(heard, [(1, secs(0)), (2, secs(10))]);
}

#[tokio::test(start_paused = true)]
async fn a_lone_pause_is_cut_by_the_deadline_and_cancelled_by_the_token() {
    let token = CancellationToken::new();
    let wait = Wait::within(secs(30), secs(10)).cancelled_by(Some(&token));
    let start = Instant::now();
    assert_eq!(wait.pause(secs(100)).await, Ok(()));
    assert_eq!(start.elapsed(), secs(30));
    assert_eq!(wait.left(), Duration::ZERO);
    token.cancel();
    assert_eq!(wait.pause(secs(100)).await, Err(Cancelled));
    assert_eq!(sleep(secs(1), Some(&token)).await, Err(Cancelled));
    assert_eq!(sleep(secs(1), None).await, Ok(()));
    assert_eq!(start.elapsed(), secs(31));
}

#[tokio::test(start_paused = true)]
async fn a_timeout_too_long_to_add_up_does_not_panic() {
    let start = Instant::now();
    let far = deadline_after(Duration::MAX);
    assert!(far > start + secs(10 * 365 * 86_400), "decades away");
    assert_eq!(deadline_after(secs(5)), start + secs(5));
}

#[test]
fn the_cancel_message_is_the_one_the_runs_print() {
    assert_eq!(Cancelled.to_string(), "stopped: the run is being cancelled");
    assert_eq!(Cancelled.to_string(), CANCELLED);
}
