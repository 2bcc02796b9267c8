//! Where request logs go besides the store: `litellm_settings.success_callback`,
//! `failure_callback`, `service_callback` (and `callbacks`, which is both of
//! the first two), with `s3_callback_params` and the destinations' environment
//! variables; and whether prompts and answers are kept anywhere.

use super::env::{Env, Resolved};
use super::litellm::{OneOrMany, RawGeneralSettings, RawLitellmSettings, ScalarString};
use crate::secret::Secret;
use serde::Deserialize;
use std::time::Duration;

type FieldError = (String, String);

/// `litellm_settings.s3_callback_params`.
#[derive(Debug, Default, Deserialize)]
pub struct RawS3Params {
    pub s3_bucket_name: Option<ScalarString>,
    pub s3_region_name: Option<ScalarString>,
    pub s3_endpoint_url: Option<ScalarString>,
    pub s3_path: Option<ScalarString>,
    pub s3_aws_access_key_id: Option<ScalarString>,
    pub s3_aws_secret_access_key: Option<ScalarString>,
    pub s3_aws_session_token: Option<ScalarString>,
    /// Tollgate's: address the bucket in the path (S3-compatible stores, moto).
    pub s3_use_path_style: Option<bool>,
    /// Seconds between uploads.
    pub s3_flush_interval: Option<f64>,
    /// Records per object, at most.
    pub s3_batch_size: Option<usize>,
}

/// The log destinations and what they get.
#[derive(Debug, Clone, Default)]
pub struct CallbacksConfig {
    pub destinations: Vec<Destination>,
    /// `turn_off_message_logging`: no prompt or answer is kept anywhere.
    pub turn_off_message_logging: bool,
    /// `general_settings.store_prompts_in_spend_logs`: the request log keeps them.
    pub store_prompts_in_spend_logs: bool,
    /// `general_settings.disable_spend_logs`: the store keeps no log of calls that succeeded.
    pub disable_spend_logs: bool,
    /// `general_settings.disable_error_logs`: the store keeps no log of calls that failed.
    pub disable_error_logs: bool,
    /// Delivery settings (`TOLLGATE_CALLBACK_FLUSH_SECS`, `_QUEUE`, `_RETRIES`).
    pub flush_every: Duration,
    pub queue: usize,
    pub attempts: u32,
}

impl CallbacksConfig {
    /// Whether the destinations get prompts and answers.
    pub fn destinations_get_content(&self) -> bool {
        !self.turn_off_message_logging && !self.destinations.is_empty()
    }

    /// Whether the request log in the store keeps prompts and answers.
    pub fn store_gets_content(&self) -> bool {
        !self.turn_off_message_logging
            && self.store_prompts_in_spend_logs
            && !(self.disable_spend_logs && self.disable_error_logs)
    }

    /// Which request logs the store keeps.
    pub fn stored_logs(&self) -> StoredLogs {
        StoredLogs {
            success: !self.disable_spend_logs,
            failure: !self.disable_error_logs,
            content: self.store_gets_content(),
        }
    }
}

/// Which request logs the store keeps. Spend counters and the daily
/// roll-up count every call whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredLogs {
    /// Logs of calls that succeeded (off with `disable_spend_logs`).
    pub success: bool,
    /// Logs of calls that failed (off with `disable_error_logs`).
    pub failure: bool,
    /// Their prompts and answers (`store_prompts_in_spend_logs`).
    pub content: bool,
}

impl StoredLogs {
    /// Whether a call that succeeded (`true`) or failed is kept.
    pub fn keeps(&self, succeeded: bool) -> bool {
        if succeeded {
            self.success
        } else {
            self.failure
        }
    }

    /// What the log pages say about the calls they cannot show.
    pub fn notice(&self) -> Option<&'static str> {
        match (self.success, self.failure) {
            (true, true) => None,
            (false, true) => Some(
                "Calls that succeeded are not stored (general_settings.disable_spend_logs); only failed calls are listed. Spend is still counted.",
            ),
            (true, false) => Some(
                "Calls that failed are not stored (general_settings.disable_error_logs); only calls that succeeded are listed.",
            ),
            (false, false) => Some(
                "Request logs are not stored (general_settings.disable_spend_logs and disable_error_logs). Spend is still counted.",
            ),
        }
    }
}

/// One destination and which logs it receives.
#[derive(Debug, Clone)]
pub struct Destination {
    pub kind: DestinationKind,
    pub success: bool,
    pub failure: bool,
    pub service: bool,
}

impl Destination {
    pub fn name(&self) -> &'static str {
        match self.kind {
            DestinationKind::S3(_) => "s3",
            DestinationKind::Langsmith { .. } => "langsmith",
            DestinationKind::Otel { .. } => "otel",
            DestinationKind::Webhook { .. } => "webhook",
        }
    }
}

#[derive(Debug, Clone)]
pub enum DestinationKind {
    S3(S3Params),
    Langsmith {
        api_key: Secret,
        project: String,
        run_name: String,
        base_url: String,
    },
    Otel {
        /// Where spans are POSTed (the traces path included).
        endpoint: String,
        headers: Vec<(String, Secret)>,
        protobuf: bool,
        service_name: String,
    },
    Webhook {
        url: String,
        headers: Vec<(String, Secret)>,
    },
}

#[derive(Debug, Clone)]
pub struct S3Params {
    pub bucket: String,
    /// Region, credentials and endpoint (the bucket's client is made like the Bedrock one).
    pub aws: super::AwsParams,
    /// Key prefix, without a trailing slash ("" for none).
    pub prefix: String,
    pub path_style: bool,
    pub flush_every: Option<Duration>,
    pub batch_size: Option<usize>,
}

/// Reads the destinations named in `litellm_settings`; names Tollgate does
/// not deliver to are warned about and skipped.
pub fn callbacks(
    ls: &mut RawLitellmSettings,
    general: Option<&RawGeneralSettings>,
    env: &Env,
    warnings: &mut Vec<String>,
) -> Result<CallbacksConfig, FieldError> {
    let list = |v: Option<OneOrMany>| v.map(OneOrMany::into_vec).unwrap_or_default();
    let both = list(ls.callbacks.take());
    let lists = [
        ("success_callback", list(ls.success_callback.take())),
        ("failure_callback", list(ls.failure_callback.take())),
        ("service_callback", list(ls.service_callback.take())),
    ];
    // name -> (success, failure, service, where it was first named)
    let mut wanted: Vec<(&'static str, [bool; 3], String)> = Vec::new();
    let mut want = |name: &str, which: [bool; 3], path: String, warnings: &mut Vec<String>| {
        let canonical = match name.trim().to_ascii_lowercase().as_str() {
            "s3" | "s3_v2" => "s3",
            "langsmith" => "langsmith",
            "otel" | "opentelemetry" => "otel",
            "webhook" | "generic_api" | "generic" => "webhook",
            other => {
                warnings.push(format!(
                    "{path}: {other:?} is not a log destination Tollgate delivers to (s3, langsmith, otel, webhook); ignored"
                ));
                return;
            }
        };
        match wanted.iter_mut().find(|(n, ..)| *n == canonical) {
            Some((_, w, _)) => {
                for (a, b) in w.iter_mut().zip(which) {
                    *a |= b;
                }
            }
            None => wanted.push((canonical, which, path)),
        }
    };
    for (i, name) in both.iter().enumerate() {
        want(
            name,
            [true, true, false],
            format!("litellm_settings.callbacks[{i}]"),
            warnings,
        );
    }
    for (slot, (field, names)) in lists.iter().enumerate() {
        let mut which = [false; 3];
        which[slot] = true;
        for (i, name) in names.iter().enumerate() {
            want(
                name,
                which,
                format!("litellm_settings.{field}[{i}]"),
                warnings,
            );
        }
    }
    let s3_params = ls.s3_callback_params.take();
    if s3_params.is_some() && !wanted.iter().any(|(n, ..)| *n == "s3") {
        warnings.push(
            "litellm_settings.s3_callback_params: set, but no callback list names s3; nothing is sent to S3".into(),
        );
    }
    let mut destinations = Vec::new();
    for (name, [success, failure, service], path) in wanted {
        let kind = match name {
            "s3" => match s3(s3_params.as_ref(), env, &path) {
                Ok(p) => DestinationKind::S3(p),
                // A deployment's template whose bucket variable this machine lacks.
                Err((field, reason)) if reason.ends_with("which is not set") => {
                    warnings.push(format!(
                        "{path}: {field} {reason}; request logs are not sent to S3"
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            },
            "langsmith" => DestinationKind::Langsmith {
                api_key: Secret::new(required(env, &path, &["LANGSMITH_API_KEY"])?),
                project: env
                    .get("LANGSMITH_PROJECT")
                    .unwrap_or_else(|| "litellm-completion".into()),
                run_name: env
                    .get("LANGSMITH_DEFAULT_RUN_NAME")
                    .unwrap_or_else(|| "LLMRun".into()),
                base_url: env
                    .get("LANGSMITH_BASE_URL")
                    .unwrap_or_else(|| "https://api.smith.langchain.com".into())
                    .trim_end_matches('/')
                    .to_string(),
            },
            "otel" => otel(env, &path)?,
            _ => DestinationKind::Webhook {
                url: url(
                    required(env, &path, &["GENERIC_LOGGER_ENDPOINT", "WEBHOOK_URL"])?,
                    &path,
                )?,
                headers: header_list(
                    env.get("GENERIC_LOGGER_HEADERS"),
                    "GENERIC_LOGGER_HEADERS",
                    &path,
                )?,
            },
        };
        destinations.push(Destination {
            kind,
            success,
            failure,
            service,
        });
    }
    let flag = |f: fn(&RawGeneralSettings) -> Option<bool>| general.and_then(f).unwrap_or(false);
    let store_prompts = flag(|g| g.store_prompts_in_spend_logs);
    let disable_spend_logs = flag(|g| g.disable_spend_logs);
    let disable_error_logs = flag(|g| g.disable_error_logs);
    let turn_off = ls.turn_off_message_logging.unwrap_or(false);
    if turn_off && store_prompts {
        warnings.push(
            "general_settings.store_prompts_in_spend_logs: litellm_settings.turn_off_message_logging is true, so prompts and answers are not kept".into(),
        );
    } else if store_prompts && disable_spend_logs && disable_error_logs {
        warnings.push(
            "general_settings.store_prompts_in_spend_logs: disable_spend_logs and disable_error_logs are both true, so no request log keeps them".into(),
        );
    }
    let number = |name: &str| env.get(name).and_then(|v| v.trim().parse::<f64>().ok());
    Ok(CallbacksConfig {
        destinations,
        turn_off_message_logging: turn_off,
        store_prompts_in_spend_logs: store_prompts,
        disable_spend_logs,
        disable_error_logs,
        flush_every: number("TOLLGATE_CALLBACK_FLUSH_SECS")
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(5)),
        queue: number("TOLLGATE_CALLBACK_QUEUE")
            .filter(|n| *n >= 1.0)
            .map(|n| n as usize)
            .unwrap_or(10_000),
        attempts: number("TOLLGATE_CALLBACK_RETRIES")
            .filter(|n| *n >= 1.0)
            .map(|n| n as u32)
            .unwrap_or(5),
    })
}

/// The first of `names` that is set, else an error naming them.
fn required(env: &Env, path: &str, names: &[&str]) -> Result<String, FieldError> {
    names.iter().find_map(|n| env.get(n)).ok_or_else(|| {
        (
            path.to_string(),
            format!("{} must be set for this destination", names.join(" or ")),
        )
    })
}

fn url(u: String, path: &str) -> Result<String, FieldError> {
    match u.parse::<http::Uri>() {
        Ok(p) if matches!(p.scheme_str(), Some("http" | "https")) && p.host().is_some() => Ok(u),
        _ => Err((path.to_string(), format!("{u:?} is not an http(s) URL"))),
    }
}

/// `k=v,k2=v2` (OpenTelemetry's header list format, values percent-decoded).
fn header_list(
    raw: Option<String>,
    var: &str,
    path: &str,
) -> Result<Vec<(String, Secret)>, FieldError> {
    let mut out = Vec::new();
    for pair in raw.iter().flat_map(|r| r.split(',')) {
        if pair.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = pair.split_once('=') else {
            return Err((
                path.to_string(),
                format!("{var}: {pair:?} is not name=value"),
            ));
        };
        let k = k.trim();
        let v = percent_encoding::percent_decode_str(v.trim()).decode_utf8_lossy();
        if http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || http::HeaderValue::from_str(&v).is_err()
        {
            return Err((
                path.to_string(),
                format!("{var}: {k:?} is not a valid header"),
            ));
        }
        out.push((k.to_ascii_lowercase(), Secret::new(v.into_owned())));
    }
    Ok(out)
}

fn otel(env: &Env, path: &str) -> Result<DestinationKind, FieldError> {
    let endpoint = match env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Some(full) => full,
        None => {
            let base = required(env, path, &["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_ENDPOINT"])?;
            let base = base.trim_end_matches('/');
            if base.ends_with("/v1/traces") {
                base.to_string()
            } else {
                format!("{base}/v1/traces")
            }
        }
    };
    let protocol = env
        .get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env.get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    let protobuf = match protocol.trim() {
        "http/protobuf" => true,
        "http/json" => false,
        other => {
            return Err((
                path.to_string(),
                format!("OTEL_EXPORTER_OTLP_PROTOCOL {other:?} is not supported: use http/protobuf or http/json"),
            ))
        }
    };
    let headers = match env.get("OTEL_EXPORTER_OTLP_HEADERS") {
        Some(h) => header_list(Some(h), "OTEL_EXPORTER_OTLP_HEADERS", path)?,
        None => header_list(env.get("OTEL_HEADERS"), "OTEL_HEADERS", path)?,
    };
    Ok(DestinationKind::Otel {
        endpoint: url(endpoint, path)?,
        headers,
        protobuf,
        service_name: env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| "tollgate".into()),
    })
}

fn s3(raw: Option<&RawS3Params>, env: &Env, path: &str) -> Result<S3Params, FieldError> {
    let field = |f: &str| format!("litellm_settings.s3_callback_params.{f}");
    let value = |v: &Option<ScalarString>, f: &str| -> Result<Option<String>, FieldError> {
        match v {
            None => Ok(None),
            Some(ScalarString(s)) => match env.resolve(s) {
                Resolved::Value(v) if v.is_empty() => Ok(None),
                Resolved::Value(v) => Ok(Some(v)),
                Resolved::MissingVar(n) | Resolved::MissingSecret(n) => {
                    Err((field(f), format!("names {n}, which is not set")))
                }
            },
        }
    };
    let Some(raw) = raw else {
        return Err((
            path.to_string(),
            "s3 needs litellm_settings.s3_callback_params with s3_bucket_name".into(),
        ));
    };
    let bucket = value(&raw.s3_bucket_name, "s3_bucket_name")?
        .ok_or_else(|| (field("s3_bucket_name"), "is required".to_string()))?;
    let endpoint = value(&raw.s3_endpoint_url, "s3_endpoint_url")?
        .map(|u| url(u, &field("s3_endpoint_url")))
        .transpose()?;
    let flush_every = match raw.s3_flush_interval {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err((
                field("s3_flush_interval"),
                format!("must be a positive number of seconds, got {s}"),
            ))
        }
    };
    if raw.s3_batch_size == Some(0) {
        return Err((field("s3_batch_size"), "must be at least 1".into()));
    }
    Ok(S3Params {
        bucket,
        path_style: raw.s3_use_path_style.unwrap_or(endpoint.is_some()),
        aws: super::AwsParams {
            access_key_id: value(&raw.s3_aws_access_key_id, "s3_aws_access_key_id")?
                .map(Secret::new),
            secret_access_key: value(&raw.s3_aws_secret_access_key, "s3_aws_secret_access_key")?
                .map(Secret::new),
            session_token: value(&raw.s3_aws_session_token, "s3_aws_session_token")?
                .map(Secret::new),
            region: value(&raw.s3_region_name, "s3_region_name")?,
            endpoint,
            ..Default::default()
        },
        prefix: value(&raw.s3_path, "s3_path")?
            .unwrap_or_default()
            .trim_matches('/')
            .to_string(),
        flush_every,
        batch_size: raw.s3_batch_size,
    })
}
