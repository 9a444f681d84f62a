//! Gates of a rollout: steps that change nothing and stop the release when what they watch is
//! not right. A gate after a change fails the run, and the engine undoes the change.

pub mod health;
pub mod launch;
pub mod migration;
