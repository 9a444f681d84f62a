//! Building a plan's steps: each step names the steps it needs; ids are stable names, so a new
//! gate or step leaves every other id as it was.

use std::collections::HashMap;

use super::{Action, Step};
use crate::ledger::AwsObject;

/// The steps of a plan under construction.
#[derive(Debug, Default)]
pub struct StepList {
    steps: Vec<Step>,
}

impl StepList {
    /// An empty list.
    pub fn new() -> StepList {
        StepList::default()
    }

    /// Adds a step needing `needs` and returns its id: `{artifact}.{action type}` (or the
    /// action type alone), with `-2`, `-3`... appended when that id is taken.
    pub fn add(
        &mut self,
        artifact: Option<&str>,
        needs: &[String],
        description: impl Into<String>,
        action: Action,
        touches: Vec<AwsObject>,
    ) -> String {
        let base = match artifact {
            Some(artifact) => format!("{artifact}.{}", action.name()),
            None => action.name().to_owned(),
        };
        let mut id = base.clone();
        let mut n = 1;
        while self.steps.iter().any(|s| s.id == id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        let (undo, stays) = action.reversibility().clone().split();
        self.steps.push(Step {
            undo,
            stays,
            id: id.clone(),
            needs: needs.to_vec(),
            artifact: artifact.map(str::to_owned),
            description: description.into(),
            action,
            touches,
        });
        id
    }

    /// A chain of steps for `artifact`, each needing the one before; the first needs `after`.
    pub fn chain(&mut self, artifact: &str, after: &str) -> Chain<'_> {
        Chain {
            list: self,
            artifact: artifact.to_owned(),
            last: after.to_owned(),
            added: Vec::new(),
        }
    }

    /// The steps, ordered so that every step comes after what it needs: by depth (the longest
    /// path of needs before it), then in the order they were added. Steps of one depth are
    /// those that can run side by side.
    pub fn finish(self) -> Vec<Step> {
        let mut depth: HashMap<String, usize> = HashMap::new();
        for step in &self.steps {
            // Needs always name steps added earlier, so one pass in order suffices.
            let d = step
                .needs
                .iter()
                .filter_map(|n| depth.get(n))
                .map(|d| d + 1)
                .max()
                .unwrap_or(0);
            depth.insert(step.id.clone(), d);
        }
        let mut steps: Vec<(usize, Step)> = self
            .steps
            .into_iter()
            .map(|s| (depth.get(&s.id).copied().unwrap_or(0), s))
            .collect();
        steps.sort_by_key(|(d, _)| *d);
        steps.into_iter().map(|(_, s)| s).collect()
    }
}

/// A run of steps of one artifact, one after another.
#[derive(Debug)]
pub struct Chain<'a> {
    list: &'a mut StepList,
    artifact: String,
    last: String,
    added: Vec<String>,
}

impl Chain<'_> {
    /// Appends a step that needs the chain's previous step; returns its id.
    pub fn then(
        &mut self,
        description: impl Into<String>,
        action: Action,
        touches: Vec<AwsObject>,
    ) -> String {
        let id = self.list.add(
            Some(&self.artifact),
            std::slice::from_ref(&self.last),
            description,
            action,
            touches,
        );
        self.last.clone_from(&id);
        self.added.push(id.clone());
        id
    }

    /// The artifact.
    pub fn artifact(&self) -> &str {
        &self.artifact
    }

    /// The ids of the steps this chain added.
    pub fn added(&self) -> &[String] {
        &self.added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(kind: &str) -> Action {
        Action::untyped(kind, serde_json::Value::Null)
    }

    #[test]
    fn steps_sort_by_depth_and_keep_their_ids() {
        let mut list = StepList::new();
        let root = list.add(None, &[], "root", action("root"), vec![]);
        let mut a = list.chain("a", &root);
        a.then("a1", action("work"), vec![]);
        a.then("a2", action("work"), vec![]);
        let mut b = list.chain("b", &root);
        let b1 = b.then("b1", action("work"), vec![]);
        let steps = list.finish();
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["root", "a.work", "b.work", "a.work-2"]);
        assert_eq!(b1, "b.work");
        assert_eq!(steps[3].needs, ["a.work"]);
    }
}
