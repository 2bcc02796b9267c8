//! The demo config: works on a machine with no provider credentials, and adds the
//! real providers whose credentials it finds.

use super::env::Env;
use serde_json::{json, Value};
use std::time::Duration;

/// What the demo config found on this machine.
#[derive(Debug, Default, Clone)]
pub struct Found {
    pub openai: bool,
    pub anthropic: bool,
    pub bedrock_region: Option<String>,
    pub ollama_models: Vec<String>,
}

/// Looks for credentials and a local Ollama server.
pub async fn discover(env: &Env) -> Found {
    let aws = env.get("AWS_ACCESS_KEY_ID").is_some()
        || env.get("AWS_PROFILE").is_some()
        || env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
        || env
            .get("HOME")
            .map(|h| std::path::Path::new(&h).join(".aws/credentials").exists())
            .unwrap_or(false);
    Found {
        openai: env.get("OPENAI_API_KEY").is_some(),
        anthropic: env.get("ANTHROPIC_API_KEY").is_some(),
        bedrock_region: aws.then(|| {
            env.get("AWS_REGION")
                .or_else(|| env.get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into())
        }),
        ollama_models: ollama_models().await,
    }
}

async fn ollama_models() -> Vec<String> {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
    else {
        return Vec::new();
    };
    let Ok(resp) = client.get("http://127.0.0.1:11434/api/tags").send().await else {
        return Vec::new();
    };
    let Ok(body) = resp.json::<Value>().await else {
        return Vec::new();
    };
    body["models"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The demo config as LiteLLM YAML.
pub fn yaml(found: &Found) -> String {
    let mut models = vec![json!({
        "model_name": "demo",
        "litellm_params": {"model": "demo/tollgate-demo"},
        "model_info": {"id": "demo", "description": "Built-in local model: streams a canned answer, needs no provider."}
    })];
    if found.openai {
        models.push(json!({"model_name": "gpt-4o-mini", "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "os.environ/OPENAI_API_KEY"}}));
        models.push(json!({"model_name": "text-embedding-3-small", "litellm_params": {"model": "openai/text-embedding-3-small", "api_key": "os.environ/OPENAI_API_KEY"}, "model_info": {"mode": "embedding"}}));
    }
    if found.anthropic {
        models.push(json!({"model_name": "claude-3-5-haiku", "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest", "api_key": "os.environ/ANTHROPIC_API_KEY"}}));
    }
    if let Some(region) = &found.bedrock_region {
        models.push(json!({"model_name": "bedrock-claude-3-haiku", "litellm_params": {"model": "bedrock/anthropic.claude-3-haiku-20240307-v1:0", "aws_region_name": region}}));
        models.push(json!({"model_name": "titan-embed-v2", "litellm_params": {"model": "bedrock/amazon.titan-embed-text-v2:0", "aws_region_name": region}, "model_info": {"mode": "embedding"}}));
    }
    for m in &found.ollama_models {
        models.push(json!({"model_name": format!("ollama/{m}"), "litellm_params": {"model": format!("ollama/{m}"), "api_base": "http://127.0.0.1:11434/v1"}}));
    }
    let doc = json!({
        "model_list": models,
        "router_settings": {"num_retries": 1},
        "litellm_settings": {"drop_params": true},
    });
    let body = serde_yaml::to_string(&doc).unwrap_or_default();
    format!("# Tollgate demo config, generated from the credentials found on this machine.\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_always_has_the_demo_model_and_loads() {
        let text = yaml(&Found::default());
        let cfg = super::super::load_str(&text, "<demo>", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.deployments.len(), 1);
        assert_eq!(cfg.deployments[0].model_name, "demo");
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn found_providers_are_added() {
        let found = Found {
            openai: true,
            anthropic: true,
            bedrock_region: Some("eu-west-1".into()),
            ollama_models: vec!["llama3.2".into()],
        };
        let env = Env::with_overlay(
            [
                ("OPENAI_API_KEY", "sk-x"),
                ("ANTHROPIC_API_KEY", "sk-ant-x"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        let cfg = super::super::load_str(&yaml(&found), "<demo>", Some(env))
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = cfg
            .deployments
            .iter()
            .map(|d| d.model_name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "demo",
                "gpt-4o-mini",
                "text-embedding-3-small",
                "claude-3-5-haiku",
                "bedrock-claude-3-haiku",
                "titan-embed-v2",
                "ollama/llama3.2"
            ]
        );
        assert!(cfg.deployments.iter().all(|d| d.unusable.is_none()));
    }
}
