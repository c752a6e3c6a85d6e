//! Where encoded records go.
pub mod kafka;
