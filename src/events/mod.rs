//! The priority event bus: typed events, prioritised handler chains, bounded queues.
//!
//! Pure logic: no `unsafe`, no architecture imports, so every part of it is tested on the host.
//! The bus itself arrives with issue #3; until then arch code handles its vectors directly.
#![forbid(unsafe_code)]
