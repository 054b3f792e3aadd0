//! A plugin as a similarity backend: a pool of instances, one lent to each worker per call.

use super::loader::PluginLibrary;
use crate::cost::{Intervals, COST_ONE};
use crate::error::{Error, ErrorKind, Result};
use crate::similarity::{LevelPair, PairCosts, Similarity};
use deepsim_plugin_api::{DsBlock, DsImage, DsLevel, DsStatus, DS_ERROR, DS_INVALID_ARGUMENT, DS_OK, DS_PANIC};
use ndarray::{CowArray, Ix2};
use std::ffi::{c_void, CString};
use std::ops::Range;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// A similarity measure computed by a run-time plugin.
pub struct PluginSimilarity {
    library: &'static PluginLibrary,
    options: CString,
    /// Instances not lent out; at most one per worker thread is ever created.
    idle: Mutex<Vec<Instance>>,
    /// Incremented by each `prepare`: an instance prepared for an older value is prepared again.
    generation: AtomicU64,
    /// Instances created so far (including any discarded after a panic).
    created: AtomicUsize,
}

impl std::fmt::Debug for PluginSimilarity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSimilarity").field("library", self.library).field("options", &self.options).finish_non_exhaustive()
    }
}

/// One plugin instance, owned by the host; destroyed when dropped.
struct Instance {
    handle: NonNull<c_void>,
    library: &'static PluginLibrary,
    /// The generation it was last prepared for (0 = never).
    prepared: u64,
}

// SAFETY: the ABI lets an instance move between threads as long as one thread uses it at a time;
// the pool hands each instance to one worker at a time.
unsafe impl Send for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: a live instance of this library, destroyed exactly once, here.
        unsafe { (self.library.destroy)(self.handle.as_ptr()) }
    }
}

/// What failed calls become: the plugin's message with the call and the status.
fn call_error(library: &PluginLibrary, call: &str, status: DsStatus, message: String, kind: ErrorKind) -> Error {
    let what = match status {
        DS_ERROR => format!("{call} failed: {message}"),
        DS_PANIC => format!("{call} panicked: {message} (the instance was discarded; deepsim carries on)"),
        DS_INVALID_ARGUMENT => format!("{call} rejected its arguments: {message} (a bug in deepsim or in the plugin)"),
        other => format!("{call} returned the unknown status {other}: {message}"),
    };
    Error::new(kind, format!("plugin {} ({}): {what}", library.name(), library.path().display()))
}

impl PluginSimilarity {
    /// Loads the plugin at `path` and creates a first instance with `options` (so that bad
    /// options are reported before any computation).
    pub fn new(path: &Path, options: &str) -> Result<Self> {
        let library = PluginLibrary::load(path)?;
        let options = CString::new(options).map_err(|_| {
            Error::invalid_parameter(format!("plugin options for {}: contain a NUL character", path.display()))
        })?;
        let similarity = PluginSimilarity { library, options, idle: Mutex::new(Vec::new()), generation: AtomicU64::new(0), created: AtomicUsize::new(0) };
        let first = similarity.create()?;
        similarity.give_back(first);
        Ok(similarity)
    }

    /// The loaded library.
    pub fn library(&self) -> &'static PluginLibrary {
        self.library
    }

    /// The options given to every instance.
    pub fn options(&self) -> &str {
        self.options.to_str().unwrap_or_default()
    }

    /// How many instances have been created so far: at most one per worker thread (and the
    /// first one, made on the calling thread), plus one for each instance discarded after a panic.
    pub fn instances_created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    fn create(&self) -> Result<Instance> {
        let mut handle = std::ptr::null_mut();
        // SAFETY: `options` is a NUL-terminated string alive for the call; `handle` is writable.
        let status = unsafe { (self.library.create)(self.options.as_ptr(), &mut handle) };
        if status != DS_OK {
            let message = self.library.last_error(std::ptr::null());
            return Err(call_error(self.library, "create", status, message, ErrorKind::Plugin));
        }
        let handle = NonNull::new(handle).ok_or_else(|| {
            call_error(self.library, "create", DS_INVALID_ARGUMENT, "returned DS_OK without an instance".into(), ErrorKind::Plugin)
        })?;
        self.created.fetch_add(1, Ordering::Relaxed);
        Ok(Instance { handle, library: self.library, prepared: 0 })
    }

    /// An idle instance, or a new one when every instance is lent out.
    fn take(&self) -> Result<Instance> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(instance) => Ok(instance),
            None => self.create(),
        }
    }

    fn give_back(&self, instance: Instance) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(instance);
    }

    /// Returns a failed call's error; keeps the instance unless it panicked.
    fn fail(&self, instance: Instance, call: &str, status: DsStatus) -> Error {
        let message = self.library.last_error(instance.handle.as_ptr());
        if status != DS_PANIC {
            self.give_back(instance);
        }
        call_error(self.library, call, status, message, ErrorKind::Backend)
    }

    /// Makes sure `instance` is prepared for `pair` (generation `generation`).
    fn ensure_prepared(&self, mut instance: Instance, pair: &PluginPair<'_>) -> Result<Instance> {
        if instance.prepared == pair.generation {
            return Ok(instance);
        }
        let level = pair.level();
        // SAFETY: a live instance used by this thread only; `level` and the buffers it points to
        // (owned by `pair`) outlive the call.
        let status = unsafe { (self.library.prepare)(instance.handle.as_ptr(), &level) };
        if status != DS_OK {
            return Err(self.fail(instance, "prepare", status));
        }
        instance.prepared = pair.generation;
        Ok(instance)
    }
}

impl Similarity for PluginSimilarity {
    fn name(&self) -> String {
        match self.options() {
            "" => format!("plugin {}", self.library.name()),
            options => format!("plugin {} ({options})", self.library.name()),
        }
    }

    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> Result<Box<dyn PairCosts + 'a>> {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let prepared = PluginPair {
            similarity: self,
            generation,
            left: pair.left.as_standard_layout(),
            right: pair.right.as_standard_layout(),
            left_valid: pair.left_valid.as_standard_layout(),
            right_valid: pair.right_valid.as_standard_layout(),
        };
        // Prepare one instance now: errors show up before the cost volume is filled.
        let instance = self.ensure_prepared(self.take()?, &prepared)?;
        self.give_back(instance);
        Ok(Box::new(prepared))
    }
}

/// An image pair bound to a plugin; the images stay here, borrowed by each `prepare` call.
struct PluginPair<'a> {
    similarity: &'a PluginSimilarity,
    generation: u64,
    left: CowArray<'a, f32, Ix2>,
    right: CowArray<'a, f32, Ix2>,
    left_valid: CowArray<'a, bool, Ix2>,
    right_valid: CowArray<'a, bool, Ix2>,
}

fn image(data: &CowArray<'_, f32, Ix2>, valid: &CowArray<'_, bool, Ix2>) -> DsImage {
    let (height, width) = data.dim();
    DsImage {
        data: data.as_ptr(),
        // `bool` is one byte holding 0 or 1: the ABI's validity bytes, without a copy.
        valid: valid.as_ptr().cast::<u8>(),
        width,
        height,
        stride: width,
    }
}

impl PluginPair<'_> {
    fn level(&self) -> DsLevel {
        DsLevel { left: image(&self.left, &self.left_valid), right: image(&self.right, &self.right_valid) }
    }
}

impl PairCosts for PluginPair<'_> {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        let width = intervals.width();
        if rows.is_empty() {
            return Ok(());
        }
        let entries = intervals.row_entries(rows.start).start..intervals.row_entries(rows.end - 1).end;
        if out.len() != entries.len() || width != self.left.ncols() || rows.end > self.left.nrows() {
            return Err(Error::invalid_input(format!(
                "plugin {}: rows {}..{} of a {}-wide grid with {} cost entries do not fit the prepared {}×{} pair",
                self.similarity.library.name(),
                rows.start,
                rows.end,
                width,
                out.len(),
                self.left.ncols(),
                self.left.nrows()
            )));
        }
        let sim = self.similarity;
        let instance = sim.ensure_prepared(sim.take()?, self)?;
        let pixels = rows.start * width..rows.end * width;
        let block = DsBlock {
            y0: rows.start,
            rows: rows.len(),
            width,
            d_min: intervals.d_mins()[pixels.clone()].as_ptr(),
            count: intervals.lens()[pixels].as_ptr(),
            costs: out.as_mut_ptr(),
            costs_len: out.len(),
        };
        // SAFETY: a live instance used by this thread only; the block's arrays hold `rows · width`
        // values (d_min, count) and `costs_len` = Σ count values (costs, exclusively borrowed),
        // all alive for the call.
        let status = unsafe { (sim.library.compute)(instance.handle.as_ptr(), &block) };
        if status != DS_OK {
            return Err(sim.fail(instance, "compute", status));
        }
        sim.give_back(instance);
        for c in out.iter_mut() {
            *c = (*c).min(COST_ONE);
        }
        Ok(())
    }
}

