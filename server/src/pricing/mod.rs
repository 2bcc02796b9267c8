//! Bundled model price table: what a call costs in USD.
//!
//! # Where the prices come from
//!
//! `prices.json` beside this file is a curated subset (chat, completion and embedding
//! models of OpenAI / Azure OpenAI, Anthropic, Amazon Bedrock, Mistral, Google Gemini /
//! Vertex AI and Groq) of LiteLLM's `model_prices_and_context_window.json`, in the same
//! format: USD **per token** in `input_cost_per_token`, `output_cost_per_token`,
//! `cache_read_input_token_cost`, `cache_creation_input_token_cost`, plus
//! `max_input_tokens`, `max_output_tokens` and `mode` (`chat`, `completion`, `embedding`;
//! embeddings have an input price only). Values were taken from LiteLLM's file and
//! checked against the providers' published list prices; list prices only (no batch,
//! flex or priority tiers, no long-context surcharges: Gemini and Claude prompts above
//! 200k tokens are priced at the base tier; Anthropic cache writes at the 5-minute rate).
//! The file is compiled in (`include_str!`) and parsed once.
//!
//! # Overriding
//!
//! A deployment's `model_info.input_cost_per_token` / `output_cost_per_token` (and the
//! cache prices, when given) win over this table. That override is applied by the
//! caller, which builds its own [`Price`]; this module only knows the bundled table.
//! A model missing from the table is `None`: the caller records no cost (or uses the
//! deployment's own prices) rather than a guess.
//!
//! # Key scheme (as LiteLLM's)
//!
//! | provider | table key |
//! | --- | --- |
//! | `openai`, `azure`, `azure_ai`, `text-completion-openai` | bare OpenAI name: `gpt-4o`, `o3`, `text-embedding-3-small` |
//! | `anthropic` | bare Anthropic id: `claude-3-5-haiku-20241022`, `claude-sonnet-4-5` |
//! | `bedrock`, `bedrock_converse` | bare Bedrock model id: `anthropic.claude-3-5-sonnet-20241022-v2:0`, `amazon.nova-pro-v1:0` |
//! | `mistral` | `mistral/<model>` |
//! | `gemini` | `gemini/<model>` |
//! | `vertex_ai` | `vertex_ai/<model>` where Vertex's price differs, else `gemini/<model>`; Claude on Vertex uses the Anthropic keys |
//! | `groq` | `groq/<model>` (`groq/meta-llama/llama-4-scout-17b-16e-instruct`) |
//!
//! All keys are lower case and the lookup is case-insensitive. Other rules:
//! - a model id that still carries its provider prefix (`gemini/gemini-2.5-pro` given
//!   with provider `gemini`) is accepted;
//! - OpenAI-family and Anthropic: an exact entry wins (`gpt-4o-2024-05-13` has its own
//!   price); otherwise a trailing date (`-YYYY-MM-DD`, `-YYYYMMDD`) is dropped
//!   (`gpt-4o-2024-08-06` → `gpt-4o`). Azure's `gpt-35-*` names are read as `gpt-3.5-*`;
//! - Bedrock: a leading `converse/` or `invoke/` route is dropped; an ARN (foundation
//!   model or inference profile) is read as its last path segment; a provisioned
//!   context-size suffix (`…-v1:0:200k`) is dropped when needed; the key is tried as
//!   given, then without its cross-region prefix (`us.`, `eu.`, `apac.`, `us-gov.`,
//!   `global.`, `jp.`, `au.`, `ca.`). The table may hold a prefixed key where the
//!   profile is priced differently (Nova in `eu.`/`apac.`, Claude Sonnet 4.5 in
//!   `us-gov.`); an entry with `bedrock_geo_multiplier` (Claude 4.5 and later, whose
//!   geographic profiles cost 10% more than the in-region / `global.` price) gets its
//!   `us.`/`eu.`/`apac.`/`jp.`/`au.`/`ca.` keys derived at load time;
//! - Gemini / Vertex: a leading `models/` (or any `…/models/` resource path) is dropped,
//!   then a version suffix (`-001`) or `-latest` when needed;
//! - anything else → `None`.

use std::collections::HashMap;
use std::sync::LazyLock;

/// Prices of one model, USD per token (LiteLLM's field names).
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
pub struct Price {
    pub input_cost_per_token: f64,
    #[serde(default)]
    pub output_cost_per_token: f64,
    #[serde(default)]
    pub cache_read_input_token_cost: Option<f64>,
    #[serde(default)]
    pub cache_creation_input_token_cost: Option<f64>,
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub mode: Option<String>,
}

/// One row of `prices.json`: a [`Price`] and the table-only fields.
#[derive(Debug, serde::Deserialize)]
struct Entry {
    #[serde(flatten)]
    price: Price,
    /// Bedrock: price factor of the geographic cross-region profiles (`us.`, `eu.`, …)
    /// over this (in-region / `global.`) price.
    #[serde(default)]
    bedrock_geo_multiplier: Option<f64>,
}

const PRICES_JSON: &str = include_str!("prices.json");

/// Bedrock cross-region inference prefixes (`us-gov.` before `us.` is not needed for
/// matching as both end in a dot, but kept first for clarity).
const BEDROCK_REGION_PREFIXES: &[&str] = &[
    "us-gov.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "global.",
];

/// The geographic profiles that `bedrock_geo_multiplier` applies to.
const BEDROCK_GEO_PREFIXES: &[&str] = &["us.", "eu.", "apac.", "jp.", "au.", "ca."];

static TABLE: LazyLock<HashMap<String, Price>> = LazyLock::new(|| match parse(PRICES_JSON) {
    Ok(table) => table,
    Err(e) => {
        // Cannot happen with the bundled file (a unit test parses it); no prices then.
        tracing::error!(error = %e, "bundled price table does not parse; costs unknown");
        HashMap::new()
    }
});

fn parse(json: &str) -> Result<HashMap<String, Price>, serde_json::Error> {
    let raw: HashMap<String, Entry> = serde_json::from_str(json)?;
    let mut table: HashMap<String, Price> = HashMap::with_capacity(raw.len() * 2);
    let mut derived: Vec<(String, Price)> = Vec::new();
    for (key, entry) in raw {
        let key = key.trim().to_ascii_lowercase();
        if let Some(factor) = entry.bedrock_geo_multiplier {
            for prefix in BEDROCK_GEO_PREFIXES {
                derived.push((format!("{prefix}{key}"), scaled(&entry.price, factor)));
            }
        }
        table.insert(key, entry.price);
    }
    for (key, price) in derived {
        // An explicit entry for the prefixed id wins over the derived one.
        table.entry(key).or_insert(price);
    }
    Ok(table)
}

fn scaled(price: &Price, factor: f64) -> Price {
    Price {
        input_cost_per_token: price.input_cost_per_token * factor,
        output_cost_per_token: price.output_cost_per_token * factor,
        cache_read_input_token_cost: price.cache_read_input_token_cost.map(|c| c * factor),
        cache_creation_input_token_cost: price.cache_creation_input_token_cost.map(|c| c * factor),
        ..price.clone()
    }
}

fn get(key: &str) -> Option<&'static Price> {
    let table: &'static HashMap<String, Price> = &TABLE;
    table.get(key)
}

/// The price of `model` served by `provider`.
///
/// `provider` is LiteLLM's provider prefix of the deployment ("openai", "azure",
/// "azure_ai", "anthropic", "bedrock", "bedrock_converse", "mistral", "gemini",
/// "vertex_ai", "groq", "text-completion-openai", anything else); `model` is the upstream
/// model id without the prefix (e.g. "gpt-4o-mini", "claude-3-5-haiku-20241022",
/// "us.anthropic.claude-3-7-sonnet-20250219-v1:0", "mixtral-8x7b-32768"). See the module
/// documentation for the key scheme and the normalisation rules.
pub fn lookup(provider: &str, model: &str) -> Option<&'static Price> {
    let provider = provider.trim().to_ascii_lowercase();
    let mut model = model.trim().to_ascii_lowercase();
    if let Some(rest) = model.strip_prefix(&format!("{provider}/")) {
        model = rest.to_string();
    }
    if model.is_empty() {
        return None;
    }
    match provider.as_str() {
        "openai" | "text-completion-openai" | "azure" | "azure_ai" | "azure_text" => {
            lookup_openai(&model)
        }
        "anthropic" => lookup_dated(&model),
        "bedrock" | "bedrock_converse" => lookup_bedrock(&model),
        "mistral" => get(&format!("mistral/{model}")),
        "gemini" => lookup_gemini(&model, false),
        "vertex_ai" => lookup_vertex(&model),
        "groq" => get(&format!("groq/{model}")),
        _ => None,
    }
}

fn lookup_openai(model: &str) -> Option<&'static Price> {
    // Azure spells GPT-3.5 without the dot.
    let model = match model.strip_prefix("gpt-35") {
        Some(rest) => format!("gpt-3.5{rest}"),
        None => model.to_string(),
    };
    lookup_dated(&model)
}

/// Exact key, else the key without a trailing `-YYYY-MM-DD` / `-YYYYMMDD` date.
fn lookup_dated(model: &str) -> Option<&'static Price> {
    get(model).or_else(|| strip_date_suffix(model).and_then(get))
}

fn strip_date_suffix(model: &str) -> Option<&str> {
    let bytes = model.as_bytes();
    let is_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    // `-YYYY-MM-DD`
    if bytes.len() > 11 {
        let tail = &bytes[bytes.len() - 11..];
        if tail[0] == b'-'
            && tail[1..3] == *b"20"
            && is_digits(&tail[1..5])
            && tail[5] == b'-'
            && is_digits(&tail[6..8])
            && tail[8] == b'-'
            && is_digits(&tail[9..11])
        {
            return model.get(..model.len() - 11);
        }
    }
    // `-YYYYMMDD`
    if bytes.len() > 9 {
        let tail = &bytes[bytes.len() - 9..];
        if tail[0] == b'-' && tail[1..3] == *b"20" && is_digits(&tail[1..9]) {
            return model.get(..model.len() - 9);
        }
    }
    None
}

fn lookup_bedrock(model: &str) -> Option<&'static Price> {
    let mut id = model;
    for route in ["converse/", "invoke/"] {
        if let Some(rest) = id.strip_prefix(route) {
            id = rest;
        }
    }
    if id.starts_with("arn:") {
        // arn:aws:bedrock:REGION::foundation-model/MODEL_ID or
        // arn:aws:bedrock:REGION:ACCOUNT:inference-profile/PROFILE_ID
        id = id.rsplit('/').next()?;
    }
    bedrock_id(id).or_else(|| strip_context_suffix(id).and_then(bedrock_id))
}

/// Exact id (a profile may be priced on its own), else without the cross-region prefix.
fn bedrock_id(id: &str) -> Option<&'static Price> {
    get(id).or_else(|| {
        BEDROCK_REGION_PREFIXES
            .iter()
            .find_map(|prefix| id.strip_prefix(prefix))
            .and_then(get)
    })
}

/// `anthropic.claude-3-haiku-20240307-v1:0:200k` → `anthropic.claude-3-haiku-20240307-v1:0`.
fn strip_context_suffix(id: &str) -> Option<&str> {
    let (head, tail) = id.rsplit_once(':')?;
    let digits = tail.strip_suffix('k')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && head.contains(':'))
        .then_some(head)
}

/// Gemini API names: `gemini/<model>` (or `vertex_ai/<model>` first when `vertex`).
fn lookup_gemini(model: &str, vertex: bool) -> Option<&'static Price> {
    // `models/gemini-1.5-pro`, `projects/…/publishers/google/models/gemini-2.5-pro`
    let model = match model.rfind("models/") {
        Some(at) => &model[at + "models/".len()..],
        None => model,
    };
    let try_key = |m: &str| {
        let vertex_price = if vertex {
            get(&format!("vertex_ai/{m}"))
        } else {
            None
        };
        vertex_price.or_else(|| get(&format!("gemini/{m}")))
    };
    try_key(model).or_else(|| strip_gemini_version(model).and_then(try_key))
}

/// `gemini-1.5-pro-002` → `gemini-1.5-pro`; `gemini-1.5-pro-latest` → `gemini-1.5-pro`.
fn strip_gemini_version(model: &str) -> Option<&str> {
    if let Some(base) = model.strip_suffix("-latest") {
        return Some(base);
    }
    let (base, version) = model.rsplit_once('-')?;
    (version.len() == 3 && version.bytes().all(|b| b.is_ascii_digit())).then_some(base)
}

fn lookup_vertex(model: &str) -> Option<&'static Price> {
    let last = model.rsplit('/').next().unwrap_or(model);
    if last.starts_with("claude-") {
        return lookup_vertex_claude(last);
    }
    lookup_gemini(model, true)
}

/// Vertex names Claude `claude-3-5-sonnet-v2@20241022`, `claude-sonnet-4-5@20250929`.
fn lookup_vertex_claude(model: &str) -> Option<&'static Price> {
    let Some((name, date)) = model.split_once('@') else {
        return lookup_dated(model);
    };
    let base = match name.rsplit_once("-v") {
        Some((base, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    };
    get(&format!("{base}-{date}")).or_else(|| get(base))
}

/// Cost in USD of a call: prompt tokens (of which `cached` were read from the provider's
/// prompt cache and `cache_write` written to it) and completion tokens.
///
/// `prompt_tokens` is the whole prompt, cached and cache-written tokens included (for
/// Anthropic, whose `input_tokens` excludes them, the caller adds them up first). Cache
/// reads are charged at `cache_read_input_token_cost`, cache writes at
/// `cache_creation_input_token_cost`, each at the input price when the model has none.
/// Counts that do not add up (`cached + cache_write > prompt_tokens`) are clamped to the
/// prompt.
pub fn cost(
    price: &Price,
    prompt_tokens: u64,
    completion_tokens: u64,
    cached: u64,
    cache_write: u64,
) -> f64 {
    let cached = cached.min(prompt_tokens);
    let cache_write = cache_write.min(prompt_tokens.saturating_sub(cached));
    let uncached = prompt_tokens
        .saturating_sub(cached)
        .saturating_sub(cache_write);
    let input = price.input_cost_per_token;
    uncached as f64 * input
        + cached as f64 * price.cache_read_input_token_cost.unwrap_or(input)
        + cache_write as f64 * price.cache_creation_input_token_cost.unwrap_or(input)
        + completion_tokens as f64 * price.output_cost_per_token
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12_f64.max(b.abs() * 1e-9)
    }

    fn price(provider: &str, model: &str) -> Result<&'static Price, String> {
        lookup(provider, model).ok_or_else(|| format!("no price for {provider}/{model}"))
    }

    #[test]
    fn bundled_table_parses_and_is_sane() -> TestResult {
        let raw: HashMap<String, Entry> = serde_json::from_str(PRICES_JSON)?;
        assert!(
            (80..=160).contains(&raw.len()),
            "{} entries in prices.json",
            raw.len()
        );
        for (key, entry) in &raw {
            let p = &entry.price;
            assert_eq!(
                key,
                &key.trim().to_ascii_lowercase(),
                "key {key} not normalised"
            );
            let costs = [
                Some(p.input_cost_per_token),
                Some(p.output_cost_per_token),
                p.cache_read_input_token_cost,
                p.cache_creation_input_token_cost,
            ];
            for c in costs.into_iter().flatten() {
                assert!(c.is_finite() && c >= 0.0, "{key}: bad price {c}");
                // Per-token prices: anything above $1k per million tokens is a unit slip.
                assert!(c < 1e-3, "{key}: {c} is not a per-token price");
            }
            if let Some(read) = p.cache_read_input_token_cost {
                assert!(
                    read <= p.input_cost_per_token,
                    "{key}: cache read above input"
                );
            }
            match p.mode.as_deref() {
                Some("chat") | Some("completion") => {
                    assert!(p.max_input_tokens.is_some(), "{key}: no max_input_tokens");
                    assert!(p.max_output_tokens.is_some(), "{key}: no max_output_tokens");
                }
                Some("embedding") => assert!(p.output_cost_per_token == 0.0, "{key}"),
                other => panic!("{key}: unexpected mode {other:?}"),
            }
            if let Some(factor) = entry.bedrock_geo_multiplier {
                assert!(
                    key.starts_with("anthropic."),
                    "{key}: geo multiplier off Bedrock"
                );
                assert!((1.0..=1.5).contains(&factor), "{key}: factor {factor}");
            }
        }
        // The static table parsed too, with the derived geo-profile keys on top.
        assert!(TABLE.len() > raw.len());
        Ok(())
    }

    #[test]
    fn openai_exact_and_dated_snapshots() -> TestResult {
        let base = price("openai", "gpt-4o")?;
        assert!(close(base.input_cost_per_token, 2.5e-6));
        // A snapshot without its own entry falls back to the undated name…
        assert_eq!(price("openai", "gpt-4o-2024-08-06")?, base);
        assert_eq!(
            price("openai", "gpt-4o-mini-2024-07-18")?,
            price("openai", "gpt-4o-mini")?
        );
        assert_eq!(price("openai", "o3-2025-04-16")?, price("openai", "o3")?);
        // …but one with its own (different) price matches exactly.
        let may = price("openai", "gpt-4o-2024-05-13")?;
        assert!(close(may.input_cost_per_token, 5e-6));
        // Only a date is dropped, and case does not matter.
        assert!(lookup("openai", "gpt-4o-turbo-preview").is_none());
        assert!(lookup("openai", "gpt-4o-1234").is_none());
        assert_eq!(price("OpenAI", "GPT-4o")?, base);
        assert_eq!(
            price("text-completion-openai", "gpt-3.5-turbo-instruct")?
                .mode
                .as_deref(),
            Some("completion")
        );
        Ok(())
    }

    #[test]
    fn azure_uses_openai_entries() -> TestResult {
        assert_eq!(
            price("azure", "gpt-35-turbo")?,
            price("openai", "gpt-3.5-turbo")?
        );
        assert_eq!(price("azure", "gpt-4o")?, price("openai", "gpt-4o")?);
        assert_eq!(
            price("azure", "gpt-4.1-mini-2025-04-14")?,
            price("openai", "gpt-4.1-mini")?
        );
        assert_eq!(
            price("azure", "text-embedding-3-large")?.mode.as_deref(),
            Some("embedding")
        );
        Ok(())
    }

    #[test]
    fn anthropic_ids() -> TestResult {
        let haiku = price("anthropic", "claude-3-5-haiku-20241022")?;
        assert!(close(haiku.input_cost_per_token, 8e-7));
        assert_eq!(
            price("anthropic", "claude-sonnet-4-5")?,
            price("anthropic", "claude-sonnet-4-5-20250929")?
        );
        // A dated id without an entry falls back to its alias.
        assert_eq!(
            price("anthropic", "claude-opus-4-7-20990101")?,
            price("anthropic", "claude-opus-4-7")?
        );
        assert!(lookup("anthropic", "claude-2.1").is_none());
        Ok(())
    }

    #[test]
    fn bedrock_cross_region_profiles_resolve() -> TestResult {
        let base = price("bedrock", "anthropic.claude-3-7-sonnet-20250219-v1:0")?;
        for prefix in [
            "us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.",
        ] {
            let id = format!("{prefix}anthropic.claude-3-7-sonnet-20250219-v1:0");
            assert_eq!(price("bedrock", &id)?, base, "{id}");
            assert_eq!(price("bedrock_converse", &id)?, base, "{id}");
        }
        assert_eq!(
            price("bedrock", "US.Anthropic.Claude-3-5-Sonnet-20241022-V2:0")?,
            price("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0")?
        );
        assert!(close(
            price("bedrock", "us.meta.llama3-3-70b-instruct-v1:0")?.input_cost_per_token,
            7.2e-7
        ));
        assert_eq!(
            price("bedrock", "converse/us.amazon.nova-lite-v1:0")?,
            price("bedrock", "amazon.nova-lite-v1:0")?
        );
        assert_eq!(
            price("bedrock", "anthropic.claude-3-haiku-20240307-v1:0:200k")?,
            price("bedrock", "anthropic.claude-3-haiku-20240307-v1:0")?
        );
        assert!(lookup("bedrock", "xx.anthropic.claude-3-7-sonnet-20250219-v1:0").is_none());
        Ok(())
    }

    #[test]
    fn bedrock_geo_profiles_priced_apart() -> TestResult {
        let id = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let base = price("bedrock", id)?;
        assert_eq!(price("bedrock", &format!("global.{id}"))?, base);
        let us = price("bedrock", &format!("us.{id}"))?;
        assert!(close(us.input_cost_per_token, 3.3e-6));
        assert!(close(us.output_cost_per_token, 1.65e-5));
        assert!(close(us.cache_read_input_token_cost.unwrap_or(0.0), 3.3e-7));
        assert!(close(
            us.cache_creation_input_token_cost.unwrap_or(0.0),
            4.125e-6
        ));
        assert_eq!(us.max_input_tokens, base.max_input_tokens);
        assert_eq!(price("bedrock", &format!("eu.{id}"))?, us);
        // Explicit prefixed entries win over derived ones and over the base.
        assert!(close(
            price("bedrock", &format!("us-gov.{id}"))?.input_cost_per_token,
            3.6e-6
        ));
        assert!(close(
            price("bedrock", "eu.amazon.nova-pro-v1:0")?.input_cost_per_token,
            1.05e-6
        ));
        assert!(close(
            price("bedrock", "us.amazon.nova-pro-v1:0")?.input_cost_per_token,
            8e-7
        ));
        Ok(())
    }

    #[test]
    fn bedrock_arns_resolve() -> TestResult {
        let base = price("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0")?;
        assert_eq!(
            price(
                "bedrock",
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20241022-v2:0"
            )?,
            base
        );
        assert_eq!(
            price(
                "bedrock_converse",
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0"
            )?,
            base
        );
        // An application inference profile's id names no model.
        assert!(lookup(
            "bedrock",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
        )
        .is_none());
        Ok(())
    }

    #[test]
    fn mistral_gemini_vertex_groq() -> TestResult {
        assert!(close(
            price("mistral", "mistral-large-latest")?.input_cost_per_token,
            5e-7
        ));
        assert_eq!(
            price("mistral", "mistral/mistral-embed")?,
            price("mistral", "mistral-embed")?
        );

        let pro = price("gemini", "gemini-1.5-pro")?;
        assert_eq!(price("gemini", "models/gemini-1.5-pro")?, pro);
        assert_eq!(price("gemini", "gemini/gemini-1.5-pro")?, pro);
        assert_eq!(price("vertex_ai", "gemini-1.5-pro-002")?, pro);
        assert_eq!(
            price("vertex_ai", "gemini-2.5-pro")?,
            price("gemini", "gemini-2.5-pro")?
        );
        assert_eq!(
            price(
                "vertex_ai",
                "projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash"
            )?,
            price("gemini", "gemini-2.5-flash")?
        );
        // Vertex's own price where it differs from the Gemini API's.
        assert!(close(
            price("vertex_ai", "gemini-2.0-flash-001")?.input_cost_per_token,
            1.5e-7
        ));
        assert!(close(
            price("gemini", "gemini-2.0-flash-001")?.input_cost_per_token,
            1e-7
        ));
        // Claude on Vertex.
        assert_eq!(
            price("vertex_ai", "claude-3-5-sonnet-v2@20241022")?,
            price("anthropic", "claude-3-5-sonnet-20241022")?
        );
        assert_eq!(
            price("vertex_ai", "claude-sonnet-4-5@20250929")?,
            price("anthropic", "claude-sonnet-4-5")?
        );

        assert!(close(
            price("groq", "llama-3.1-8b-instant")?.input_cost_per_token,
            5e-8
        ));
        assert!(close(
            price("groq", "mixtral-8x7b-32768")?.output_cost_per_token,
            2.4e-7
        ));
        assert!(price("groq", "meta-llama/llama-4-scout-17b-16e-instruct")?
            .max_input_tokens
            .is_some());
        Ok(())
    }

    #[test]
    fn unknown_is_none() {
        assert!(lookup("openai", "gpt-unknown").is_none());
        assert!(lookup("openai", "").is_none());
        assert!(lookup("ollama", "llama3").is_none());
        assert!(lookup("hosted_vllm", "gpt-4o").is_none());
        assert!(lookup("", "gpt-4o").is_none());
        assert!(lookup("bedrock", "acme.model-v1:0").is_none());
        assert!(lookup("mistral", "gpt-4o").is_none());
        assert!(lookup("groq", "claude-3-5-haiku-20241022").is_none());
    }

    #[test]
    fn cost_arithmetic() -> TestResult {
        // gpt-4o-mini: $0.15 / $0.60 per million, cache reads $0.075.
        let mini = price("openai", "gpt-4o-mini")?;
        assert!(close(
            cost(mini, 1000, 500, 0, 0),
            1000.0 * 0.15e-6 + 500.0 * 0.6e-6
        ));
        assert!(close(cost(mini, 1000, 500, 0, 0), 0.00045));
        // 400 of the 1000 prompt tokens read from the cache.
        assert!(close(
            cost(mini, 1000, 500, 400, 0),
            600.0 * 0.15e-6 + 400.0 * 0.075e-6 + 500.0 * 0.6e-6
        ));
        assert!(close(cost(mini, 1000, 500, 400, 0), 0.00042));

        // claude-3-5-haiku: $0.80 in, $4 out, $0.08 cache read, $1 cache write.
        let haiku = price("anthropic", "claude-3-5-haiku-20241022")?;
        let expected = 500.0 * 0.8e-6 + 200.0 * 0.08e-6 + 300.0 * 1e-6 + 500.0 * 4e-6;
        assert!(close(cost(haiku, 1000, 500, 200, 300), expected));
        assert!(close(expected, 0.002716));

        // No cache price: cached tokens at the input price.
        let titan = price("bedrock", "amazon.titan-embed-text-v2:0")?;
        assert!(close(cost(titan, 1000, 0, 0, 0), 2e-5));
        let llama = price("bedrock", "meta.llama3-1-8b-instruct-v1:0")?;
        assert!(close(
            cost(llama, 1000, 0, 500, 0),
            cost(llama, 1000, 0, 0, 0)
        ));

        // Over-reported cache counts are clamped to the prompt; zero is zero.
        assert!(close(cost(mini, 100, 0, 500, 500), 100.0 * 0.075e-6));
        assert!(close(cost(mini, 0, 0, 0, 0), 0.0));
        Ok(())
    }
}
