//! The scripted ECS double as a process, for the demo: it sits in front of a moto server and
//! plays the deployment and task lifecycles moto does not (see `deploy_tests::ecs_double`).
//! Every deployment completes at its first poll and every task exits 0.
//!
//! ```text
//! ecs-double <moto-url>      prints the double's URL on the first line, serves until killed
//! ```

use std::io::Write;

use deploy_tests::ecs_double::EcsDouble;

fn main() {
    let Some(moto) = std::env::args().nth(1) else {
        eprintln!("usage: ecs-double <moto-url>");
        std::process::exit(2);
    };
    let double = EcsDouble::start(&moto);
    let mut out = std::io::stdout();
    if writeln!(out, "{}", double.url)
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(1);
    }
    loop {
        std::thread::park();
    }
}
