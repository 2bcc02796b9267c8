//! LiteLLM's `guardrails:` list, read into specs. The gateway compiles them
//! (`gateway::guardrails`) and reports a bad pattern with the same path.

use super::litellm::{OneOrMany, ScalarString};
use super::{AwsParams, Env};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
pub struct RawGuardrail {
    pub guardrail_name: String,
    pub litellm_params: RawGuardrailParams,
    /// Free-form, shown by `GET /guardrails/list`.
    #[serde(default)]
    pub guardrail_info: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawGuardrailParams {
    pub guardrail: String,
    pub mode: Option<OneOrMany>,
    pub default_on: Option<bool>,
    #[serde(rename = "guardrailIdentifier")]
    pub guardrail_identifier: Option<ScalarString>,
    #[serde(rename = "guardrailVersion")]
    pub guardrail_version: Option<ScalarString>,
    pub aws_region_name: Option<String>,
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_session_token: Option<String>,
    pub aws_role_name: Option<String>,
    pub aws_session_name: Option<String>,
    pub aws_profile_name: Option<String>,
    pub aws_bedrock_runtime_endpoint: Option<String>,
    /// Bedrock: replace the input with the guardrail's anonymized text.
    pub mask_request_content: Option<bool>,
    /// Bedrock: replace the answer with the guardrail's anonymized text.
    pub mask_response_content: Option<bool>,
    pub patterns: Option<Vec<RawPattern>>,
    pub blocked_words: Option<Vec<RawWord>>,
    /// Presidio's entity map (`EMAIL_ADDRESS: MASK`), run by the built-in filter.
    pub pii_entities_config: Option<BTreeMap<String, String>>,
    /// Tollgate's: the most characters of text a request may send.
    pub max_input_chars: Option<u64>,
    /// Put masked values back into the answer for the caller (Presidio's name).
    pub output_parse_pii: Option<bool>,
    pub unmask: Option<bool>,
    /// Streams checked after the call are held back and checked in windows of
    /// about this many characters (Tollgate's; default 400 for Bedrock).
    pub stream_window_chars: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawPattern {
    /// `prebuilt` (default) or `regex`.
    pub pattern_type: Option<String>,
    pub pattern_name: Option<String>,
    pub pattern: Option<String>,
    pub name: Option<String>,
    pub action: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawWord {
    pub keyword: String,
    pub action: Option<String>,
    pub description: Option<String>,
}

/// When a guardrail runs (LiteLLM's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum GuardrailMode {
    /// On the input, before the call.
    PreCall,
    /// On the input, while the call runs; the answer waits for it.
    DuringCall,
    /// On the answer (streams: in windows as the text arrives).
    PostCall,
}

impl GuardrailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardrailMode::PreCall => "pre_call",
            GuardrailMode::DuringCall => "during_call",
            GuardrailMode::PostCall => "post_call",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GuardrailConfig {
    pub name: String,
    /// Where it was configured, for errors (`guardrails[2]`).
    pub path: String,
    pub modes: Vec<GuardrailMode>,
    pub default_on: bool,
    pub unmask: bool,
    pub stream_window_chars: Option<usize>,
    pub info: Option<Value>,
    pub kind: GuardrailKind,
}

#[derive(Debug, Clone)]
pub enum GuardrailKind {
    /// The built-in filter: patterns, banned words, input size.
    Content {
        patterns: Vec<PatternSpec>,
        words: Vec<WordSpec>,
        max_input_chars: Option<usize>,
    },
    /// Bedrock's ApplyGuardrail.
    Bedrock {
        identifier: String,
        version: String,
        aws: AwsParams,
        mask_request: bool,
        mask_response: bool,
    },
}

impl GuardrailKind {
    pub fn provider(&self) -> &'static str {
        match self {
            GuardrailKind::Content { .. } => "litellm_content_filter",
            GuardrailKind::Bedrock { .. } => "bedrock",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternSource {
    Prebuilt(String),
    Regex(String),
}

#[derive(Debug, Clone)]
pub struct PatternSpec {
    /// Path of the entry, for errors.
    pub path: String,
    pub source: PatternSource,
    pub name: String,
    /// `BLOCK` or `MASK`.
    pub block: bool,
}

#[derive(Debug, Clone)]
pub struct WordSpec {
    pub keyword: String,
    pub block: bool,
    pub description: Option<String>,
}

/// Presidio entity names → the built-in prebuilt pattern.
fn presidio_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "EMAIL_ADDRESS" => "email",
        "PHONE_NUMBER" => "phone",
        "CREDIT_CARD" => "credit_card",
        "IBAN_CODE" => "iban",
        "US_SSN" => "us_ssn",
        "IP_ADDRESS" => "ip_address",
        _ => return None,
    })
}

fn action(path: &str, v: Option<&str>) -> Result<bool, (String, String)> {
    match v.map(str::to_ascii_uppercase).as_deref() {
        None | Some("BLOCK") => Ok(true),
        Some("MASK") | Some("REDACT") | Some("ANONYMIZE") => Ok(false),
        Some(other) => Err((
            path.to_string(),
            format!("{other:?} is not an action; use BLOCK or MASK"),
        )),
    }
}

/// Reads `guardrails:`. A type Tollgate does not run yet is left out with a
/// warning (a request naming it is refused); a malformed entry stops the start.
pub fn guardrails(
    raw: &[RawGuardrail],
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<Vec<GuardrailConfig>, (String, String)> {
    let mut out: Vec<GuardrailConfig> = Vec::new();
    for (i, g) in raw.iter().enumerate() {
        let path = format!("guardrails[{i}]");
        let p = &g.litellm_params;
        if g.guardrail_name.trim().is_empty() {
            return Err((format!("{path}.guardrail_name"), "must not be empty".into()));
        }
        if out.iter().any(|o| o.name == g.guardrail_name) {
            return Err((
                format!("{path}.guardrail_name"),
                format!("{:?} is configured twice", g.guardrail_name),
            ));
        }
        let modes = match p.mode.clone().map(OneOrMany::into_vec) {
            None => vec![GuardrailMode::PreCall],
            Some(v) if v.is_empty() => {
                return Err((
                    format!("{path}.litellm_params.mode"),
                    "names no mode".into(),
                ))
            }
            Some(v) => v
                .iter()
                .map(|m| match m.as_str() {
                    "pre_call" => Ok(GuardrailMode::PreCall),
                    "during_call" => Ok(GuardrailMode::DuringCall),
                    "post_call" => Ok(GuardrailMode::PostCall),
                    other => Err((
                        format!("{path}.litellm_params.mode"),
                        format!("{other:?} is not a mode; use pre_call, during_call or post_call"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let resolve = |_field: &str, v: Option<&String>| -> Option<String> {
            let v = v?;
            match v.strip_prefix("os.environ/") {
                Some(name) => env.get(name),
                None => Some(v.clone()),
            }
        };
        let kind = match p.guardrail.as_str() {
            "bedrock" => {
                let req = |field: &str, v: &Option<ScalarString>| {
                    v.as_ref()
                        .map(|s| s.0.clone())
                        .and_then(|s| match s.strip_prefix("os.environ/") {
                            Some(n) => env.get(n),
                            None => Some(s),
                        })
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            (
                                format!("{path}.litellm_params.{field}"),
                                "is required for a bedrock guardrail".to_string(),
                            )
                        })
                };
                GuardrailKind::Bedrock {
                    identifier: req("guardrailIdentifier", &p.guardrail_identifier)?,
                    version: req("guardrailVersion", &p.guardrail_version)?,
                    aws: aws_params!(p, &resolve, env),
                    mask_request: p.mask_request_content.unwrap_or(false),
                    mask_response: p.mask_response_content.unwrap_or(false),
                }
            }
            "litellm_content_filter" | "content_filter" | "hide-secrets" | "hide_secrets" => {
                let mut patterns = Vec::new();
                if p.guardrail.starts_with("hide") {
                    patterns.push(PatternSpec {
                        path: format!("{path}.litellm_params.guardrail"),
                        source: PatternSource::Prebuilt("secrets".into()),
                        name: "secrets".into(),
                        block: false,
                    });
                }
                for (j, r) in p.patterns.iter().flatten().enumerate() {
                    let pp = format!("{path}.litellm_params.patterns[{j}]");
                    let block = action(&format!("{pp}.action"), r.action.as_deref())?;
                    let source = match r.pattern_type.as_deref().unwrap_or("prebuilt") {
                        "prebuilt" => {
                            PatternSource::Prebuilt(r.pattern_name.clone().ok_or_else(|| {
                                (
                                    format!("{pp}.pattern_name"),
                                    "is required for a prebuilt pattern".to_string(),
                                )
                            })?)
                        }
                        "regex" => PatternSource::Regex(r.pattern.clone().ok_or_else(|| {
                            (
                                format!("{pp}.pattern"),
                                "is required for a regex pattern".to_string(),
                            )
                        })?),
                        other => {
                            return Err((
                                format!("{pp}.pattern_type"),
                                format!("{other:?} is not a pattern type; use prebuilt or regex"),
                            ))
                        }
                    };
                    let name = r
                        .name
                        .clone()
                        .or_else(|| r.pattern_name.clone())
                        .unwrap_or_else(|| format!("pattern {j}"));
                    patterns.push(PatternSpec {
                        path: pp,
                        source,
                        name,
                        block,
                    });
                }
                for (entity, act) in p.pii_entities_config.iter().flatten() {
                    let pp = format!("{path}.litellm_params.pii_entities_config.{entity}");
                    let Some(pre) = presidio_entity(entity) else {
                        warnings.push(format!(
                            "{pp}: entity not recognised by the built-in filter (it knows EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE, US_SSN, IP_ADDRESS); ignored"
                        ));
                        continue;
                    };
                    patterns.push(PatternSpec {
                        path: pp.clone(),
                        source: PatternSource::Prebuilt(pre.into()),
                        name: pre.into(),
                        block: action(&pp, Some(act))?,
                    });
                }
                let mut words = Vec::new();
                for (j, w) in p.blocked_words.iter().flatten().enumerate() {
                    let wp = format!("{path}.litellm_params.blocked_words[{j}]");
                    if w.keyword.trim().is_empty() {
                        return Err((format!("{wp}.keyword"), "must not be empty".into()));
                    }
                    words.push(WordSpec {
                        keyword: w.keyword.clone(),
                        block: action(&format!("{wp}.action"), w.action.as_deref())?,
                        description: w.description.clone(),
                    });
                }
                let max_input_chars = p.max_input_chars.map(|n| n as usize);
                if patterns.is_empty() && words.is_empty() && max_input_chars.is_none() {
                    return Err((
                        format!("{path}.litellm_params"),
                        "a content filter needs patterns, blocked_words, pii_entities_config or max_input_chars".into(),
                    ));
                }
                GuardrailKind::Content {
                    patterns,
                    words,
                    max_input_chars,
                }
            }
            other => {
                warnings.push(format!(
                    "{path}.litellm_params.guardrail: {other:?} ({}) is not supported yet by Tollgate; it is not applied, and requests naming it are refused",
                    g.guardrail_name
                ));
                continue;
            }
        };
        out.push(GuardrailConfig {
            name: g.guardrail_name.clone(),
            path,
            modes,
            default_on: p.default_on.unwrap_or(false),
            unmask: p.unmask.or(p.output_parse_pii).unwrap_or(false),
            stream_window_chars: p.stream_window_chars.map(|n| n.max(1) as usize),
            info: g.guardrail_info.clone(),
            kind,
        });
    }
    Ok(out)
}
