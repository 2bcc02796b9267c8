//! `guardrail: bedrock`: Bedrock's ApplyGuardrail (aws-sdk-bedrockruntime) on
//! the traffic of any provider. A policy that blocks (topic, content, word,
//! sensitive information, grounding) blocks with the guardrail's own message;
//! anonymized text replaces the input or the answer when `mask_request_content`
//! / `mask_response_content` say so.

use aws_sdk_bedrockruntime::types::{
    GuardrailAction, GuardrailAssessment, GuardrailContentBlock, GuardrailContentPolicyAction,
    GuardrailContentSource, GuardrailContextualGroundingPolicyAction,
    GuardrailSensitiveInformationPolicyAction, GuardrailTextBlock, GuardrailTopicPolicyAction,
    GuardrailWordPolicyAction,
};
use aws_sdk_bedrockruntime::Client;

use crate::config::AwsParams;

pub struct BedrockGuard {
    client: Client,
    identifier: String,
    version: String,
    pub mask_request: bool,
    pub mask_response: bool,
}

/// What ApplyGuardrail said about some text.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Pass,
    /// One text per text sent, with sensitive values replaced.
    Anonymized(Vec<String>),
    /// The guardrail's message for the caller.
    Blocked(String),
}

impl BedrockGuard {
    pub async fn new(
        identifier: &str,
        version: &str,
        aws: &AwsParams,
        mask_request: bool,
        mask_response: bool,
    ) -> BedrockGuard {
        BedrockGuard {
            client: crate::providers::bedrock::client(aws).await,
            identifier: identifier.to_string(),
            version: version.to_string(),
            mask_request,
            mask_response,
        }
    }

    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    /// Checks `texts` (the input's, or the answer's when `output`).
    pub async fn apply(&self, texts: &[String], output: bool) -> Result<Verdict, String> {
        let mut req = self
            .client
            .apply_guardrail()
            .guardrail_identifier(&self.identifier)
            .guardrail_version(&self.version)
            .source(if output {
                GuardrailContentSource::Output
            } else {
                GuardrailContentSource::Input
            });
        for t in texts {
            let block = GuardrailTextBlock::builder()
                .text(t)
                .build()
                .map_err(|e| e.to_string())?;
            req = req.content(GuardrailContentBlock::Text(block));
        }
        // Boxed: the SDK's future is several kilobytes, and every future that
        // may await a guardrail (each chat call's) would carry it inline.
        let out = Box::pin(req.send()).await.map_err(|e| {
            let e = crate::providers::bedrock::sdk_error(e);
            format!(
                "Bedrock guardrail {} could not be applied: {}",
                self.identifier, e.message
            )
        })?;
        if out.action() != &GuardrailAction::GuardrailIntervened {
            return Ok(Verdict::Pass);
        }
        let outputs: Vec<String> = out
            .outputs()
            .iter()
            .filter_map(|o| o.text().map(str::to_string))
            .collect();
        if out.assessments().iter().any(blocks) {
            let message = if outputs.is_empty() {
                "the guardrail intervened".to_string()
            } else {
                outputs.join(" ")
            };
            return Ok(Verdict::Blocked(message));
        }
        if outputs.len() == texts.len() {
            Ok(Verdict::Anonymized(outputs))
        } else {
            // Anonymized text that does not line up with what was sent cannot
            // replace it piece by piece: refuse rather than send it unmasked.
            Ok(Verdict::Blocked(outputs.join(" ")))
        }
    }
}

/// Whether any policy of an assessment blocked.
fn blocks(a: &GuardrailAssessment) -> bool {
    let topic = a.topic_policy().is_some_and(|p| {
        p.topics()
            .iter()
            .any(|t| t.action() == &GuardrailTopicPolicyAction::Blocked)
    });
    let content = a.content_policy().is_some_and(|p| {
        p.filters()
            .iter()
            .any(|f| f.action() == &GuardrailContentPolicyAction::Blocked)
    });
    let word = a.word_policy().is_some_and(|p| {
        p.custom_words()
            .iter()
            .any(|w| w.action() == &GuardrailWordPolicyAction::Blocked)
            || p.managed_word_lists()
                .iter()
                .any(|w| w.action() == &GuardrailWordPolicyAction::Blocked)
    });
    let sensitive = a.sensitive_information_policy().is_some_and(|p| {
        p.pii_entities()
            .iter()
            .any(|e| e.action() == &GuardrailSensitiveInformationPolicyAction::Blocked)
            || p.regexes()
                .iter()
                .any(|r| r.action() == &GuardrailSensitiveInformationPolicyAction::Blocked)
    });
    let grounding = a.contextual_grounding_policy().is_some_and(|p| {
        p.filters()
            .iter()
            .any(|f| f.action() == &GuardrailContextualGroundingPolicyAction::Blocked)
    });
    topic || content || word || sensitive || grounding
}
