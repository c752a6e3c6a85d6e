//! Test fixture: a valid component that is not a plugin. It does not use the SDK and exports
//! nothing, so the relay must refuse it before instantiating it.

/// Keeps the crate non-empty; not exported.
pub fn not_a_plugin() -> u32 {
    42
}
