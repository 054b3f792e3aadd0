//! The library's error type.
//!
//! One `Error` carrying a [`ErrorKind`] (what went wrong, by concern) and a message that names
//! the offending input and, where there is one, the fix. `anyhow` is used only by the binary.

use std::path::Path;

/// What kind of problem an [`Error`] reports.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file could not be opened, read or written.
    Io,
    /// A file was read but its content could not be decoded (corrupt, truncated, wrong format).
    Decode,
    /// A file uses a pixel type, layout or feature this build does not support.
    Unsupported,
    /// Inputs that are individually fine but do not fit together (sizes, ranges, masks).
    InvalidInput,
    /// A parameter value outside its allowed domain.
    InvalidParameter,
    /// A similarity backend failed while computing costs.
    Backend,
    /// A run-time plugin could not be loaded, does not fit this build (ABI version, missing
    /// symbol or function), or refused its options.
    Plugin,
}

/// An error with its kind and a message meant for the user.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// Result alias used across the library.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    /// An I/O failure on `path`.
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{}: {err}", path.display()))
    }

    /// A decoding failure of `path`.
    pub fn decode(path: &Path, what: impl std::fmt::Display) -> Self {
        Error::new(ErrorKind::Decode, format!("{}: cannot decode: {what}", path.display()))
    }

    /// An unsupported feature of `path`.
    pub fn unsupported(path: &Path, what: impl std::fmt::Display) -> Self {
        Error::new(ErrorKind::Unsupported, format!("{}: unsupported: {what}", path.display()))
    }

    /// Inputs that do not fit together.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// A parameter outside its domain.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidParameter, message)
    }

    /// A plugin problem (see [`ErrorKind::Plugin`]).
    pub fn plugin(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Plugin, message)
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

