//! The output folder of a run: locked for the run's duration, emptied of the previous run's
//! outputs before anything is computed, and checked against the inputs.
//!
//! - **Lock.** A run holds an advisory lock (`flock`) on `.deepsim.lock` in the folder; a second
//!   run into the same folder fails at once with "folder in use by pid N" instead of the two
//!   interleaving their files. The lock dies with the process (a killed run leaves no stale
//!   lock); the file is removed when the run ends.
//! - **No stale outputs.** The previous run's report (`run.json`, which vouches for the outputs)
//!   and the outputs it lists, and every file this run will write, are removed at the start: a
//!   run that fails leaves a folder without its outputs, never the previous run's files looking
//!   complete.
//! - **Inputs are never outputs.** An input that is one of the files the run would replace
//!   (the same file, whatever the path: links, `..`, hard links) is an error before anything is
//!   removed.

use super::atomic::same_file;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file's name.
pub const LOCK_FILE: &str = ".deepsim.lock";

/// An output folder held by this run (the lock is released when dropped).
pub struct OutputFolder {
    dir: PathBuf,
    lock: Option<File>,
}

impl OutputFolder {
    /// Creates `dir` if needed, locks it, refuses inputs among the outputs, and removes the
    /// previous run's report `report`, the outputs that report lists, and `outputs` (the names
    /// this run writes). `inputs` are the files the run reads.
    pub fn prepare(dir: &Path, report: &str, outputs: &[String], inputs: &[&Path]) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::invalid_input(format!(
                "{}: the output folder is a file; give a folder (it is created if missing)",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::io(dir, std::io::Error::new(e.kind(), format!("cannot create the output folder: {e}")))
        })?;
        let lock = lock(dir)?;
        let folder = OutputFolder { dir: dir.to_path_buf(), lock: Some(lock) };
        let report_path = dir.join(report);
        let mut stale: Vec<String> = previous_outputs(&report_path);
        stale.extend(outputs.iter().cloned());
        stale.push(report.to_string());
        for name in &stale {
            let path = dir.join(name);
            if let Some(input) = inputs.iter().find(|input| same_file(input, &path)) {
                return Err(Error::invalid_input(format!(
                    "input {} is the output {} of this run, which would overwrite it: choose another output folder",
                    input.display(),
                    path.display()
                )));
            }
        }
        // Temporaries of these names left by a killed run (`.NAME.XXXXXX.partial`): with the
        // lock held, no live run owns one.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let orphan = name.ends_with(".partial")
                    && stale
                        .iter()
                        .any(|s| name.strip_prefix('.').is_some_and(|rest| rest.starts_with(&format!("{s}."))));
                if orphan {
                    stale.push(name);
                }
            }
        }
        // The report first: without it the rest no longer looks complete, even if the removal
        // of an output fails below.
        stale.retain(|name| name != report);
        stale.insert(0, report.to_string());
        for name in &stale {
            let path = dir.join(name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if !meta.is_dir() => std::fs::remove_file(&path).map_err(|e| {
                    Error::io(
                        &path,
                        std::io::Error::new(e.kind(), format!("cannot remove the previous run's output: {e}")),
                    )
                })?,
                _ => {}
            }
        }
        Ok(folder)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for OutputFolder {
    fn drop(&mut self) {
        // Removed while still locked: a run that opened the old file then finds it unlinked and
        // tries again (see `lock`).
        let _ = std::fs::remove_file(self.dir.join(LOCK_FILE));
        drop(self.lock.take());
    }
}

/// The output names listed by a previous report (`"outputs": [...]`), plain file names only.
fn previous_outputs(report: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(report) else {
        return Vec::new();
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    value["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .filter(|name| {
            // Only names in the folder itself: a report cannot make us remove anything else.
            let p = Path::new(name);
            p.components().count() == 1 && matches!(p.components().next(), Some(std::path::Component::Normal(_)))
        })
        .map(str::to_string)
        .collect()
}

/// Takes the folder's lock file, or fails naming the process holding it.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    for _ in 0..16 {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                Error::io(&path, std::io::Error::new(e.kind(), format!("cannot open the lock file (a link?): {e}")))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(Error::invalid_input(format!(
                    "output folder {} is in use by another deepsim run (pid {}); wait for it to end or choose another folder",
                    dir.display(),
                    if pid.is_empty() { "unknown" } else { pid }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // The holder before us may have removed the file after we opened it: then ours is an
        // orphan and the lock means nothing; open the path again.
        let same = match (file.metadata(), std::fs::symlink_metadata(&path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if !same {
            continue;
        }
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        file.rewind().map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
        return Ok(file);
    }
    Err(Error::invalid_input(format!("{}: could not take the lock file (it keeps being replaced)", path.display())))
}
