//! Prompts kept in Bedrock Prompt Management, read with aws-sdk-bedrockagent
//! `GetPrompt`: the default variant's messages (OpenAI format, `{{variables}}`
//! kept), its model id and inference settings. The SDK's usual settings apply:
//! region from the ARN, credentials from the default chain, and
//! `AWS_ENDPOINT_URL_BEDROCK_AGENT` (or `AWS_ENDPOINT_URL`) for another endpoint.

use aws_sdk_bedrockagent::types::{
    ContentBlock, PromptInferenceConfiguration, PromptTemplateConfiguration, SystemContentBlock,
};
use serde_json::{json, Map, Value};

/// A prompt as read from Bedrock.
#[derive(Debug, Clone)]
pub struct RemotePrompt {
    pub id: String,
    pub name: String,
    pub version: String,
    pub messages: Vec<Value>,
    pub model_id: Option<String>,
    pub inference: Map<String, Value>,
}

/// The region of a Bedrock ARN (`arn:aws:bedrock:{region}:…`).
fn region_of(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

pub async fn get_prompt(
    arn: &str,
    id: &str,
    version: Option<&str>,
) -> Result<RemotePrompt, String> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region_of(arn) {
        loader = loader.region(aws_config::Region::new(region));
    }
    let client = aws_sdk_bedrockagent::Client::new(&loader.load().await);
    let out = client
        .get_prompt()
        .prompt_identifier(id)
        .set_prompt_version(version.map(str::to_string))
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read prompt {arn} from Bedrock Prompt Management: {}",
                aws_sdk_bedrockagent::error::DisplayErrorContext(&e)
            )
        })?;
    let variant = out
        .variants()
        .iter()
        .find(|v| Some(v.name()) == out.default_variant())
        .or_else(|| out.variants().first())
        .ok_or_else(|| format!("prompt {arn} has no variants"))?;
    let mut messages = Vec::new();
    match variant.template_configuration() {
        Some(PromptTemplateConfiguration::Text(t)) => {
            messages.push(json!({"role": "user", "content": t.text()}));
        }
        Some(PromptTemplateConfiguration::Chat(c)) => {
            let system: Vec<&str> = c
                .system()
                .iter()
                .filter_map(|b| match b {
                    SystemContentBlock::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            if !system.is_empty() {
                messages.push(json!({"role": "system", "content": system.join("\n")}));
            }
            for m in c.messages() {
                let text: Vec<&str> = m
                    .content()
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect();
                messages.push(json!({"role": m.role().as_str(), "content": text.join("")}));
            }
        }
        _ => {
            return Err(format!(
                "prompt {arn} has a template type this gateway cannot use"
            ))
        }
    }
    let mut inference = Map::new();
    if let Some(PromptInferenceConfiguration::Text(i)) = variant.inference_configuration() {
        if let Some(t) = i.temperature() {
            inference.insert("temperature".into(), json!(t));
        }
        if let Some(p) = i.top_p() {
            inference.insert("top_p".into(), json!(p));
        }
        if let Some(m) = i.max_tokens() {
            inference.insert("max_tokens".into(), json!(m));
        }
        if !i.stop_sequences().is_empty() {
            inference.insert("stop".into(), json!(i.stop_sequences()));
        }
    }
    Ok(RemotePrompt {
        id: out.id().to_string(),
        name: out.name().to_string(),
        version: out.version().to_string(),
        messages,
        model_id: variant.model_id().map(str::to_string),
        inference,
    })
}
