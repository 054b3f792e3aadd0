//! Writing a plugin in Rust: implement [`Plugin`], then `deepsim_plugin_api::export_plugin!(T);`.
//!
//! The macro exports the entry symbol and a static descriptor whose functions wrap the trait's
//! methods: pointers are checked and turned into the safe views [`Level`] and [`Block`], errors
//! become [`DS_ERROR`](crate::DS_ERROR) with their message kept for `last_error`, and a panic is
//! caught and becomes [`DS_PANIC`](crate::DS_PANIC) — it never unwinds into the host. Build the
//! crate as a `cdylib` with the default `panic = "unwind"` (with `panic = "abort"` no panic can
//! be caught and a panic aborts the host).
//!
//! ```ignore
//! use deepsim_plugin_api::rust::{Block, Level, Plugin};
//! use std::ffi::CStr;
//!
//! struct AbsDiff { left: Vec<f32>, right: Vec<f32>, wl: usize, wr: usize }
//!
//! impl Plugin for AbsDiff {
//!     const NAME: &'static CStr = c"absdiff";
//!     fn create(_options: &str) -> Result<Self, String> {
//!         Ok(AbsDiff { left: vec![], right: vec![], wl: 0, wr: 0 })
//!     }
//!     fn prepare(&mut self, level: &Level<'_>) -> Result<(), String> {
//!         (self.left, self.wl) = (level.left.to_vec(), level.left.width());
//!         (self.right, self.wr) = (level.right.to_vec(), level.right.width());
//!         Ok(())
//!     }
//!     fn compute(&mut self, block: &mut Block<'_>) -> Result<(), String> {
//!         for px in block.pixels() {
//!             for (k, c) in px.costs.iter_mut().enumerate() {
//!                 let xr = px.x as i64 - (px.d_min as i64 + k as i64);
//!                 *c = if (0..self.wr as i64).contains(&xr) {
//!                     let diff = self.left[px.y * self.wl + px.x] - self.right[px.y * self.wr + xr as usize];
//!                     deepsim_plugin_api::rust::cost_from_unit(diff.abs())
//!                 } else {
//!                     deepsim_plugin_api::DS_COST_ONE
//!                 };
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! deepsim_plugin_api::export_plugin!(AbsDiff);
//! ```

use crate::{DsBlock, DsImage, DsLevel, DS_COST_ONE};
use std::ffi::CStr;

/// A similarity measure exported as a plugin. One value is one instance: the host creates one
/// per worker thread and uses each from one thread at a time, hence `Send` but not `Sync`.
pub trait Plugin: Send + Sized + 'static {
    /// A short name for reports ("zncc").
    const NAME: &'static CStr;

    /// Parses the options string (empty when the user gives none) and builds an instance.
    /// Return a message naming the offending option and the valid choices.
    fn create(options: &str) -> Result<Self, String>;

    /// Binds the instance to an image pair at one pyramid level. The views are valid for this
    /// call only: copy or transform what `compute` needs.
    fn prepare(&mut self, level: &Level<'_>) -> Result<(), String>;

    /// Writes every cost of `block` (see [`Block::pixels`]).
    fn compute(&mut self, block: &mut Block<'_>) -> Result<(), String>;
}

/// Converts a real cost in [0, 1] to the integer scale (clamped; NaN maps to the worst cost),
/// exactly as the engine's built-in measures do.
#[inline]
pub fn cost_from_unit(cost: f32) -> u16 {
    if cost.is_nan() {
        return DS_COST_ONE;
    }
    (cost.clamp(0.0, 1.0) * DS_COST_ONE as f32).round() as u16
}

/// A borrowed image (see [`DsImage`]).
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    data: &'a [f32],
    valid: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
}

impl<'a> Image<'a> {
    /// Checks `raw` and views it.
    ///
    /// # Safety
    /// `raw.data` and `raw.valid` must point to `(height − 1) · stride + width` readable values
    /// that stay unchanged for `'a`.
    pub unsafe fn from_raw(raw: &DsImage) -> Result<Self, String> {
        if raw.stride < raw.width {
            return Err(format!("image stride {} is smaller than its width {}", raw.stride, raw.width));
        }
        let len = if raw.height == 0 || raw.width == 0 { 0 } else { (raw.height - 1) * raw.stride + raw.width };
        if len > 0 && (raw.data.is_null() || raw.valid.is_null()) {
            return Err("image data or validity pointer is NULL".into());
        }
        let (data, valid) = if len == 0 {
            (&[][..], &[][..])
        } else {
            // SAFETY: non-null, `len` values readable for 'a (the caller's contract).
            unsafe { (std::slice::from_raw_parts(raw.data, len), std::slice::from_raw_parts(raw.valid, len)) }
        };
        Ok(Image { data, valid, width: raw.width, height: raw.height, stride: raw.stride })
    }

    /// Pixels per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Row `y`'s grey values (`width` values in [0, 1]).
    pub fn row(&self, y: usize) -> &'a [f32] {
        &self.data[y * self.stride..y * self.stride + self.width]
    }

    /// Row `y`'s validity (1 = valid).
    pub fn valid_row(&self, y: usize) -> &'a [u8] {
        &self.valid[y * self.stride..y * self.stride + self.width]
    }

    /// The grey value at `(x, y)`.
    pub fn get(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.stride + x]
    }

    /// Whether `(x, y)` is valid.
    pub fn is_valid(&self, x: usize, y: usize) -> bool {
        self.valid[y * self.stride + x] != 0
    }

    /// A row-major copy of the grey values (`width · height`, no padding).
    pub fn to_vec(&self) -> Vec<f32> {
        (0..self.height).flat_map(|y| self.row(y).iter().copied()).collect()
    }
}

/// A borrowed image pair at one pyramid level (see [`DsLevel`]).
#[derive(Debug, Clone, Copy)]
pub struct Level<'a> {
    /// The left (reference) image.
    pub left: Image<'a>,
    /// The right image.
    pub right: Image<'a>,
}

impl Level<'_> {
    /// Checks `raw` and views it.
    ///
    /// # Safety
    /// As [`Image::from_raw`] for both images.
    pub unsafe fn from_raw(raw: &DsLevel) -> Result<Self, String> {
        // SAFETY: forwarded from the caller.
        let (left, right) = unsafe { (Image::from_raw(&raw.left)?, Image::from_raw(&raw.right)?) };
        if left.height != right.height {
            return Err(format!("left and right heights differ ({} and {})", left.height, right.height));
        }
        Ok(Level { left, right })
    }
}

/// A borrowed block of rows with per-pixel intervals and the costs to write (see [`DsBlock`]).
#[derive(Debug)]
pub struct Block<'a> {
    y0: usize,
    rows: usize,
    width: usize,
    d_min: &'a [i32],
    count: &'a [u32],
    costs: &'a mut [u16],
}

impl<'a> Block<'a> {
    /// Checks `raw` (lengths, `costs_len` = Σ `count`) and views it.
    ///
    /// # Safety
    /// `raw.d_min` and `raw.count` must point to `rows · width` readable values and `raw.costs`
    /// to `costs_len` writable values, not aliased by anything else for `'a`.
    pub unsafe fn from_raw(raw: &DsBlock) -> Result<Self, String> {
        let n = raw.rows.checked_mul(raw.width).ok_or("block size overflows")?;
        if n > 0 && (raw.d_min.is_null() || raw.count.is_null()) {
            return Err("block d_min or count pointer is NULL".into());
        }
        if raw.costs_len > 0 && raw.costs.is_null() {
            return Err("block costs pointer is NULL".into());
        }
        let (d_min, count) = if n == 0 {
            (&[][..], &[][..])
        } else {
            // SAFETY: non-null, `n` values readable for 'a (the caller's contract).
            unsafe { (std::slice::from_raw_parts(raw.d_min, n), std::slice::from_raw_parts(raw.count, n)) }
        };
        let total: usize = count.iter().map(|&c| c as usize).sum();
        if total != raw.costs_len {
            return Err(format!("block costs_len {} differs from the sum of its counts {total}", raw.costs_len));
        }
        let costs = if raw.costs_len == 0 {
            &mut [][..]
        } else {
            // SAFETY: non-null, `costs_len` values writable and unaliased for 'a (the caller's contract).
            unsafe { std::slice::from_raw_parts_mut(raw.costs, raw.costs_len) }
        };
        Ok(Block { y0: raw.y0, rows: raw.rows, width: raw.width, d_min, count, costs })
    }

    /// The first row.
    pub fn y0(&self) -> usize {
        self.y0
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Pixels per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Every pixel of the block, row by row, with its interval and its slice of costs.
    pub fn pixels(&mut self) -> Pixels<'_> {
        Pixels { block_y0: self.y0, width: self.width, d_min: self.d_min, count: self.count, costs: &mut *self.costs, p: 0 }
    }
}

/// One pixel of a [`Block`]: costs of disparities `d_min, d_min + 1, …, d_min + costs.len() − 1`.
#[derive(Debug)]
pub struct Pixel<'b> {
    /// Column.
    pub x: usize,
    /// Row (level pixels, not relative to the block).
    pub y: usize,
    /// The first disparity: `costs[k]` is the cost of left `(x, y)` against right `(x − d_min − k, y)`.
    pub d_min: i32,
    /// The pixel's costs, to be written.
    pub costs: &'b mut [u16],
}

/// Iterator over the pixels of a [`Block`].
#[derive(Debug)]
pub struct Pixels<'b> {
    block_y0: usize,
    width: usize,
    d_min: &'b [i32],
    count: &'b [u32],
    costs: &'b mut [u16],
    p: usize,
}

impl<'b> Iterator for Pixels<'b> {
    type Item = Pixel<'b>;

    fn next(&mut self) -> Option<Pixel<'b>> {
        let p = self.p;
        let n = *self.count.get(p)? as usize;
        let (head, tail) = std::mem::take(&mut self.costs).split_at_mut(n);
        self.costs = tail;
        self.p += 1;
        Some(Pixel { x: p % self.width, y: self.block_y0 + p / self.width, d_min: self.d_min[p], costs: head })
    }
}

/// The functions the [`export_plugin!`](crate::export_plugin) descriptor points to.
pub mod ffi {
    use super::{Block, Level, Plugin};
    use crate::{DsBlock, DsLevel, DsStatus, DS_ERROR, DS_INVALID_ARGUMENT, DS_OK, DS_PANIC};
    use std::cell::RefCell;
    use std::ffi::{c_char, c_void, CStr, CString};
    use std::panic::{catch_unwind, AssertUnwindSafe};

    thread_local! {
        /// The message of the last failed `create` on this thread.
        static CREATE_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
    }

    /// An instance as the host holds it: the plugin and its last error.
    struct Instance<T> {
        plugin: T,
        error: Option<CString>,
    }

    fn message(text: String) -> CString {
        CString::new(text.replace('\0', "\\0")).expect("NULs replaced")
    }

    fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "(a panic without a message)".to_string()
        }
    }

    /// Runs `f`, turning a panic into `(DS_PANIC, message)`.
    fn guarded(f: impl FnOnce() -> Result<(), (DsStatus, String)>) -> Result<(), (DsStatus, String)> {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(result) => result,
            Err(payload) => {
                let text = panic_text(payload.as_ref());
                // Dropping the payload may itself panic; that must not unwind into the host either.
                let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                Err((DS_PANIC, text))
            }
        }
    }

    fn failed(message: String) -> (DsStatus, String) {
        (DS_ERROR, message)
    }

    fn invalid(message: String) -> (DsStatus, String) {
        (DS_INVALID_ARGUMENT, message)
    }

    /// Stores the outcome of a call in the instance, returns its status.
    fn finish(error: &mut Option<CString>, result: Result<(), (DsStatus, String)>) -> DsStatus {
        match result {
            Ok(()) => DS_OK,
            Err((status, text)) => {
                *error = Some(message(text));
                status
            }
        }
    }

    /// `create` of [`DsCreateFn`](crate::DsCreateFn).
    ///
    /// # Safety
    /// As documented on [`DsCreateFn`](crate::DsCreateFn).
    pub unsafe extern "C" fn create<T: Plugin>(options: *const c_char, instance: *mut *mut c_void) -> DsStatus {
        let result = guarded(|| {
            if instance.is_null() {
                return Err(invalid("create: the instance pointer is NULL".into()));
            }
            let options = if options.is_null() {
                ""
            } else {
                // SAFETY: a NUL-terminated string borrowed for the call (the ABI contract).
                unsafe { CStr::from_ptr(options) }
                    .to_str()
                    .map_err(|e| invalid(format!("the options are not UTF-8: {e}")))?
            };
            let plugin = T::create(options).map_err(failed)?;
            let boxed = Box::new(Instance { plugin, error: None });
            // SAFETY: `instance` is non-null and writable (the ABI contract).
            unsafe { *instance = Box::into_raw(boxed).cast() };
            Ok(())
        });
        match result {
            Ok(()) => DS_OK,
            Err((status, text)) => {
                let _ = CREATE_ERROR.try_with(|e| *e.borrow_mut() = Some(message(text)));
                status
            }
        }
    }

    /// `prepare` of [`DsPrepareFn`](crate::DsPrepareFn).
    ///
    /// # Safety
    /// As documented on [`DsPrepareFn`](crate::DsPrepareFn); `instance` comes from [`create`]`::<T>`.
    pub unsafe extern "C" fn prepare<T: Plugin>(instance: *mut c_void, level: *const DsLevel) -> DsStatus {
        if instance.is_null() {
            return DS_INVALID_ARGUMENT;
        }
        // SAFETY: a live instance made by `create::<T>`, used by one thread at a time.
        let instance = unsafe { &mut *instance.cast::<Instance<T>>() };
        let plugin = &mut instance.plugin;
        let result = guarded(|| {
            if level.is_null() {
                return Err(invalid("prepare: the level pointer is NULL".into()));
            }
            // SAFETY: `level` and its buffers are valid for this call (the ABI contract).
            let level = unsafe { Level::from_raw(&*level) }.map_err(invalid)?;
            plugin.prepare(&level).map_err(failed)
        });
        finish(&mut instance.error, result)
    }

    /// `compute` of [`DsComputeFn`](crate::DsComputeFn).
    ///
    /// # Safety
    /// As documented on [`DsComputeFn`](crate::DsComputeFn); `instance` comes from [`create`]`::<T>`.
    pub unsafe extern "C" fn compute<T: Plugin>(instance: *mut c_void, block: *const DsBlock) -> DsStatus {
        if instance.is_null() {
            return DS_INVALID_ARGUMENT;
        }
        // SAFETY: a live instance made by `create::<T>`, used by one thread at a time.
        let instance = unsafe { &mut *instance.cast::<Instance<T>>() };
        let plugin = &mut instance.plugin;
        let result = guarded(|| {
            if block.is_null() {
                return Err(invalid("compute: the block pointer is NULL".into()));
            }
            // SAFETY: `block` and its buffers are valid and unaliased for this call (the ABI contract).
            let mut block = unsafe { Block::from_raw(&*block) }.map_err(invalid)?;
            plugin.compute(&mut block).map_err(failed)
        });
        finish(&mut instance.error, result)
    }

    /// `last_error` of [`DsLastErrorFn`](crate::DsLastErrorFn).
    ///
    /// # Safety
    /// `instance` is NULL or comes from [`create`]`::<T>` and is not used concurrently.
    pub unsafe extern "C" fn last_error<T: Plugin>(instance: *const c_void) -> *const c_char {
        if instance.is_null() {
            return CREATE_ERROR
                .try_with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |s| s.as_ptr()))
                .unwrap_or(std::ptr::null());
        }
        // SAFETY: a live instance made by `create::<T>`.
        let instance = unsafe { &*instance.cast::<Instance<T>>() };
        instance.error.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
    }

    /// `destroy` of [`DsDestroyFn`](crate::DsDestroyFn).
    ///
    /// # Safety
    /// `instance` comes from [`create`]`::<T>` and is not used afterwards.
    pub unsafe extern "C" fn destroy<T: Plugin>(instance: *mut c_void) {
        if instance.is_null() {
            return;
        }
        // SAFETY: made by `Box::into_raw` in `create::<T>`, destroyed once (the ABI contract).
        let boxed = unsafe { Box::from_raw(instance.cast::<Instance<T>>()) };
        // A panicking Drop must not unwind into the host; the instance is gone either way.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
    }
}

/// Exports a [`Plugin`] type as a deepsim plugin: defines the entry symbol
/// `deepsim_plugin_entry` and a static descriptor of the current [`ABI_VERSION`](crate::ABI_VERSION).
/// Use it once per `cdylib` crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        $crate::export_plugin!($plugin, abi_version = $crate::ABI_VERSION);
    };
    // For test fixtures: a descriptor claiming another ABI version.
    ($plugin:ty, abi_version = $version:expr) => {
        /// The plugin's entry point: returns its static descriptor.
        #[unsafe(no_mangle)]
        pub extern "C" fn deepsim_plugin_entry() -> *const $crate::DsPluginDescriptor {
            static DESCRIPTOR: $crate::DsPluginDescriptor = $crate::DsPluginDescriptor {
                abi_version: $version,
                size: ::core::mem::size_of::<$crate::DsPluginDescriptor>() as u32,
                name: <$plugin as $crate::rust::Plugin>::NAME.as_ptr(),
                create: Some($crate::__ffi::create::<$plugin>),
                prepare: Some($crate::__ffi::prepare::<$plugin>),
                compute: Some($crate::__ffi::compute::<$plugin>),
                last_error: Some($crate::__ffi::last_error::<$plugin>),
                destroy: Some($crate::__ffi::destroy::<$plugin>),
            };
            &DESCRIPTOR
        }
    };
}
