//! What a record names: the exact bytes of a release, written by the artifact's kind and kept
//! opaque by the ledger.

use serde::{Deserialize, Serialize};

/// The exact bytes a release refers to, as the artifact's kind wrote them: its `kind`, the
/// `content_id` of the bytes (an image digest, a DAG content hash, a Lambda `CodeSha256`: two
/// references with the same one run the same thing), and the kind's own fields. The ledger
/// keeps it opaque; a kind reads its fields back with [`ArtifactRef::decode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactRef {
    kind: String,
    content_id: String,
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
}

/// A kind's reference to the exact bytes of a release, kept in records as an [`ArtifactRef`].
pub trait KindRef: Serialize + serde::de::DeserializeOwned {
    /// The kind's name (`image`, `dags`, `lambda`), the reference's `kind`.
    const KIND: &'static str;

    /// What identifies the bytes: the same for two releases that run the same thing.
    fn content_id(&self) -> &str;
}

impl ArtifactRef {
    /// The reference `kind_ref` kept in a record.
    pub fn new<T: KindRef>(kind_ref: &T) -> ArtifactRef {
        let mut fields = match serde_json::to_value(kind_ref) {
            Ok(serde_json::Value::Object(fields)) => fields,
            // A kind's reference is a struct; anything else is kept whole.
            Ok(other) => serde_json::Map::from_iter([("value".to_owned(), other)]),
            Err(_) => serde_json::Map::new(),
        };
        fields.remove("kind");
        fields.remove("content_id");
        ArtifactRef {
            kind: T::KIND.to_owned(),
            content_id: kind_ref.content_id().to_owned(),
            fields,
        }
    }

    /// The kind that wrote the reference.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// What identifies the bytes, whatever the kind. Two references with the same one run the
    /// same thing.
    pub fn content_id(&self) -> &str {
        &self.content_id
    }

    /// The kind's reference, when this is one of kind `T::KIND` and its fields read as `T`.
    pub fn decode<T: KindRef>(&self) -> Option<T> {
        if self.kind != T::KIND {
            return None;
        }
        serde_json::from_value(serde_json::Value::Object(self.fields.clone())).ok()
    }

    /// The kind's own fields, as JSON.
    pub fn fields(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.fields
    }
}

/// Fields under which records written before `content_id` existed (deploy 0.x) named the
/// bytes, in the order they are looked for.
const CONTENT_ID_BEFORE: [&str; 3] = ["digest", "content_hash", "code_sha256"];

impl<'de> Deserialize<'de> for ArtifactRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<ArtifactRef, D::Error> {
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let Some(serde_json::Value::String(kind)) = fields.remove("kind") else {
            return Err(serde::de::Error::custom(
                "an artifact reference needs a `kind` (a string)",
            ));
        };
        let content_id = match fields.remove("content_id") {
            Some(serde_json::Value::String(id)) => Some(id),
            _ => CONTENT_ID_BEFORE
                .iter()
                .find_map(|key| fields.get(*key).and_then(|v| v.as_str()).map(str::to_owned)),
        };
        let Some(content_id) = content_id else {
            return Err(serde::de::Error::custom(
                "an artifact reference needs a `content_id` (a string)",
            ));
        };
        Ok(ArtifactRef {
            kind,
            content_id,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind's reference as the ledger sees it: only through `KindRef`.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct SiteRef {
        tree: String,
        #[serde(default)]
        objects: u32,
    }

    impl KindRef for SiteRef {
        const KIND: &'static str = "site";

        fn content_id(&self) -> &str {
            &self.tree
        }
    }

    #[test]
    fn a_kind_reference_round_trips_through_the_record_json() {
        let site = SiteRef {
            tree: "h1".into(),
            objects: 3,
        };
        let kept = ArtifactRef::new(&site);
        let json = serde_json::to_value(&kept).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"kind": "site", "content_id": "h1", "tree": "h1", "objects": 3})
        );
        let read: ArtifactRef = serde_json::from_value(json).expect("read back");
        assert_eq!(read, kept);
        assert_eq!(read.kind(), "site");
        assert_eq!(read.content_id(), "h1");
        assert_eq!(read.decode::<SiteRef>(), Some(site));
    }

    #[test]
    fn a_reference_of_another_kind_does_not_decode() {
        let image: ArtifactRef = serde_json::from_value(serde_json::json!({
            "kind": "image", "content_id": "sha256:aa", "tree": "h1"
        }))
        .expect("read");
        assert_eq!(image.decode::<SiteRef>(), None);
    }

    #[test]
    fn records_written_before_content_id_still_name_their_bytes() {
        for (json, id) in [
            (
                r#"{"kind":"image","repository":"p/api","digest":"sha256:aa"}"#,
                "sha256:aa",
            ),
            (r#"{"kind":"dags","content_hash":"h2","files":[]}"#, "h2"),
            (
                r#"{"kind":"lambda","code_sha256":"c3=","function_version":"4"}"#,
                "c3=",
            ),
        ] {
            let read: ArtifactRef = serde_json::from_str(json).expect(json);
            assert_eq!(read.content_id(), id, "{json}");
        }
        let err = serde_json::from_str::<ArtifactRef>(r#"{"kind":"image"}"#).expect_err("no id");
        assert!(err.to_string().contains("content_id"), "{err}");
        let err =
            serde_json::from_str::<ArtifactRef>(r#"{"digest":"sha256:aa"}"#).expect_err("no kind");
        assert!(err.to_string().contains("`kind`"), "{err}");
    }
}
