//! A step's action: a type name plus that type's inputs, as one JSON object
//! (`{"type": "publish-image", "repository": ..., ...}`).
//!
//! The engine does not know what an action means: it hands the step to the [`StepHandler`]
//! registered for the action's type. Each kind declares its inputs as a struct implementing
//! [`ActionInput`], so its planner writes them and its step reads them back typed.
//!
//! [`StepHandler`]: ../engine/trait.StepHandler.html

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Reversibility;

/// The inputs of one action type.
pub trait ActionInput: Serialize + DeserializeOwned {
    /// The action's `type`, e.g. `publish-image`.
    const TYPE: &'static str;

    /// What becomes of the change a step with these inputs makes when a later step fails:
    /// the plan shows it before anything runs, and the step's handler keeps to it.
    fn reversibility(&self) -> Reversibility;
}

/// What a step does, with its inputs.
#[derive(Debug, Clone)]
pub struct Action {
    kind: String,
    input: serde_json::Map<String, serde_json::Value>,
    /// What the inputs declared; a plan's step keeps it (`Step::undo`) once added.
    reversibility: Reversibility,
}

/// An action whose inputs do not fit its type.
#[derive(Debug, thiserror::Error)]
#[error("the inputs of a `{kind}` action are not valid: {source}")]
pub struct InvalidInput {
    /// The action type.
    pub kind: String,
    /// What is wrong.
    #[source]
    pub source: serde_json::Error,
}

impl crate::error::Classify for InvalidInput {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Failure
    }
}

// Two actions are the same when their type and inputs are: the declaration travels with the
// step once the plan is made.
impl PartialEq for Action {
    fn eq(&self, other: &Action) -> bool {
        self.kind == other.kind && self.input == other.input
    }
}

impl Action {
    /// The action of type `T::TYPE` with `input`.
    pub fn new<T: ActionInput>(input: &T) -> Action {
        let input_value = input;
        let input = match serde_json::to_value(input) {
            Ok(serde_json::Value::Object(map)) => map,
            // Inputs are structs; anything else is kept whole under `input`.
            Ok(other) => serde_json::Map::from_iter([("input".to_owned(), other)]),
            Err(_) => serde_json::Map::new(),
        };
        Action {
            kind: T::TYPE.to_owned(),
            input,
            reversibility: input_value.reversibility(),
        }
    }

    /// An action of any type with untyped inputs (an object; other values go under `input`).
    pub fn untyped(kind: &str, input: serde_json::Value) -> Action {
        let input = match input {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => serde_json::Map::new(),
            other => serde_json::Map::from_iter([("input".to_owned(), other)]),
        };
        Action {
            kind: kind.to_owned(),
            input,
            reversibility: Reversibility::Nothing,
        }
    }

    /// The action, declaring what becomes of its change when a later step fails (untyped
    /// actions declare [`Reversibility::Nothing`] until told otherwise).
    pub fn declaring(mut self, reversibility: Reversibility) -> Action {
        self.reversibility = reversibility;
        self
    }

    /// What the action declared about undoing its change.
    pub fn reversibility(&self) -> &Reversibility {
        &self.reversibility
    }

    /// The action's type, as in the JSON `type` field.
    pub fn name(&self) -> &str {
        &self.kind
    }

    /// Whether this is an action of type `T::TYPE`.
    pub fn is<T: ActionInput>(&self) -> bool {
        self.kind == T::TYPE
    }

    /// The inputs read as `T`.
    pub fn input<T: ActionInput>(&self) -> Result<T, InvalidInput> {
        serde_json::from_value(serde_json::Value::Object(self.input.clone())).map_err(|source| {
            InvalidInput {
                kind: self.kind.clone(),
                source,
            }
        })
    }

    /// The inputs as JSON.
    pub fn raw_input(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.input
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = self.input.clone();
        map.insert(
            "type".to_owned(),
            serde_json::Value::String(self.kind.clone()),
        );
        map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
        let mut input = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        match input.remove("type") {
            Some(serde_json::Value::String(kind)) if !kind.is_empty() => Ok(Action {
                kind,
                input,
                reversibility: Reversibility::Nothing,
            }),
            _ => Err(serde::de::Error::custom(
                "an action needs a `type` (a non-empty string)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        host: String,
    }

    impl ActionInput for Ping {
        const TYPE: &'static str = "ping";

        fn reversibility(&self) -> crate::plan::Reversibility {
            crate::plan::Reversibility::Nothing
        }
    }

    #[test]
    fn inputs_round_trip_beside_the_type() {
        let action = Action::new(&Ping { host: "h".into() });
        let json = serde_json::to_value(&action).expect("json");
        assert_eq!(json, serde_json::json!({"type": "ping", "host": "h"}));
        let back: Action = serde_json::from_value(json).expect("parse");
        assert!(back.is::<Ping>());
        assert_eq!(
            back.input::<Ping>().expect("typed"),
            Ping { host: "h".into() }
        );
    }

    #[test]
    fn a_missing_type_or_wrong_inputs_are_errors() {
        assert!(serde_json::from_value::<Action>(serde_json::json!({"host": "h"})).is_err());
        let action = Action::untyped("ping", serde_json::json!({"port": 1}));
        let err = action.input::<Ping>().expect_err("no host");
        assert!(err.to_string().contains("`ping`"), "{err}");
    }
}
