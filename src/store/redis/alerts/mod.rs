//! What webhook delivery ([`crate::alerts`]) reads from Redis: the way to
//! the server (`link.rs`), the consumer-group commands on
//! `PREFIX:transitions` (`stream.rs`) and their replies (`reply.rs`).

pub(crate) mod link;
mod reply;
pub(crate) mod stream;
