//! The wire format of the chat-completions API: the request's URL, headers and body, and the
//! answer's body, content, usage and error message.

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::{ChatRequest, LlmError, LlmSettings, ResponseFormat, TokenLimitField};
use crate::net::error_chain;
use crate::text::clean_text;

/// Largest response body read; anything longer is rejected as a bad answer.
pub(super) const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Longest server error message kept in [`LlmError::Http`].
pub(super) const MAX_ERROR_CHARS: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    pub(super) prompt_tokens: u32,
    pub(super) completion_tokens: u32,
}

pub(super) fn config(message: impl Into<String>) -> LlmError {
    LlmError::Config(message.into())
}

pub(super) fn endpoint_url(settings: &LlmSettings) -> Result<reqwest::Url, LlmError> {
    let base = settings.base_url.trim().trim_end_matches('/');
    if base.is_empty() {
        return Err(config("the base URL is empty"));
    }
    let parsed = reqwest::Url::parse(base)
        .map_err(|e| config(format!("the base URL is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(config("the base URL must start with http:// or https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(config("the base URL has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(config(
            "the base URL must not contain a query or fragment (set azure_api_version instead)",
        ));
    }
    let mut url = reqwest::Url::parse(&format!("{base}/chat/completions"))
        .map_err(|e| config(format!("the base URL is not a valid URL: {e}")))?;
    if let Some(version) = &settings.azure_api_version {
        let version = version.trim();
        if version.is_empty() {
            return Err(config("the Azure API version is empty"));
        }
        url.query_pairs_mut().append_pair("api-version", version);
    }
    Ok(url)
}

pub(super) fn auth_header(
    settings: &LlmSettings,
) -> Result<Option<(HeaderName, HeaderValue)>, LlmError> {
    let Some(key) = settings
        .api_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    else {
        return Ok(None);
    };
    let (name, value) = if settings.azure_api_version.is_some() {
        (
            HeaderName::from_static("api-key"),
            HeaderValue::from_str(key),
        )
    } else {
        (
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")),
        )
    };
    let mut value = value
        .map_err(|_| config("the API key contains characters not allowed in an HTTP header"))?;
    value.set_sensitive(true);
    Ok(Some((name, value)))
}

/// The JSON body of a chat-completions request.
pub(super) fn request_body(settings: &LlmSettings, req: &ChatRequest) -> Value {
    let mut body = json!({
        "model": settings.model,
        "messages": [
            {"role": "system", "content": req.system},
            {"role": "user", "content": req.user},
        ],
        "temperature": settings.temperature,
    });
    let token_field = match settings.token_limit_field {
        TokenLimitField::MaxTokens => "max_tokens",
        TokenLimitField::MaxCompletionTokens => "max_completion_tokens",
    };
    let format = match settings.response_format {
        ResponseFormat::JsonSchema => Some(json!({
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(&req.schema_name),
                "strict": true,
                "schema": req.schema,
            },
        })),
        ResponseFormat::JsonObject => Some(json!({"type": "json_object"})),
        ResponseFormat::None => None,
    };
    if let Some(object) = body.as_object_mut() {
        object.insert(token_field.into(), json!(settings.max_tokens));
        if let Some(format) = format {
            object.insert("response_format".into(), format);
        }
    }
    body
}

/// A schema name OpenAI accepts: `[A-Za-z0-9_-]{1,64}`.
pub(super) fn schema_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "answer".into()
    } else {
        cleaned
    }
}

/// Estimated tokens of a request: characters sent / 4, rounded up, plus the
/// completion limit. The schema counts when it is sent.
pub(super) fn estimate_tokens(settings: &LlmSettings, req: &ChatRequest) -> u64 {
    let mut chars = req.system.chars().count() + req.user.chars().count();
    if settings.response_format == ResponseFormat::JsonSchema {
        chars += req.schema.to_string().chars().count();
    }
    (chars as u64).div_ceil(4) + u64::from(settings.max_tokens)
}

pub(super) fn transport_error(error: reqwest::Error) -> LlmError {
    if error.is_timeout() {
        return LlmError::Timeout;
    }
    let connect = error.is_connect();
    let text = error_chain(error);
    if connect {
        LlmError::Transport(format!("connection failed: {text}"))
    } else {
        LlmError::Transport(text)
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
pub(super) async fn read_body(response: &mut reqwest::Response) -> Result<Vec<u8>, LlmError> {
    let too_large = || LlmError::BadResponse(format!("answer larger than {MAX_BODY_BYTES} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => return Err(transport_error(error)),
        }
    }
}

/// The error message of a non-success answer: `error.message` (or a string
/// `error` / `message`) from a JSON body, else the start of the body text.
pub(super) fn error_message(body: &[u8], status: u16, api_key: Option<&str>) -> String {
    let from_json = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            let error = value.get("error");
            error
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .or_else(|| error.and_then(Value::as_str))
                .or_else(|| value.get("message").and_then(Value::as_str))
                .map(str::to_owned)
        });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let cleaned = clean_text(&text, MAX_ERROR_CHARS, api_key);
    if !cleaned.is_empty() {
        return cleaned;
    }
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("no details")
        .to_string()
}

/// Extracts the message content, checks `finish_reason` and reads `usage`.
pub(super) fn parse_chat_body(body: &[u8]) -> (Result<String, LlmError>, Option<Usage>) {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => {
            let start = clean_text(&String::from_utf8_lossy(body), 60, None);
            let message = if start.is_empty() {
                "empty body instead of JSON".to_string()
            } else {
                format!("body is not JSON (starts with {start:?})")
            };
            return (Err(LlmError::BadResponse(message)), None);
        }
    };
    let usage = value.get("usage").and_then(|usage| {
        let count = |name: &str| {
            usage
                .get(name)
                .and_then(Value::as_u64)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        let prompt_tokens = count("prompt_tokens");
        let completion_tokens = count("completion_tokens");
        (prompt_tokens.is_some() || completion_tokens.is_some()).then(|| Usage {
            prompt_tokens: prompt_tokens.unwrap_or(0),
            completion_tokens: completion_tokens.unwrap_or(0),
        })
    });
    (chat_content(&value), usage)
}

pub(super) fn chat_content(value: &Value) -> Result<String, LlmError> {
    let bad = |message: &str| Err(LlmError::BadResponse(message.to_string()));
    let Some(choices) = value.get("choices") else {
        if let Some(error) = value.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| error.as_str())
                .unwrap_or("no details");
            return Err(LlmError::BadResponse(format!(
                "the service reported an error: {}",
                clean_text(message, MAX_ERROR_CHARS, None)
            )));
        }
        return bad("no \"choices\" in the answer");
    };
    let Some(choices) = choices.as_array() else {
        return bad("\"choices\" is not a list");
    };
    let Some(first) = choices.first() else {
        return bad("\"choices\" is empty");
    };
    let finish_reason = first.get("finish_reason").and_then(Value::as_str);
    if finish_reason == Some("length") {
        return Err(LlmError::Truncated);
    }
    let message = first.get("message");
    let content = message.and_then(|m| m.get("content"));
    let text = match content {
        Some(Value::String(text)) => Some(text.clone()),
        // Some servers send a list of content parts.
        Some(Value::Array(parts)) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect();
            (!texts.is_empty()).then(|| texts.concat())
        }
        _ => None,
    };
    if finish_reason == Some("content_filter") {
        return bad("the answer was withheld by the service's content filter");
    }
    match text {
        Some(text) => Ok(text),
        None => {
            if let Some(refusal) = message
                .and_then(|m| m.get("refusal"))
                .and_then(Value::as_str)
            {
                return Err(LlmError::BadResponse(format!(
                    "the model refused: {}",
                    clean_text(refusal, MAX_ERROR_CHARS, None)
                )));
            }
            bad("no message content in the answer")
        }
    }
}
