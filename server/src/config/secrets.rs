//! `aws_secretsmanager/SECRET_ID` (or `aws_secretsmanager/SECRET_ID#json_field`)
//! anywhere a config value may name a secret — `general_settings.master_key`,
//! a deployment's `api_key`, AWS credentials. Every reference in the file is
//! read with the AWS SDK before the config is validated (a secret that cannot be
//! read stops the start with its reason), and again on a schedule.
//!
//! The SDK's usual settings apply: region from `AWS_REGION`, credentials from
//! the default chain, and `AWS_ENDPOINT_URL_SECRETS_MANAGER` (or
//! `AWS_ENDPOINT_URL`) for a local endpoint.

use std::collections::{BTreeMap, BTreeSet};

pub const PREFIX: &str = "aws_secretsmanager/";

/// Every `aws_secretsmanager/…` reference in a config file's text.
pub fn references(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ']' | '}'))
            .unwrap_or(tail.len());
        if end > PREFIX.len() {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end.max(1)..];
    }
    out.into_iter().collect()
}

/// `(secret id, json field)` of a reference.
fn split(reference: &str) -> (&str, Option<&str>) {
    let body = reference.strip_prefix(PREFIX).unwrap_or(reference);
    match body.split_once('#') {
        Some((id, field)) => (id, Some(field)),
        None => (body, None),
    }
}

/// Reads every reference; the map goes from reference to value.
pub async fn fetch(references: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    if references.is_empty() {
        return Ok(out);
    }
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&conf);
    let mut cache: BTreeMap<String, String> = BTreeMap::new();
    for r in references {
        let (id, field) = split(r);
        if !cache.contains_key(id) {
            let resp = client
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "cannot read secret {id:?} from AWS Secrets Manager: {}",
                        aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                    )
                })?;
            let value = resp.secret_string().map(str::to_string).ok_or_else(|| {
                format!("secret {id:?} has no SecretString (binary secrets are not supported)")
            })?;
            cache.insert(id.to_string(), value);
        }
        let raw = cache.get(id).cloned().unwrap_or_default();
        let value = match field {
            None => raw,
            Some(f) => {
                let v: serde_json::Value = serde_json::from_str(&raw).map_err(|_| {
                    format!("secret {id:?} is not JSON, so #{f} cannot be read from it")
                })?;
                match v.get(f) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Null) | None => {
                        return Err(format!("secret {id:?} has no field {f:?}"))
                    }
                    Some(other) => other.to_string(),
                }
            }
        };
        out.insert(r.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_in_yaml_text() {
        let text = "general_settings:\n  master_key: aws_secretsmanager/tollgate/master\nmodel_list:\n  - litellm_params: {api_key: \"aws_secretsmanager/keys#openai\", x: 1}\n";
        assert_eq!(
            references(text),
            [
                "aws_secretsmanager/keys#openai",
                "aws_secretsmanager/tollgate/master"
            ]
        );
        assert_eq!(split("aws_secretsmanager/a/b#f"), ("a/b", Some("f")));
        assert_eq!(split("aws_secretsmanager/a"), ("a", None));
        assert!(references("aws_secretsmanager/ and nothing").is_empty());
    }
}
