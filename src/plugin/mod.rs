//! Run-time similarity plugins: shared libraries speaking the C ABI of `deepsim-plugin-api`
//! (`plugins/deepsim-plugin-api`, C header `include/deepsim_plugin.h`).
//!
//! [`PluginLibrary::load`] opens a library, checks its descriptor (ABI version within
//! [`SUPPORTED_ABI`], size, every function present) and keeps it loaded for the rest of the
//! process: libraries are never unloaded, because unloading Rust libraries that use thread-locals
//! is unsound and a plugin's static data (its descriptor) must outlive every pointer to it.
//!
//! [`PluginSimilarity`] is a [`Similarity`](crate::similarity::Similarity) like the built-in
//! measures: its costs go through the same masking, regularisation and pyramid. It keeps a pool
//! of plugin instances and lends one to each worker for a `fill_rows` call, so a plugin instance
//! is never used by two threads at once (at most one instance per worker thread exists); an
//! instance is prepared for the current image pair and level the first time a worker gets it.
//!
//! What a plugin receives, who owns it and for how long: see `docs/plugins.md`.

mod loader;
mod similarity;

pub use loader::{PluginLibrary, SUPPORTED_ABI};
pub use similarity::PluginSimilarity;
