//! What a Lambda alias serves, as facts for `diff`: the configuration of the version it points
//! at (runtime, handler, memory, timeout, architecture, layers, environment values) and the
//! alias's routing.

use super::LambdaSpec;
use crate::aws::{AwsClients, SdkFailure};
use crate::kinds::Facts;
use crate::kinds::lambda::shift::alias::Alias;

/// The facts of `spec`'s alias and the version it serves.
pub(crate) async fn facts(clients: &AwsClients, spec: &LambdaSpec) -> Result<Facts, String> {
    let lambda = clients.lambda();
    let config = lambda
        .get_function_configuration()
        .function_name(&spec.function)
        .qualifier(&spec.alias)
        .send()
        .await
        .map_err(|e| SdkFailure::new(e).to_string())?;
    let mut facts = Facts::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            facts.insert(key.to_owned(), value);
        }
    };
    put("runtime", config.runtime().map(|r| r.as_str().to_owned()));
    put("handler", config.handler().map(str::to_owned));
    put("memory", config.memory_size().map(|m| m.to_string()));
    put("timeout", config.timeout().map(|t| t.to_string()));
    let architectures: Vec<&str> = config.architectures().iter().map(|a| a.as_str()).collect();
    put(
        "architecture",
        Some(architectures.join(",")).filter(|a| !a.is_empty()),
    );
    let layers: Vec<&str> = config.layers().iter().filter_map(|l| l.arn()).collect();
    put("layers", Some(layers.join(",")).filter(|l| !l.is_empty()));
    let variables = config.environment().and_then(|e| e.variables());
    for (name, value) in variables.into_iter().flatten() {
        facts.insert(format!("env.{name}"), value.clone());
    }
    let alias = Alias::new(lambda, &spec.function, &spec.alias);
    let routing = match alias.read().await.map_err(|e| e.to_string())? {
        Some(state) if !state.routing.is_empty() => state.routing_lines().join(", "),
        Some(_) => "none".to_owned(),
        None => {
            return Err(format!(
                "alias {}:{} does not exist",
                spec.function, spec.alias
            ));
        }
    };
    facts.insert("alias.routing".into(), routing);
    Ok(facts)
}
