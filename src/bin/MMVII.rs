//! `MMVII`: the launcher MicMac calls for its external cost cube.
//!
//! `mm3d MICMAC` runs `MMVII DM4FillCubeCost …` through the shell. Installed next to `deepsim`
//! (`cargo install` puts both binaries in the same folder), this program replaces the whole
//! command line by `deepsim mmvii …`, so that MicMac uses deepsim without recompiling anything.
//! `deepsim` is looked for in `DEEPSIM_BIN` if set, then next to this program (following
//! symbolic links, so a link to `MMVII` placed anywhere on `PATH` works), then on `PATH`.
#![allow(non_snake_case)]

use std::io::Write as _;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn deepsim() -> PathBuf {
    if let Some(p) = std::env::var_os("DEEPSIM_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let name = format!("deepsim{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe() {
        let real = exe.canonicalize().unwrap_or_else(|_| exe.clone());
        for dir in [real.parent(), exe.parent()].into_iter().flatten() {
            let candidate = dir.join(&name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(name)
}

fn main() -> ExitCode {
    let program = deepsim();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut command = Command::new(&program);
    command.arg("mmvii").args(&args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // exec only returns on failure.
        let err = command.exec();
        let _ = writeln!(std::io::stderr(), "MMVII (deepsim launcher): cannot run {}: {err}; install deepsim next to this launcher or set DEEPSIM_BIN", program.display());
        ExitCode::from(127)
    }
    #[cfg(not(unix))]
    match command.status() {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "MMVII (deepsim launcher): cannot run {}: {err}; install deepsim next to this launcher or set DEEPSIM_BIN", program.display());
            ExitCode::from(127)
        }
    }
}
