//! Loading a plugin library and checking its descriptor.

use crate::error::{Error, Result};
use deepsim_plugin_api::{
    DsComputeFn, DsCreateFn, DsDestroyFn, DsEntryFn, DsLastErrorFn, DsPluginDescriptor, DsPrepareFn, ENTRY_SYMBOL,
};
use std::collections::HashMap;
use std::ffi::{c_void, CStr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The plugin ABI versions this build accepts.
pub const SUPPORTED_ABI: RangeInclusive<u32> = 1..=deepsim_plugin_api::ABI_VERSION;

/// A loaded, checked plugin library. Lives for the rest of the process (never unloaded).
pub struct PluginLibrary {
    path: PathBuf,
    name: String,
    abi_version: u32,
    pub(super) create: DsCreateFn,
    pub(super) prepare: DsPrepareFn,
    pub(super) compute: DsComputeFn,
    last_error: DsLastErrorFn,
    pub(super) destroy: DsDestroyFn,
    /// Kept so that the library is never closed (this value is leaked, never dropped).
    _library: libloading::Library,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("abi_version", &self.abi_version)
            .finish_non_exhaustive()
    }
}

/// Libraries loaded so far, by canonical path: loading one twice returns the same library.
fn loaded() -> &'static Mutex<HashMap<PathBuf, &'static PluginLibrary>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, &'static PluginLibrary>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

fn versions(range: &RangeInclusive<u32>) -> String {
    if range.start() == range.end() { range.start().to_string() } else { format!("{}–{}", range.start(), range.end()) }
}

impl PluginLibrary {
    /// Loads the plugin library at `path` (once per process; later calls return the same
    /// library) and checks its descriptor. Errors name the path and what is missing or wrong.
    pub fn load(path: &Path) -> Result<&'static PluginLibrary> {
        let canonical = path.canonicalize().map_err(|e| {
            Error::plugin(format!("plugin {}: {e} (give the path of the plugin's shared library, e.g. target/release/libdeepsim_plugin_zncc.so)", path.display()))
        })?;
        let mut loaded = loaded().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(library) = loaded.get(&canonical) {
            return Ok(library);
        }
        let library = Box::leak(Box::new(Self::open(path, &canonical)?));
        loaded.insert(canonical, library);
        Ok(library)
    }

    fn open(path: &Path, canonical: &Path) -> Result<PluginLibrary> {
        let shown = path.display();
        // SAFETY: loading a library runs its initialisers; a plugin is code the user chose to
        // run with deepsim's rights, as is the model runtime library.
        let library = unsafe { libloading::Library::new(canonical) }
            .map_err(|e| Error::plugin(format!("cannot load plugin {shown}: {}", with_source(&e))))?;
        let entry: DsEntryFn = {
            // SAFETY: the symbol's type is fixed by the ABI (deepsim_plugin.h: DsEntryFn).
            let symbol = unsafe { library.get::<DsEntryFn>(ENTRY_SYMBOL.as_bytes()) }.map_err(|e| {
                Error::plugin(format!(
                    "plugin {shown}: missing symbol '{ENTRY_SYMBOL}', so this is not a deepsim plugin (a Rust plugin \
                     uses deepsim_plugin_api::export_plugin!, a C plugin DEEPSIM_PLUGIN_ENTRY of deepsim_plugin.h) ({})",
                    with_source(&e)
                ))
            })?;
            *symbol
        };
        // SAFETY: the entry function takes nothing and returns a pointer to static data.
        let descriptor = unsafe { entry() };
        if descriptor.is_null() {
            return Err(Error::plugin(format!("plugin {shown}: {ENTRY_SYMBOL}() returned NULL instead of its descriptor")));
        }
        // SAFETY: every ABI version starts the descriptor with two u32: the version and the size.
        let (abi_version, size) = unsafe { (descriptor.cast::<u32>().read(), descriptor.cast::<u32>().add(1).read()) };
        if !SUPPORTED_ABI.contains(&abi_version) {
            return Err(Error::plugin(format!(
                "plugin {shown} uses plugin ABI {abi_version}; this build of deepsim supports ABI {}: rebuild the plugin \
                 against this deepsim's plugins/deepsim-plugin-api (Rust) or include/deepsim_plugin.h (C)",
                versions(&SUPPORTED_ABI)
            )));
        }
        let needed = std::mem::size_of::<DsPluginDescriptor>();
        if (size as usize) < needed {
            return Err(Error::plugin(format!(
                "plugin {shown}: its descriptor is {size} bytes, ABI {abi_version} needs at least {needed}: the plugin \
                 was built against a broken or foreign header"
            )));
        }
        // SAFETY: the plugin declares an ABI we support and a descriptor at least as large as ours.
        let d = unsafe { descriptor.read() };
        let missing = |what: &str| Error::plugin(format!("plugin {shown}: its descriptor has no '{what}' function (NULL)"));
        let name = if d.name.is_null() {
            canonical.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            // SAFETY: a static NUL-terminated string of the plugin (the ABI contract).
            unsafe { CStr::from_ptr(d.name) }.to_string_lossy().into_owned()
        };
        Ok(PluginLibrary {
            path: path.to_path_buf(),
            name,
            abi_version,
            create: d.create.ok_or_else(|| missing("create"))?,
            prepare: d.prepare.ok_or_else(|| missing("prepare"))?,
            compute: d.compute.ok_or_else(|| missing("compute"))?,
            last_error: d.last_error.ok_or_else(|| missing("last_error"))?,
            destroy: d.destroy.ok_or_else(|| missing("destroy"))?,
            _library: library,
        })
    }

    /// The path it was loaded from (as first given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's own name ("zncc").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ABI version the plugin was built against.
    pub fn abi_version(&self) -> u32 {
        self.abi_version
    }

    /// The plugin's message for the last failure on `instance` (NULL: of `create` on this thread).
    pub(super) fn last_error(&self, instance: *const c_void) -> String {
        // SAFETY: `instance` is NULL or a live instance of this plugin used by this thread only.
        let text = unsafe { (self.last_error)(instance) };
        if text.is_null() {
            return "(the plugin gave no message)".to_string();
        }
        // SAFETY: a NUL-terminated string owned by the plugin, valid until the next call.
        unsafe { CStr::from_ptr(text) }.to_string_lossy().into_owned()
    }
}

/// A loader error with its causes: libloading's own message is only "dlopen failed", and the
/// reason (dlerror's text: file not found, wrong ELF class, undefined symbol) is its source.
fn with_source(e: &libloading::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
