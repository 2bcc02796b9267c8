use std::time::Duration;

/// Per-server settings of a mock upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockConfig {
    /// Delay before the first token: for streams, before the first content/tool
    /// event (headers and the leading role/start events go out at once); for
    /// non-stream responses, before the response (plus `inter_chunk_delay` per
    /// further token, i.e. the time the stream would have taken).
    pub first_token_delay: Duration,
    /// Delay between token events of a stream.
    pub inter_chunk_delay: Duration,
    /// Prompt size (whitespace-separated words) above which chat requests get the
    /// provider's context-length error. Default 1000.
    pub context_window: usize,
    /// When set, requests must carry this key (OpenAI: `Authorization: Bearer K`
    /// or `api-key: K`; Anthropic: `x-api-key: K` or bearer; Bedrock: the SigV4
    /// access key id, `Credential=K/...`), else the provider's 401/403.
    pub required_key: Option<String>,
    /// Record every LLM request (method, path, query, headers, body). Turn off for
    /// benchmarks: then no lock is taken on the request path.
    pub record: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            first_token_delay: Duration::ZERO,
            inter_chunk_delay: Duration::ZERO,
            context_window: 1000,
            required_key: None,
            record: true,
        }
    }
}

impl MockConfig {
    /// Defaults with recording off (what the benchmark uses).
    pub fn benchmark() -> Self {
        MockConfig {
            record: false,
            ..MockConfig::default()
        }
    }

    pub fn with_first_token_delay(mut self, d: Duration) -> Self {
        self.first_token_delay = d;
        self
    }

    pub fn with_inter_chunk_delay(mut self, d: Duration) -> Self {
        self.inter_chunk_delay = d;
        self
    }

    pub fn with_context_window(mut self, words: usize) -> Self {
        self.context_window = words;
        self
    }

    pub fn with_required_key(mut self, key: impl Into<String>) -> Self {
        self.required_key = Some(key.into());
        self
    }

    pub fn with_record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }
}
