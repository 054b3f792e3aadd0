//! The integration test suite: one binary, one module per concern.

mod common;
mod suite;
