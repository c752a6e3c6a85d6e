//! WebAssembly plugins: the runtime that runs components under limits, the chain that applies
//! them to events with failure policies, and the admission of vetted (pinned, signed) plugins.
//! The interface is the WIT package in `wit/v0.1.0`.
pub mod chain;
pub mod declarative;
pub mod runtime;
pub mod signing;
