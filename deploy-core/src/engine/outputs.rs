//! What steps leave for later steps and for the report: typed values per artifact, looked up
//! by type, and named report sections of JSON items.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::Serialize;

type Item = Arc<dyn Any + Send + Sync>;

/// Typed per-artifact outputs of the steps of one run.
#[derive(Default)]
pub(crate) struct Outputs {
    items: Mutex<HashMap<(String, TypeId), Item>>,
}

impl Outputs {
    pub(crate) fn put<T: Send + Sync + 'static>(&self, artifact: &str, value: T) {
        if let Ok(mut items) = self.items.lock() {
            items.insert((artifact.to_owned(), TypeId::of::<T>()), Arc::new(value));
        }
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self, artifact: &str) -> Option<Arc<T>> {
        let item = self
            .items
            .lock()
            .ok()?
            .get(&(artifact.to_owned(), TypeId::of::<T>()))
            .cloned()?;
        item.downcast::<T>().ok()
    }
}

/// The report sections of one run.
#[derive(Default)]
pub(crate) struct Sections {
    sections: Mutex<BTreeMap<String, Vec<serde_json::Value>>>,
}

impl Sections {
    pub(crate) fn declare(&self, name: &str) {
        if let Ok(mut sections) = self.sections.lock() {
            sections.entry(name.to_owned()).or_default();
        }
    }

    pub(crate) fn add(&self, name: &str, item: &impl Serialize) {
        let Ok(value) = serde_json::to_value(item) else {
            return;
        };
        if let Ok(mut sections) = self.sections.lock() {
            sections.entry(name.to_owned()).or_default().push(value);
        }
    }

    pub(crate) fn take(&self) -> BTreeMap<String, Vec<serde_json::Value>> {
        self.sections
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Digest(&'static str);

    #[test]
    fn outputs_are_found_by_artifact_and_type() {
        let outputs = Outputs::default();
        outputs.put("api", Digest("sha256:aa"));
        outputs.put("api", 7_u32);
        assert_eq!(
            outputs.get::<Digest>("api").as_deref(),
            Some(&Digest("sha256:aa"))
        );
        assert_eq!(outputs.get::<u32>("api").as_deref(), Some(&7));
        assert!(outputs.get::<Digest>("web").is_none());
        assert!(outputs.get::<String>("api").is_none());
    }
}
