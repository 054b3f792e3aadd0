//! Write-then-rename: outputs appear under their final names only once complete.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A file being written under a temporary name next to its final path.
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
}

impl AtomicFile {
    /// Prepares writing `target`; the data goes to `target` + `.partial` until [`commit`](Self::commit).
    pub fn new(target: &Path) -> Self {
        let mut tmp = target.as_os_str().to_owned();
        tmp.push(".partial");
        AtomicFile { tmp: PathBuf::from(tmp), target: target.to_path_buf() }
    }

    /// The temporary path to write to.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the temporary file to its final name.
    pub fn commit(self) -> Result<PathBuf> {
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        Ok(self.target)
    }

    /// Removes the temporary file (ignoring errors: it may not exist yet).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// A group of output files committed together: all are written to temporary names first,
/// then renamed one after the other, so a failure while writing leaves no final name behind.
#[derive(Default)]
pub struct OutputSet {
    pending: Vec<AtomicFile>,
}

impl OutputSet {
    /// An empty set.
    pub fn new() -> Self {
        OutputSet::default()
    }

    /// Writes one member with `write` (called with the temporary path).
    pub fn write(&mut self, target: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let file = AtomicFile::new(target);
        match write(file.tmp_path()) {
            Ok(()) => {
                self.pending.push(file);
                Ok(())
            }
            Err(e) => {
                file.discard();
                self.discard();
                Err(e)
            }
        }
    }

    /// Adds a member already written to its temporary path (by [`AtomicFile::tmp_path`]).
    pub fn add(&mut self, file: AtomicFile) {
        self.pending.push(file);
    }

    /// Renames every member to its final name.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        let pending = std::mem::take(&mut self.pending);
        pending.into_iter().map(AtomicFile::commit).collect()
    }

    /// Deletes every pending temporary file.
    pub fn discard(&mut self) {
        for file in self.pending.drain(..) {
            file.discard();
        }
    }
}

impl Drop for OutputSet {
    fn drop(&mut self) {
        self.discard();
    }
}
