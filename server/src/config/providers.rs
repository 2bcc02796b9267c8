//! Which provider a `litellm_params.model` string names, and each provider's defaults.

/// How Tollgate talks to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// OpenAI's Chat Completions wire format (OpenAI itself and every compatible server).
    OpenAiCompatible,
    /// Azure OpenAI: OpenAI's format at a deployment URL with `api-version` and an `api-key` header.
    Azure,
    /// Anthropic's native Messages API.
    Anthropic,
    /// Amazon Bedrock Converse / ConverseStream / InvokeModel.
    Bedrock,
    /// Tollgate's built-in canned-answer model.
    Demo,
}

/// One provider prefix and its defaults.
#[derive(Debug, Clone, Copy)]
pub struct ProviderSpec {
    pub prefix: &'static str,
    pub family: Family,
    pub default_api_base: Option<&'static str>,
    /// Environment variables consulted, in order, when `api_key` is not set.
    pub key_env: &'static [&'static str],
    /// Environment variable consulted when `api_base` is not set.
    pub base_env: Option<&'static str>,
}

const fn oa(
    prefix: &'static str,
    base: Option<&'static str>,
    key_env: &'static [&'static str],
) -> ProviderSpec {
    ProviderSpec {
        prefix,
        family: Family::OpenAiCompatible,
        default_api_base: base,
        key_env,
        base_env: None,
    }
}

/// Every provider prefix Tollgate serves.
pub const PROVIDERS: &[ProviderSpec] = &[
    ProviderSpec {
        prefix: "openai",
        family: Family::OpenAiCompatible,
        default_api_base: Some("https://api.openai.com/v1"),
        key_env: &["OPENAI_API_KEY"],
        base_env: Some("OPENAI_API_BASE"),
    },
    ProviderSpec {
        prefix: "azure",
        family: Family::Azure,
        default_api_base: None,
        key_env: &["AZURE_API_KEY", "AZURE_OPENAI_API_KEY"],
        base_env: Some("AZURE_API_BASE"),
    },
    ProviderSpec {
        prefix: "anthropic",
        family: Family::Anthropic,
        default_api_base: Some("https://api.anthropic.com"),
        key_env: &["ANTHROPIC_API_KEY"],
        base_env: Some("ANTHROPIC_API_BASE"),
    },
    ProviderSpec {
        prefix: "bedrock",
        family: Family::Bedrock,
        default_api_base: None,
        key_env: &[],
        base_env: None,
    },
    ProviderSpec {
        prefix: "demo",
        family: Family::Demo,
        default_api_base: None,
        key_env: &[],
        base_env: None,
    },
    oa(
        "mistral",
        Some("https://api.mistral.ai/v1"),
        &["MISTRAL_API_KEY"],
    ),
    oa(
        "codestral",
        Some("https://codestral.mistral.ai/v1"),
        &["CODESTRAL_API_KEY"],
    ),
    oa(
        "groq",
        Some("https://api.groq.com/openai/v1"),
        &["GROQ_API_KEY"],
    ),
    oa(
        "deepseek",
        Some("https://api.deepseek.com/v1"),
        &["DEEPSEEK_API_KEY"],
    ),
    oa(
        "together_ai",
        Some("https://api.together.xyz/v1"),
        &[
            "TOGETHERAI_API_KEY",
            "TOGETHER_AI_API_KEY",
            "TOGETHER_API_KEY",
        ],
    ),
    oa(
        "fireworks_ai",
        Some("https://api.fireworks.ai/inference/v1"),
        &["FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"],
    ),
    oa(
        "openrouter",
        Some("https://openrouter.ai/api/v1"),
        &["OPENROUTER_API_KEY"],
    ),
    oa("hosted_vllm", None, &["HOSTED_VLLM_API_KEY"]),
    oa(
        "ollama",
        Some("http://127.0.0.1:11434/v1"),
        &["OLLAMA_API_KEY"],
    ),
    oa(
        "ollama_chat",
        Some("http://127.0.0.1:11434/v1"),
        &["OLLAMA_API_KEY"],
    ),
    oa(
        "gemini",
        Some("https://generativelanguage.googleapis.com/v1beta/openai"),
        &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
    ),
    oa("xai", Some("https://api.x.ai/v1"), &["XAI_API_KEY"]),
    oa(
        "cerebras",
        Some("https://api.cerebras.ai/v1"),
        &["CEREBRAS_API_KEY"],
    ),
    oa(
        "perplexity",
        Some("https://api.perplexity.ai"),
        &["PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"],
    ),
    oa(
        "nvidia_nim",
        Some("https://integrate.api.nvidia.com/v1"),
        &["NVIDIA_NIM_API_KEY"],
    ),
    oa(
        "deepinfra",
        Some("https://api.deepinfra.com/v1/openai"),
        &["DEEPINFRA_API_KEY"],
    ),
    oa(
        "sambanova",
        Some("https://api.sambanova.ai/v1"),
        &["SAMBANOVA_API_KEY"],
    ),
    oa(
        "github",
        Some("https://models.inference.ai.azure.com"),
        &["GITHUB_API_KEY"],
    ),
    oa(
        "lm_studio",
        Some("http://127.0.0.1:1234/v1"),
        &["LM_STUDIO_API_KEY"],
    ),
];

/// The provider spec for a prefix such as `openai`.
pub fn spec(prefix: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|p| p.prefix == prefix)
}

/// Splits `provider/model` into its provider and upstream model id.
///
/// Without a known prefix, the provider is inferred from well-known model names as
/// LiteLLM does (`gpt-4o` → openai, `claude-…` → anthropic, `anthropic.claude-…` → bedrock).
/// Returns the prefix as written when it names no provider Tollgate serves.
pub fn split_model(
    model: &str,
    custom_llm_provider: Option<&str>,
) -> Result<(&'static ProviderSpec, String), String> {
    if let Some(p) = custom_llm_provider {
        let spec = spec(p).ok_or_else(|| p.to_string())?;
        let upstream = model
            .strip_prefix(p)
            .and_then(|m| m.strip_prefix('/'))
            .unwrap_or(model);
        return Ok((spec, normalise(spec, upstream)));
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        if let Some(spec) = spec(prefix) {
            return Ok((spec, normalise(spec, rest)));
        }
        // `meta-llama/Llama-3` style ids without a provider prefix are not guessable.
        if !looks_like_bedrock(model) {
            return Err(prefix.to_string());
        }
    }
    let inferred = if looks_like_bedrock(model) {
        "bedrock"
    } else if model.starts_with("claude-") {
        "anthropic"
    } else if [
        "gpt-",
        "o1",
        "o3",
        "o4",
        "chatgpt-",
        "text-embedding-",
        "davinci",
        "babbage",
    ]
    .iter()
    .any(|p| model.starts_with(p))
    {
        "openai"
    } else {
        return Err(model.to_string());
    };
    let spec = spec(inferred).ok_or_else(|| inferred.to_string())?;
    Ok((spec, normalise(spec, model)))
}

fn looks_like_bedrock(model: &str) -> bool {
    let m = model
        .strip_prefix("arn:aws:bedrock:")
        .map(|_| "arn")
        .unwrap_or(model);
    if m == "arn" {
        return true;
    }
    let m = ["us.", "eu.", "apac.", "us-gov.", "global."]
        .iter()
        .find_map(|p| model.strip_prefix(p))
        .unwrap_or(model);
    [
        "anthropic.",
        "amazon.",
        "meta.",
        "mistral.",
        "cohere.",
        "ai21.",
        "deepseek.",
        "writer.",
        "stability.",
    ]
    .iter()
    .any(|p| m.starts_with(p))
}

/// Strips LiteLLM's route hints (`bedrock/converse/…`, `bedrock/invoke/…`).
fn normalise(spec: &ProviderSpec, upstream: &str) -> String {
    if spec.family == Family::Bedrock {
        for hint in ["converse/", "invoke/", "converse_like/"] {
            if let Some(rest) = upstream.strip_prefix(hint) {
                return rest.to_string();
            }
        }
    }
    upstream.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_infers_providers() {
        let cases: &[(&str, &str, &str)] = &[
            ("openai/gpt-4o", "openai", "gpt-4o"),
            ("gpt-4o-mini", "openai", "gpt-4o-mini"),
            (
                "claude-3-5-sonnet-20240620",
                "anthropic",
                "claude-3-5-sonnet-20240620",
            ),
            ("anthropic/claude-3-haiku", "anthropic", "claude-3-haiku"),
            (
                "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0",
                "bedrock",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
            ),
            (
                "bedrock/converse/us.meta.llama3-1-8b",
                "bedrock",
                "us.meta.llama3-1-8b",
            ),
            (
                "us.anthropic.claude-3-haiku-20240307-v1:0",
                "bedrock",
                "us.anthropic.claude-3-haiku-20240307-v1:0",
            ),
            (
                "bedrock/arn:aws:bedrock:us-east-1:123:inference-profile/x",
                "bedrock",
                "arn:aws:bedrock:us-east-1:123:inference-profile/x",
            ),
            ("azure/my-deployment", "azure", "my-deployment"),
            ("groq/llama-3.1-8b-instant", "groq", "llama-3.1-8b-instant"),
            (
                "together_ai/meta-llama/Llama-3-8b",
                "together_ai",
                "meta-llama/Llama-3-8b",
            ),
            ("ollama/llama3", "ollama", "llama3"),
            ("demo/tollgate", "demo", "tollgate"),
        ];
        for (input, provider, upstream) in cases {
            let (spec, model) = split_model(input, None).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (spec.prefix, model.as_str()),
                (*provider, *upstream),
                "{input}"
            );
        }
    }

    #[test]
    fn unknown_prefixes_are_named() {
        assert_eq!(
            split_model("vertex_ai/gemini-pro", None).err(),
            Some("vertex_ai".to_string())
        );
        assert_eq!(
            split_model("some-local-model", None).err(),
            Some("some-local-model".to_string())
        );
    }

    #[test]
    fn custom_llm_provider_overrides() {
        let (spec, m) = split_model("my-model", Some("openai")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((spec.prefix, m.as_str()), ("openai", "my-model"));
    }
}
