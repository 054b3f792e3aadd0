//! A seeded mutation fuzzer over every reader of untrusted bytes (issue #16): both XML flavours
//! (the element parser, MicMac's and `<DeepsimMatch>` loaders), the image readers (PNG, TIFF,
//! whole and by rows), masks and ground truth (`.npy`, PFM) and the model-bundle checks.
//!
//! Stable toolchain, no fuzzing engine: seeds (`tests/fuzz/corpus/`, the repository's XML
//! examples, a tiny model bundle) are mutated by a seeded generator (bit flips, interesting
//! integers, deletions, duplications, truncation, splices, numbers in text) and each reader must
//! return `Ok` or `Err`, never panic. PNG chunk CRCs are repaired after mutating, so the
//! mutations reach past the checksum. Aborts and stack overflows kill the process, which fails
//! the test as well. Inputs that panicked are saved under `target/fuzz-crashes/`.
//!
//! Its own test binary, because it lowers the process-wide allocation ceiling of the readers.
//! `DEEPSIM_FUZZ_CASES` (cases per target, default 1500: well under a minute in CI) and
//! `DEEPSIM_FUZZ_SEED` run it longer or elsewhere.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING_U8: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, 0xfe, b'9', b'-'];
const INTERESTING_U32: [u32; 9] = [0, 1, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000, 0x1_0000, 0xffff, 300_000, 2];
const INTERESTING_TEXT: [&str; 10] =
    ["4294967296", "-1", "nan", "1e30", "0", "18446744073709551616", "99999999", "${", "$1", "<a><a>"];

/// One to four random mutations of `data`; `others` are spliced in.
fn mutate(rng: &mut Rng, data: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = INTERESTING_U8[rng.below(INTERESTING_U8.len())];
            }
            2 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
                let bytes = if rng.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
                d[i..i + 4].copy_from_slice(&bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                d.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = d[i..i + n].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, chunk);
            }
            5 if len > 0 => d.truncate(rng.below(len)),
            6 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - i).min(128));
                    let at = rng.below(len + 1);
                    d.splice(at..at, other[i..i + n].iter().copied());
                }
            }
            7 => {
                // A run of digits (or any spot) replaced by a hostile number or token.
                let digits: Vec<usize> =
                    d.iter().enumerate().filter(|(_, b)| b.is_ascii_digit()).map(|(i, _)| i).collect();
                let at = if digits.is_empty() { rng.below(len + 1) } else { digits[rng.below(digits.len())] };
                let end = (at..len).find(|&j| !d[j].is_ascii_digit()).unwrap_or(len).max(at);
                let token = INTERESTING_TEXT[rng.below(INTERESTING_TEXT.len())];
                d.splice(at..end, token.bytes());
            }
            _ => {
                // Repeat a slice many times (deep nesting, long lists).
                if len > 0 {
                    let i = rng.below(len);
                    let n = 1 + rng.below((len - i).min(16));
                    let chunk = d[i..i + n].to_vec();
                    let times = 1 + rng.below(2000);
                    let at = rng.below(len + 1);
                    d.splice(at..at, chunk.iter().copied().cycle().take(n * times));
                }
            }
        }
    }
    d
}

/// CRC-32 (IEEE), for PNG chunks.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Recomputes the CRC of every complete chunk of a PNG.
fn fix_png_crcs(d: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= d.len() {
        let len = u32::from_be_bytes(d[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = at.checked_add(8).and_then(|s| s.checked_add(len)) else { return };
        if end + 4 > d.len() {
            return;
        }
        let crc = crc32(&d[at + 4..end]);
        d[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Mutates `seeds` `cases` times and runs `check` on each mutant (written to `dir/NAME.EXT`
/// with the seed's extension); returns the number of cases run. Panics are collected.
fn fuzz(
    target: &str,
    seeds: &[(String, Vec<u8>)],
    cases: u64,
    seed: u64,
    dir: &Path,
    crashes: &mut Vec<String>,
    check: &dyn Fn(&Path, &[u8]),
) -> u64 {
    let start = std::time::Instant::now();
    let mut rng = Rng(seed ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    let others: Vec<Vec<u8>> = seeds.iter().map(|(_, d)| d.clone()).collect();
    for case in 0..cases {
        let (name, data) = &seeds[rng.below(seeds.len())];
        let mut mutant = mutate(&mut rng, data, &others);
        let ext = Path::new(name).extension().and_then(|e| e.to_str()).unwrap_or("bin");
        if ext == "png" {
            fix_png_crcs(&mut mutant);
        }
        let path = dir.join(format!("{target}.{ext}"));
        std::fs::write(&path, &mutant).unwrap();
        if catch_unwind(AssertUnwindSafe(|| check(&path, &mutant))).is_err() {
            let saved = repo("target/fuzz-crashes").join(format!("{target}-{seed}-{case}.{ext}"));
            std::fs::create_dir_all(saved.parent().unwrap()).unwrap();
            std::fs::write(&saved, &mutant).unwrap();
            crashes.push(format!("{target} case {case} (from {name}): saved as {}", saved.display()));
        }
    }
    eprintln!("fuzz {target}: {cases} cases in {:.1} s", start.elapsed().as_secs_f64());
    cases
}

fn seeds_from(dir: &Path, ext: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| ext.contains(&e)))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn no_reader_panics_on_mutated_inputs() {
    // Small enough that no mutated header can ask for much, large enough for every seed.
    deepsim::io::set_decode_limit(64 << 20);
    // Panics are caught and reported below; their default messages would flood the output.
    std::panic::set_hook(Box::new(|_| {}));
    let cases = env_number("DEEPSIM_FUZZ_CASES", 1500);
    let seed = env_number("DEEPSIM_FUZZ_SEED", 16);
    // Every case is written to a file: in memory when the system has a tmpfs.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let mut crashes = Vec::new();
    let mut total = 0;

    let mut xml = seeds_from(&repo("xml"), &["xml"]);
    xml.extend(seeds_from(&repo("xml/invalid"), &["xml"]));
    xml.extend(seeds_from(&repo("xml/invalid-engine"), &["xml"]));
    total += fuzz("xml", &xml, cases, seed, dir.path(), &mut crashes, &|path, bytes| {
        let _ = deepsim::micmac::parse_xml(&String::from_utf8_lossy(bytes), path);
        let _ = deepsim::micmac::MicmacFile::load(path, &[("Im1".into(), "x.tif".into())]);
        let _ = deepsim::micmac::MicmacFile::load(path, &[])
            .and_then(|f| deepsim::micmac::MicmacPlan::new(&f.config, path));
        let _ = deepsim::engine_xml::EngineFile::load(path);
    });

    let corpus = repo("tests/fuzz/corpus");
    let images = seeds_from(&corpus, &["png", "tif"]);
    total += fuzz("image", &images, cases, seed, dir.path(), &mut crashes, &|path, _| {
        let _ = deepsim::io::read_image(path, &deepsim::io::ReadOptions::default());
        let _ = deepsim::io::read_mask(path);
        if let Ok(mut rows) = deepsim::io::open_rows(path, &deepsim::io::ReadOptions { nodata: Some(0.0) }) {
            let h = rows.height();
            let _ = rows.read_rows(h / 2, h - h / 2);
            let _ = rows.read_rows(0, 1);
            let _ = deepsim::io::unit_range(rows.as_mut(), 3);
        }
        let _ = deepsim::io::read_geotags(path);
    });

    let arrays = seeds_from(&corpus, &["npy", "pfm", "tif"]);
    total += fuzz("array", &arrays, cases, seed, dir.path(), &mut crashes, &|path, _| {
        let _ = deepsim::io::read_disparity(path);
        let _ = deepsim::io::read_mask(path);
        let _ = deepsim::io::read_npy_array(path);
    });

    // Model bundles: the protobuf, its metadata and graph checks (no network is run).
    let bundle = repo("tests/data/models/tiny_conv");
    let models = vec![
        ("features.onnx".to_string(), std::fs::read(bundle.join("features.onnx")).unwrap()),
        ("mlp.onnx".to_string(), std::fs::read(bundle.join("mlp.onnx")).unwrap()),
    ];
    let model_cases = (cases / 5).max(1);
    total += fuzz("model", &models, model_cases, seed, dir.path(), &mut crashes, &|path, _| {
        let _ = deepsim::model::ModelBundle::from_files(path, None);
        let _ = deepsim::model::ModelBundle::from_files(&bundle.join("features.onnx"), Some(path));
    });

    let _ = std::panic::take_hook();
    eprintln!("fuzz: {total} cases (seed {seed}), {} panics", crashes.len());
    assert!(crashes.is_empty(), "readers panicked:\n{}", crashes.join("\n"));
}
