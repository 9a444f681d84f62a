//! What a DAG sync calls in S3, for `deploy iam-policy`: the listing and the objects under the
//! prefix (uploads, deletes, server-side copies of recorded versions for rollback), and, when
//! the promotion source is read with the same credentials, its recorded versions.

use serde_json::json;

use super::DagsSpec;
use crate::iam::{Grants, Scope, s3_arn, sid};

/// The statements of the DAG folder `name` (`source`: the same artifact in the promotion
/// source, when this environment's credentials read it).
pub(crate) fn grants(
    name: &str,
    spec: &DagsSpec,
    source: Option<&DagsSpec>,
    scope: &Scope<'_>,
    grants: &mut Grants,
) {
    let partition = scope.partition();
    let bucket = s3_arn(partition, &spec.bucket, None);
    let list = &["s3:ListBucket", "s3:ListBucketVersions"];
    let why = "list the DAG prefix and its versions (what changed, what to restore)";
    grants.allow(
        &sid("DagsVersioning", name),
        "check the DAG bucket keeps versions (promotion and rollback restore them)",
        &["s3:GetBucketVersioning"],
        [bucket.clone()],
    );
    if spec.prefix.is_empty() {
        grants.allow(&sid("DagsList", name), why, list, [bucket]);
    } else {
        let prefix = &spec.prefix;
        let condition =
            json!({ "StringLike": { "s3:prefix": [prefix.clone(), format!("{prefix}*")] } });
        grants.allow_when(&sid("DagsList", name), why, list, [bucket], condition);
    }
    grants.allow(
        &sid("DagsObjects", name),
        "upload, delete and restore (copy a recorded version back) DAG files under the prefix",
        &[
            "s3:GetObject",
            "s3:GetObjectVersion",
            "s3:PutObject",
            "s3:DeleteObject",
        ],
        [s3_arn(partition, &spec.bucket, Some(&spec.prefix))],
    );
    if let (Some(source), Some(_)) = (source, scope.source) {
        grants.allow(
            &sid("DagsSource", name),
            "promote: copy the source environment's recorded versions server-side",
            &["s3:GetObject", "s3:GetObjectVersion"],
            [s3_arn(partition, &source.bucket, Some(&source.prefix))],
        );
    }
}
