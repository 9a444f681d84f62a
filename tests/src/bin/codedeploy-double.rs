//! The scripted CodeDeploy double as a process, for the demo: it sits in front of a moto server
//! and plays ECS blue/green deployments, which moto's CodeDeploy does not
//! (see `deploy_tests::codedeploy_double`). Every deployment succeeds.
//!
//! ```text
//! codedeploy-double <moto-url> <region>   prints the double's URL, serves until killed
//! ```

use std::io::Write;

use deploy_tests::codedeploy_double::CodeDeployDouble;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(moto), Some(region)) = (args.next(), args.next()) else {
        eprintln!("usage: codedeploy-double <moto-url> <region>");
        std::process::exit(2);
    };
    let double = CodeDeployDouble::start(&moto, &region);
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
