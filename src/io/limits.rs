//! The readers' allocation ceiling: a file's header declares its size, and a few hostile bytes
//! can declare 2³¹ × 2³¹ pixels. Every reader checks what it is about to allocate, computed from
//! the declared sizes with overflow-checked arithmetic, against this ceiling *before*
//! allocating, so that such a file is an error naming it instead of an aborted process.
//!
//! The ceiling is the run's memory budget: the command line sets it once from `--max-memory`
//! (or `<MemoryBudget>`) with [`set_decode_limit`]; until then it is the default budget (half of
//! the physical memory). It is process-wide on purpose: masks, ground truth, textures and
//! MicMac's crops are read far from where the budget is parsed, and a limit that some path
//! forgets to pass on is no limit.

use crate::error::{Error, Result};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// 0 = not set: the default budget applies.
static DECODE_LIMIT_BYTES: AtomicU64 = AtomicU64::new(0);

/// Sets the most bytes one reader may allocate for one file (the run's memory budget).
pub fn set_decode_limit(bytes: u64) {
    DECODE_LIMIT_BYTES.store(bytes.max(1), Ordering::Relaxed);
}

/// The current ceiling in bytes.
pub fn decode_limit() -> u64 {
    match DECODE_LIMIT_BYTES.load(Ordering::Relaxed) {
        0 => crate::pipeline::default_budget(),
        set => set,
    }
}

/// `a × b × …` in bytes, `None` on overflow.
pub(crate) fn product(factors: &[u64]) -> Option<u64> {
    factors.iter().try_fold(1u64, |acc, &f| acc.checked_mul(f))
}

/// An error naming `path` when reading it as declared (`declared`, e.g. "40000 × 40000 pixels")
/// would allocate `bytes` (`None`: more than 2⁶⁴) beyond the ceiling.
pub(crate) fn check_alloc(path: &Path, declared: &str, bytes: Option<u64>) -> Result<()> {
    let limit = decode_limit();
    match bytes {
        Some(b) if b <= limit => Ok(()),
        _ => Err(Error::invalid_input(format!(
            "{}: the file declares {declared}; reading it needs {} but the memory budget is {}: \
             check the file (a corrupt or hostile header?), or raise --max-memory (<MemoryBudget>)",
            path.display(),
            bytes.map_or_else(|| "more than 2^64 bytes".to_string(), format_bytes),
            format_bytes(limit)
        ))),
    }
}

/// A byte count for messages: `1.5 GiB`, `389 MiB`, `12 KiB`, `17 bytes`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
    for (unit, shift) in UNITS {
        if bytes >= 1u64 << shift {
            let v = bytes as f64 / (1u64 << shift) as f64;
            return if v < 10.0 { format!("{v:.1} {unit}") } else { format!("{v:.0} {unit}") };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_overflow_to_none() {
        assert_eq!(product(&[1 << 32, 1 << 32]), None);
        assert_eq!(product(&[3, 4, 5]), Some(60));
    }

    #[test]
    fn bytes_are_written_in_binary_units() {
        assert_eq!(format_bytes(389 << 20), "389 MiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(17), "17 bytes");
    }
}
