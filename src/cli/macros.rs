//! Printing that never panics, for the command line and the Python binding that compiles it.

/// `eprintln!` that never panics: when stderr is gone (`deepsim … 2>&1 | head -c 10`), the
/// message is dropped and the run goes on; its outcome is in the exit code and the outputs.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` for results on stdout, without the panic of `println!` when the reader is gone.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
