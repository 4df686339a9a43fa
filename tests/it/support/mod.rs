//! What the integration tests share: CSV readers and command helpers (`common`), data
//! fixtures, and the loopback servers that speak SMTP, HTTP (Jira, webhooks) and the LLM
//! protocol.

pub mod common;
pub mod dispatch_fixtures;
pub mod fake_service;
pub mod http_server;
pub mod llm_server;
pub mod service;
pub mod smtp_server;
pub mod store_v1;
