//! Security policies: hooks in the event chains ahead of `mm` that may deny, never grant.
//!
//! The policy trait and the build-time selection arrive with issue #6.
