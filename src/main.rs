//! The `deepsim` command line.

#[macro_use]
#[path = "cli/macros.rs"]
mod macros;

mod cli;

fn main() -> std::process::ExitCode {
    match cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            note!("deepsim: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
