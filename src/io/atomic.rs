//! Write-then-rename, and the rules that keep every write inside the output folder.
//!
//! Outputs appear under their final names only once complete: each is written to a temporary
//! file in the same folder, renamed over its final name on success, removed on failure (also
//! when the writer panics or returns early: the temporary is deleted when dropped).
//!
//! Temporaries are created by [`tempfile`]: a unique random name (`.disparity.tif.Xy7…partial`)
//! opened with `O_CREAT | O_EXCL`, which never follows a symbolic link and never opens a file
//! someone else created. Two runs writing into one folder therefore never share a temporary,
//! and a link planted at a temporary name cannot redirect a write out of the folder. Writers
//! that reopen a temporary by its path use [`create_file`] (`O_NOFOLLOW`): if the temporary was
//! swapped for a link in between, the open fails instead of following it. The final rename
//! replaces a link at the final name by the file; it never writes through it.

use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempPath;

/// Opens `path` for writing (created if needed, truncated), refusing to follow a symbolic link
/// at `path`: the open fails with an error naming it. Every output writer opens files through
/// this.
pub fn create_file(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                Error::io(
                    path,
                    std::io::Error::other("is a symbolic link; deepsim does not write through links: remove it"),
                )
            } else {
                Error::io(path, e)
            }
        })
}

/// A file being written under a unique temporary name next to its final path.
pub struct AtomicFile {
    /// Deleted when dropped, unless committed.
    tmp: TempPath,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file for `target` (in `target`'s folder, with `O_EXCL`); the data
    /// goes there until [`commit`](Self::commit).
    pub fn new(target: &Path) -> Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| Error::invalid_input(format!("{}: an output needs a file name", target.display())))?;
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let file = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".partial")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(|e| {
                Error::io(
                    target,
                    std::io::Error::new(
                        e.kind(),
                        format!("cannot create its temporary file in {}: {e}", dir.display()),
                    ),
                )
            })?;
        let (_, tmp) = file.into_parts();
        Ok(AtomicFile { tmp, target: target.to_path_buf() })
    }

    /// The temporary path to write to (with [`create_file`], which refuses links).
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
        // Renamed: nothing left to delete.
        let _ = self.tmp.keep();
        Ok(self.target)
    }

    /// Removes the temporary file.
    pub fn discard(self) {
        drop(self);
    }
}

/// A group of output files committed together: all are written to temporary names first,
/// then renamed one after the other in the order they were added, so a failure while writing
/// leaves no final name behind. The member added last (a run's `run.json`) is renamed last: its
/// presence vouches for the others.
#[derive(Default)]
pub struct OutputSet {
    pending: Vec<AtomicFile>,
}

impl OutputSet {
    /// An empty set.
    pub fn new() -> Self {
        OutputSet::default()
    }

    /// Writes one member with `write` (called with the temporary path, to be opened with
    /// [`create_file`]).
    pub fn write(&mut self, target: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let file = match AtomicFile::new(target) {
            Ok(file) => file,
            Err(e) => {
                self.discard();
                return Err(e);
            }
        };
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

    /// Renames every member to its final name. If a rename fails, the members already renamed
    /// are removed again and the others discarded, so that the set is all or nothing.
    pub fn commit(mut self) -> Result<Vec<PathBuf>> {
        let pending = std::mem::take(&mut self.pending);
        let mut done: Vec<PathBuf> = Vec::with_capacity(pending.len());
        let mut rest = pending.into_iter();
        for file in rest.by_ref() {
            match file.commit() {
                Ok(path) => done.push(path),
                Err(e) => {
                    for path in &done {
                        let _ = std::fs::remove_file(path);
                    }
                    rest.for_each(AtomicFile::discard);
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Deletes every pending temporary file.
    pub fn discard(&mut self) {
        self.pending.clear();
    }
}

/// Whether `a` and `b` name the same existing file (same device and inode: through links,
/// `..`, hard links or bind mounts alike).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(ma), Ok(mb)) => ma.dev() == mb.dev() && ma.ino() == mb.ino(),
        _ => false,
    }
}
