//! Engine errors as Python exceptions: `deepsim.errors.DeepsimError` subclasses, one per
//! [`deepsim::ErrorKind`], carrying the engine's message (the CLI's `error: …` text).

use deepsim::ErrorKind;
use pyo3::prelude::*;

/// An argument list the CLI's parser refused (unknown option, bad value): clap's message.
#[derive(Debug)]
pub struct ClapMessage(pub String);

/// Arrays that do not fit (dtype, shape, no valid pixel).
#[derive(Debug)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for ClapMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // clap's "error: " prefix is the command line's; the exception's class says it.
        let text = self.0.trim_end();
        f.write_str(text.strip_prefix("error: ").unwrap_or(text))
    }
}

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClapMessage {}
impl std::error::Error for InvalidInput {}

/// The exception class (in `deepsim.errors`) for `err`: by the kind of the first engine error
/// in its chain; option errors are `OptionError`; anything else is a plain `DeepsimError`.
fn class_name(err: &anyhow::Error) -> &'static str {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<deepsim::Error>() {
            return match e.kind() {
                ErrorKind::Io => "DeepsimIOError",
                ErrorKind::Decode => "DecodeError",
                ErrorKind::Unsupported => "UnsupportedError",
                ErrorKind::InvalidInput => "InvalidInputError",
                ErrorKind::InvalidParameter => "InvalidParameterError",
                ErrorKind::Backend => "BackendError",
                ErrorKind::Plugin => "PluginError",
                _ => "DeepsimError",
            };
        }
        if cause.downcast_ref::<ClapMessage>().is_some() {
            return "OptionError";
        }
        if cause.downcast_ref::<InvalidInput>().is_some() {
            return "InvalidInputError";
        }
    }
    "DeepsimError"
}

/// `err` as the Python exception of its class, with the whole chain as message.
pub fn to_py(py: Python<'_>, err: anyhow::Error) -> PyErr {
    let message = format!("{err:#}");
    let class = py
        .import("deepsim.errors")
        .and_then(|m| m.getattr(class_name(&err)));
    match class.and_then(|c| c.call1((message.clone(),))) {
        Ok(exception) => PyErr::from_value(exception),
        // The package is broken (no deepsim.errors): still raise, with the message.
        Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
    }
}
