//! The policy as a CloudFormation snippet for the infra stack.

use super::Policy;

/// An `AWS::IAM::ManagedPolicy` resource (YAML, to paste under `Resources:`) holding
/// `policy`, attached to `role` (a logical id of the stack, `DeployerRole`), with each
/// statement's purpose as a comment above it.
pub fn cloudformation(policy: &Policy, role: &str) -> String {
    let logical = super::sid("DeployPolicy", &policy.environment);
    let mut out = format!(
        "# deploy iam-policy {env} --format cloudformation: what deploy calls in {env}.\n\
         {logical}:\n  Type: AWS::IAM::ManagedPolicy\n  Properties:\n    \
         Description: Least privilege for deploy in {env}\n    Roles:\n      - !Ref {role}\n    \
         PolicyDocument:\n      Version: \"2012-10-17\"\n      Statement:\n",
        env = policy.environment,
    );
    for statement in &policy.statements {
        out.push_str(&format!("        # {}\n", statement.why));
        out.push_str(&format!("        - Sid: {}\n", statement.sid));
        out.push_str("          Effect: Allow\n");
        list(&mut out, "Action", &statement.actions);
        list(&mut out, "Resource", &statement.resources);
        if let Some(condition) = &statement.condition {
            out.push_str(&format!("          Condition: {condition}\n"));
        }
    }
    out
}

fn list(out: &mut String, key: &str, values: &std::collections::BTreeSet<String>) {
    out.push_str(&format!("          {key}:\n"));
    for value in values {
        // JSON strings are YAML strings: quoting keeps `*` and `:` literal.
        out.push_str(&format!(
            "            - {}\n",
            serde_json::Value::from(value.as_str())
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam::Grants;

    #[test]
    fn the_snippet_names_the_role_and_quotes_resources() {
        let mut grants = Grants::default();
        grants.allow("Auth", "log in", &["ecr:GetAuthorizationToken"], ["*"]);
        let text = cloudformation(&grants.into_policy("pre-prod", Vec::new()), "DeployerRole");
        assert!(text.contains("DeployPolicyPreProd:\n"), "{text}");
        assert!(text.contains("- !Ref DeployerRole"), "{text}");
        assert!(text.contains("# log in\n        - Sid: Auth"), "{text}");
        assert!(text.contains("            - \"*\"\n"), "{text}");
    }
}
