//! Delivery targets: Kafka topics and webhooks.

pub mod kafka;
pub mod webhook;
