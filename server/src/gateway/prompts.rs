//! Managed prompts: a call whose model is a prompt's ARN
//! (`arn:aws:bedrock:{region}:{account}:prompt/{ID}[:{version}]`) is the
//! prompt's messages with its `{{variables}}` filled from `promptVariables`,
//! sent to the prompt's model with its inference settings (the request's own
//! settings win), followed by the request's own messages, if any.
//! Prompts are held in the in-memory directory: no database read per call.
//! An ARN that names no local prompt is read from Bedrock Prompt Management
//! (`GetPrompt`) and kept for [`REMOTE_TTL`].

use super::pipeline::GatewayError;
use super::types::{ChatRequest, Message};
use crate::directory::records::PromptRecord;
use crate::state::AppState;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a prompt read from Bedrock is used before it is read again.
pub const REMOTE_TTL: Duration = Duration::from_secs(300);

/// Prompts read from Bedrock, by the ARN they were called with.
#[derive(Default)]
pub struct RemoteCache(Mutex<HashMap<String, (Instant, Arc<PromptRecord>)>>);

impl RemoteCache {
    fn get(&self, arn: &str) -> Option<Arc<PromptRecord>> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.get(arn)
            .filter(|(at, _)| at.elapsed() < REMOTE_TTL)
            .map(|(_, p)| Arc::clone(p))
    }

    fn put(&self, arn: &str, p: Arc<PromptRecord>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.insert(arn.to_string(), (Instant::now(), p));
    }
}

/// A prompt from Bedrock Prompt Management, cached.
async fn remote(
    state: &AppState,
    arn: &str,
    id: &str,
    version: Option<&str>,
) -> Result<Arc<PromptRecord>, GatewayError> {
    if let Some(p) = state.prompt_cache.get(arn) {
        return Ok(p);
    }
    let r = crate::providers::bedrock::prompts::get_prompt(arn, id, version)
        .await
        .map_err(|e| {
            if e.contains("ResourceNotFound") {
                GatewayError::NotFound(e)
            } else {
                GatewayError::Unavailable(e)
            }
        })?;
    let model = r
        .model_id
        .as_deref()
        .and_then(|m| state.router.load().group_for(m))
        .ok_or_else(|| GatewayError::Invalid {
            message: format!(
                "prompt {arn} runs on model {:?}, which this gateway does not serve",
                r.model_id.as_deref().unwrap_or("(none)")
            ),
            param: Some("model".into()),
        })?;
    let p = Arc::new(PromptRecord {
        prompt_id: r.id,
        version: r.version.parse().unwrap_or(0),
        name: r.name,
        description: None,
        template: r.messages,
        model,
        inference: r.inference,
        arn: arn.to_string(),
        created_by: Some("bedrock".into()),
        created_at: 0,
    });
    state.prompt_cache.put(arn, Arc::clone(&p));
    Ok(p)
}

/// The account in the ARNs of this gateway's own prompts.
fn local_account() -> String {
    crate::config::env::Env::default()
        .get("TOLLGATE_AWS_ACCOUNT_ID")
        .unwrap_or_else(|| "000000000000".into())
}

/// The ARN of a prompt kept here.
pub fn local_arn(id: &str) -> String {
    let env = crate::config::env::Env::default();
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    format!("arn:aws:bedrock:{region}:{}:prompt/{id}", local_account())
}

/// `(prompt id, version)` of a prompt ARN, or none if `model` is not one.
pub fn parse_arn(model: &str) -> Option<(&str, Option<&str>)> {
    if !model.starts_with("arn:aws:bedrock:") {
        return None;
    }
    let tail = model.split_once(":prompt/")?.1;
    match tail.split_once(':') {
        Some((id, version)) => Some((id, Some(version))),
        None => Some((tail, None)),
    }
}

/// The prompt version an ARN names (latest without a version).
/// A local prompt, else one read from Bedrock.
pub async fn find(
    state: &AppState,
    model: &str,
) -> Result<Option<Arc<PromptRecord>>, GatewayError> {
    let Some((id, version)) = parse_arn(model) else {
        return Ok(None);
    };
    let snap = state.directory.snapshot();
    let Some(versions) = snap.prompts.get(id) else {
        // An ARN of this gateway's account names a prompt kept here, or none.
        if model.split(':').nth(4) == Some(local_account().as_str()) {
            return Err(GatewayError::NotFound(format!(
                "prompt {id} was not found (model={model})"
            )));
        }
        // Boxed: it awaits the AWS SDK, whose futures are large, and every
        // chat call's future holds this one.
        return Box::pin(remote(state, model, id, version)).await.map(Some);
    };
    let found = match version {
        None | Some("DRAFT") => versions.last(),
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| GatewayError::Invalid {
                message: format!("prompt version {v:?} in {model} is not a number"),
                param: Some("model".into()),
            })?;
            versions.iter().find(|p| p.version == n)
        }
    };
    found.cloned().map(Some).ok_or_else(|| {
        GatewayError::NotFound(format!(
            "prompt {id} has no version {}",
            version.unwrap_or("")
        ))
    })
}

/// The value of one variable: Bedrock's `{"text": …}` or a plain value.
fn variable_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("text") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// `text` with every `{{name}}` replaced; the first variable without a value is an error.
pub fn fill(text: &str, vars: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = rest[start + 2..start + 2 + len].trim();
        out.push_str(&rest[..start]);
        match vars.get(name) {
            Some(v) => out.push_str(&variable_text(v)),
            None => return Err(name.to_string()),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The texts of a template message: its content, or its parts' text.
fn texts(m: &Value) -> Vec<&str> {
    match m.get("content") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => Vec::new(),
    }
}

/// The `{{variables}}` a template uses, each once, in order of first use.
pub fn variables(template: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for text in template.iter().flat_map(texts) {
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                break;
            };
            let name = rest[start + 2..start + 2 + len].trim();
            if !name.is_empty() && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
            rest = &rest[start + 2 + len + 2..];
        }
    }
    out
}

/// The template's messages with the variables given filled in; those not
/// given are left as `{{name}}` and returned as missing (a preview, where a
/// call would refuse).
pub fn preview(template: &[Value], vars: &Map<String, Value>) -> (Vec<Value>, Vec<String>) {
    let missing: Vec<String> = variables(template)
        .into_iter()
        .filter(|n| !vars.contains_key(n))
        .collect();
    let mut all = vars.clone();
    for n in &missing {
        all.insert(n.clone(), Value::String(format!("{{{{{n}}}}}")));
    }
    let messages = template
        .iter()
        .map(|m| fill_message(m, &all).unwrap_or_else(|_| m.clone()))
        .collect();
    (messages, missing)
}

/// Fills a template message's text (a string or text parts).
fn fill_message(m: &Value, vars: &Map<String, Value>) -> Result<Value, String> {
    let mut m = m.clone();
    match m.get_mut("content") {
        Some(Value::String(s)) => *s = fill(s, vars)?,
        Some(Value::Array(parts)) => {
            for p in parts {
                if let Some(Value::String(t)) = p.get_mut("text") {
                    *t = fill(t, vars)?;
                }
            }
        }
        _ => {}
    }
    Ok(m)
}

/// If the request's model is a prompt ARN, renders the prompt into it.
pub async fn apply(state: &AppState, req: &mut ChatRequest) -> Result<(), GatewayError> {
    let vars = match req.extra.remove("promptVariables") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(GatewayError::Invalid {
                message: "promptVariables must be an object: {\"name\": {\"text\": \"value\"}}"
                    .into(),
                param: Some("promptVariables".into()),
            })
        }
    };
    let Some(prompt) = find(state, &req.model).await? else {
        if vars.is_empty() {
            return Ok(());
        }
        return Err(GatewayError::Invalid {
            message: format!(
                "promptVariables need a managed prompt's ARN as the model; {} is not one",
                req.model
            ),
            param: Some("promptVariables".into()),
        });
    };
    let mut rendered: Vec<Message> = Vec::with_capacity(prompt.template.len() + req.messages.len());
    for m in &prompt.template {
        let filled = fill_message(m, &vars).map_err(|name| GatewayError::Invalid {
            message: format!(
                "prompt {} needs the variable '{name}': pass it in promptVariables",
                prompt.name
            ),
            param: Some(format!("promptVariables.{name}")),
        })?;
        rendered.push(
            serde_json::from_value(filled).map_err(|e| GatewayError::Invalid {
                message: format!(
                    "prompt {} has a message that is not valid: {e}",
                    prompt.name
                ),
                param: None,
            })?,
        );
    }
    rendered.append(&mut req.messages);
    req.messages = rendered;
    req.model = prompt.model.clone();
    let number = |k: &str| prompt.inference.get(k).and_then(Value::as_f64);
    if req.temperature.is_none() {
        req.temperature = number("temperature");
    }
    if req.top_p.is_none() {
        req.top_p = number("top_p");
    }
    if req.max_tokens.is_none() && req.max_completion_tokens.is_none() {
        req.max_tokens = number("max_tokens").map(|n| n as u32);
    }
    if req.stop.is_none() {
        if let Some(stop) = prompt.inference.get("stop") {
            req.stop = serde_json::from_value(stop.clone()).ok();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arns_name_a_prompt_and_maybe_a_version() {
        assert_eq!(
            parse_arn("arn:aws:bedrock:us-west-2:123:prompt/ABC"),
            Some(("ABC", None))
        );
        assert_eq!(
            parse_arn("arn:aws:bedrock:us-west-2:123:prompt/ABC:2"),
            Some(("ABC", Some("2")))
        );
        assert_eq!(parse_arn("gpt-4o"), None);
        assert_eq!(
            parse_arn("arn:aws:bedrock:us-east-1:1:application-inference-profile/x"),
            None
        );
    }

    #[test]
    fn variables_are_filled_or_named() {
        let vars = json!({"topic": {"text": "fruit"}, "n": 3});
        let vars = vars.as_object().cloned().unwrap_or_default();
        assert_eq!(
            fill("Tell me about {{topic}} x{{ n }}", &vars),
            Ok("Tell me about fruit x3".into())
        );
        assert_eq!(fill("{{missing}}", &vars), Err("missing".into()));
        let template = vec![
            json!({"role": "system", "content": "You know {{topic}}."}),
            json!({"role": "user", "content": [{"type": "text", "text": "{{ topic }} and {{count}}"}]}),
        ];
        assert_eq!(variables(&template), vec!["topic", "count"]);
        let (messages, missing) = preview(&template, &vars);
        assert_eq!(missing, vec!["count"]);
        assert_eq!(messages[0]["content"], "You know fruit.");
        assert_eq!(messages[1]["content"][0]["text"], "fruit and {{count}}");
        assert_eq!(
            fill("no vars {{ unclosed", &vars),
            Ok("no vars {{ unclosed".into())
        );
    }
}
