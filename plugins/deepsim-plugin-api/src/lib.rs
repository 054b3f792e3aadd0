//! The C ABI of deepsim similarity plugins.
//!
//! A plugin is a shared library (`.so`, `.dylib`, `.dll`) that exports one symbol,
//! [`ENTRY_SYMBOL`] (`deepsim_plugin_entry`), a function returning a pointer to a static
//! [`DsPluginDescriptor`]. The host (`deepsim`) loads the library with `dlopen`, reads the
//! descriptor's first two fields — the ABI version and the descriptor's size — checks them, and
//! from then on only calls the descriptor's functions:
//!
//! ```text
//! create(options) → instance            one instance per worker thread, options parsed by the plugin
//!   prepare(instance, level)            once per image pair and pyramid level, per instance
//!     compute(instance, block) …        many times: a block of rows and each pixel's interval
//!   last_error(instance)                after a failed call: what went wrong
//! destroy(instance)                     when the host is done with the instance
//! ```
//!
//! Why it is built this way (tree-sitter, abi_stable and stabby do the same):
//! - only `#[repr(C)]` types and `extern "C"` functions cross the boundary, so a plugin may be
//!   written in any language (C header: `include/deepsim_plugin.h`) and compiled by any Rust
//!   version;
//! - the descriptor starts with its ABI version and size and only ever grows at its end, so a host
//!   can accept a range of versions and read only the fields a plugin declares;
//! - every buffer is owned by the host and borrowed for the duration of one call; the plugin
//!   never frees host memory and the host never frees plugin memory (except through `destroy`);
//! - an instance is used by one thread at a time, so a plugin needs no locking (a network runtime
//!   session per worker, as ONNX Runtime wants);
//! - Rust plugins made with [`export_plugin!`] turn every panic into [`DS_PANIC`]: a panic never
//!   unwinds into the host (which would abort it);
//! - the host never unloads a plugin library (unloading Rust libraries that use thread-locals is
//!   unsound), so static data of the plugin, the descriptor included, lives for the whole process.
//!
//! The disparity convention: **left pixel `(x, y)` matches right pixel `(x − d, y)`**.
//!
//! Everything in this crate's root is `#[repr(C)]` and mirrored by the C header; the [`rust`]
//! module holds the safe Rust side used by [`export_plugin!`] (nothing of it crosses the ABI).
#![deny(missing_docs)]

use std::ffi::{c_char, c_void};

pub mod rust;

#[doc(hidden)]
pub use rust::ffi as __ffi;

/// The ABI version this crate describes. Version 1 is the first.
pub const ABI_VERSION: u32 = 1;

/// The name of the function every plugin exports:
/// `extern "C" fn deepsim_plugin_entry() -> *const DsPluginDescriptor`.
pub const ENTRY_SYMBOL: &str = "deepsim_plugin_entry";

/// The integer cost that stands for a real cost of 1.0 (the worst match); a perfect match is 0.
/// Costs are `round(c · DS_COST_ONE)` for a real cost `c` in [0, 1], e.g. `(1 − ncc) / 2` or a
/// normalised Hamming distance. The host clamps larger values to `DS_COST_ONE`.
pub const DS_COST_ONE: u16 = 1024;

/// Status returned by the plugin's functions: [`DS_OK`] or one of the error codes.
pub type DsStatus = i32;
/// Success.
pub const DS_OK: DsStatus = 0;
/// The call failed; `last_error` says why. The instance stays usable.
pub const DS_ERROR: DsStatus = 1;
/// The plugin panicked (or hit a comparable internal failure); `last_error` carries the panic
/// message. The host destroys the instance and never uses it again.
pub const DS_PANIC: DsStatus = 2;
/// The arguments broke the contract (e.g. `costs_len` is not the sum of `count`).
pub const DS_INVALID_ARGUMENT: DsStatus = 3;

/// One image of a pair at one pyramid level, borrowed from the host for the duration of one
/// `prepare` call. The plugin copies what it needs; the pointers are invalid after the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DsImage {
    /// `height` rows of `stride` values each (the first `width` are pixels); grey values in
    /// [0, 1]. Invalid pixels hold finite values without meaning.
    pub data: *const f32,
    /// The same layout as `data`: 1 = valid pixel, 0 = invalid (nodata, outside the mask).
    pub valid: *const u8,
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Values between the starts of two consecutive rows (≥ `width`).
    pub stride: usize,
}

/// An image pair at one pyramid level, as given to `prepare`. Both images have the same height;
/// their widths may differ. Borrowed for the duration of the call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DsLevel {
    /// The left (reference) image: disparities are computed for its pixels.
    pub left: DsImage,
    /// The right image.
    pub right: DsImage,
}

/// A block of consecutive rows of the left image, each pixel with its own disparity interval,
/// and the buffer its costs go to. Borrowed for the duration of one `compute` call.
///
/// Pixel `(x, y0 + r)` is the `p = r · width + x`-th pixel of the block. It searches the
/// disparities `d_min[p] ..< d_min[p] + count[p]`. Its costs start at
/// `offset(p) = count[0] + … + count[p − 1]`: the cost of disparity `d_min[p] + k` goes to
/// `costs[offset(p) + k]` (pixel-major, each pixel's candidates ascending).
/// `costs_len == count[0] + … + count[rows · width − 1]`.
///
/// Candidates whose right pixel `x − d` falls outside the right image may be given any value
/// (the host overwrites them, as it does for invalid pixels of either image).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DsBlock {
    /// The first row of the block (in the level's pixels).
    pub y0: usize,
    /// Number of rows.
    pub rows: usize,
    /// Pixels per row: the left image's width at this level.
    pub width: usize,
    /// `rows · width` values: the smallest disparity of each pixel, row-major. Read only.
    pub d_min: *const i32,
    /// `rows · width` values: the number of candidate disparities of each pixel (≥ 1). Read only.
    pub count: *const u32,
    /// `costs_len` values, written by the plugin (every entry, in [0, `DS_COST_ONE`]).
    pub costs: *mut u16,
    /// The number of entries of `costs`.
    pub costs_len: usize,
}

/// `create(options, instance)`: parses `options` (a NUL-terminated UTF-8 string, possibly empty,
/// borrowed for the call) and on success writes a new instance to `*instance` and returns
/// [`DS_OK`]. On failure returns an error status; `last_error(NULL)` then gives the message on
/// the same thread. May be called concurrently from several threads.
pub type DsCreateFn = unsafe extern "C" fn(options: *const c_char, instance: *mut *mut c_void) -> DsStatus;

/// `prepare(instance, level)`: binds the instance to an image pair at one pyramid level
/// (transforms, features…), replacing any previous pair. `level` and its buffers are borrowed
/// for the call.
pub type DsPrepareFn = unsafe extern "C" fn(instance: *mut c_void, level: *const DsLevel) -> DsStatus;

/// `compute(instance, block)`: writes the costs of `block` for the pair of the last successful
/// `prepare`. `block` and its buffers are borrowed for the call.
pub type DsComputeFn = unsafe extern "C" fn(instance: *mut c_void, block: *const DsBlock) -> DsStatus;

/// `last_error(instance)`: the message of the last failed call on `instance` (or, with a NULL
/// instance, of the last failed `create` on the calling thread), NUL-terminated UTF-8, owned by
/// the plugin and valid until the next call on that instance (or thread). NULL if none.
pub type DsLastErrorFn = unsafe extern "C" fn(instance: *const c_void) -> *const c_char;

/// `destroy(instance)`: releases an instance created by `create`. Called exactly once per
/// instance; the instance is not used afterwards.
pub type DsDestroyFn = unsafe extern "C" fn(instance: *mut c_void);

/// The descriptor a plugin's entry function returns: static data of the plugin, never freed.
///
/// Grown append-only: a later ABI version only adds fields at the end, so `abi_version` and
/// `size` are always the first two fields, at offsets 0 and 4.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DsPluginDescriptor {
    /// The ABI version the plugin was built against ([`ABI_VERSION`]).
    pub abi_version: u32,
    /// `sizeof(DsPluginDescriptor)` as the plugin knows it.
    pub size: u32,
    /// A short name for reports ("zncc"), NUL-terminated UTF-8, static.
    pub name: *const c_char,
    /// See [`DsCreateFn`].
    pub create: Option<DsCreateFn>,
    /// See [`DsPrepareFn`].
    pub prepare: Option<DsPrepareFn>,
    /// See [`DsComputeFn`].
    pub compute: Option<DsComputeFn>,
    /// See [`DsLastErrorFn`].
    pub last_error: Option<DsLastErrorFn>,
    /// See [`DsDestroyFn`].
    pub destroy: Option<DsDestroyFn>,
}

// SAFETY: the descriptor is immutable static data (a pointer to a static string and function
// pointers); sharing it between threads cannot race.
unsafe impl Sync for DsPluginDescriptor {}

/// The type of the entry function ([`ENTRY_SYMBOL`]).
pub type DsEntryFn = unsafe extern "C" fn() -> *const DsPluginDescriptor;
