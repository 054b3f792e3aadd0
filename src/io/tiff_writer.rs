//! Single-band TIFF output (8-bit, 16-bit or float32, deflate-compressed, optionally georeferenced),
//! written strip by strip while rows arrive: the one TIFF encoding path, whole images included.
//!
//! The `tiff` crate encodes a directory through a [`DirectoryEncoder`] that borrows its
//! [`TiffEncoder`], so the two cannot live side by side in a struct that outlives one call. A
//! writer thread owns both for the whole file and receives strips over a bounded channel (two
//! strips in flight), which also moves the compression off the caller's thread. Errors of the
//! thread come back at the next [`TiffRowWriter::write_rows`] or at [`TiffRowWriter::finish`].
//!
//! Strips are compressed here, not by the crate: its `ImageEncoder` compresses only in
//! `write_data` (whole images); its `write_strip` writes raw samples under the compression tag.
//!
//! [`TiffRowWriter::finish`] is the only way to a complete file: a writer dropped before (or
//! after an error) leaves an empty file, and the callers write to `*.partial` names renamed only
//! on success ([`super::AtomicFile`]).

use super::tiff_io::GeoTags;
use crate::error::{Error, ErrorKind, Result};
use ndarray::{Array2, ArrayView2};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use tiff::encoder::compression::{CompressionAlgorithm, Deflate, DeflateLevel};
use tiff::encoder::{DirectoryEncoder, Rational, TiffEncoder, TiffKind, TiffKindBig, TiffKindStandard, TiffValue};
use tiff::tags::{CompressionMethod, PhotometricInterpretation, Predictor, ResolutionUnit, Tag};

/// Rows per strip of the TIFFs written (a strip of a 20000-pixel-wide float image is 5 MB).
pub const ROWS_PER_STRIP: usize = 64;

/// Strips queued between the caller and the writer thread.
const STRIPS_IN_FLIGHT: usize = 2;

/// Images whose samples pass this size are written as BigTIFF (classic TIFF offsets are 32-bit;
/// the margin covers incompressible data and the directory).
const BIGTIFF_ABOVE_BYTES: u64 = 3 << 30;

/// Whether an image of `width` × `height` samples of `sample_bytes` bytes is written as BigTIFF.
pub(crate) fn needs_bigtiff(width: usize, height: usize, sample_bytes: usize) -> bool {
    (width as u64).saturating_mul(height as u64).saturating_mul(sample_bytes as u64) > BIGTIFF_ABOVE_BYTES
}

mod sealed {
    /// What the encoder needs to know of a sample type.
    pub trait Sealed: Sized {
        /// BitsPerSample.
        const BITS: u16;
        /// SampleFormat (1: unsigned integer, 3: IEEE float).
        const FORMAT: u16;
        /// The samples as bytes in native order (the order of the file header).
        fn ne_bytes(samples: &[Self]) -> std::borrow::Cow<'_, [u8]>;
    }
}

/// A sample type [`TiffRowWriter`] writes: `u8`, `u16` or `f32`.
pub trait TiffSample: sealed::Sealed + Copy + Send + 'static {}

impl sealed::Sealed for u8 {
    const BITS: u16 = 8;
    const FORMAT: u16 = 1;
    fn ne_bytes(samples: &[Self]) -> Cow<'_, [u8]> {
        samples.data()
    }
}
impl TiffSample for u8 {}

impl sealed::Sealed for f32 {
    const BITS: u16 = 32;
    const FORMAT: u16 = 3;
    fn ne_bytes(samples: &[Self]) -> Cow<'_, [u8]> {
        samples.data()
    }
}
impl TiffSample for f32 {}

impl sealed::Sealed for u16 {
    const BITS: u16 = 16;
    const FORMAT: u16 = 1;
    fn ne_bytes(samples: &[Self]) -> Cow<'_, [u8]> {
        samples.data()
    }
}
impl TiffSample for u16 {}

/// Writes a single-band TIFF while its rows arrive, in order, any number at a time.
///
/// Memory: one strip being filled and up to three strips queued or being compressed, whatever
/// the image size. Images over 3 GiB of samples are written as BigTIFF.
pub struct TiffRowWriter<T: TiffSample> {
    path: PathBuf,
    width: usize,
    height: usize,
    /// Rows received so far.
    rows: usize,
    /// The strip being filled.
    strip: Vec<T>,
    /// `None` once finished or failed.
    worker: Option<Worker<T>>,
}

/// The writer thread and its channel.
struct Worker<T> {
    sender: SyncSender<Message<T>>,
    handle: JoinHandle<Result<()>>,
}

enum Message<T> {
    /// The samples of the next strip, row-major.
    Strip(Vec<T>),
    /// All strips were sent: write the directory.
    Finish,
}

/// What the writer thread needs to write the file.
struct Target {
    path: PathBuf,
    width: u32,
    height: u32,
    geo: Option<GeoTags>,
}

impl<T: TiffSample> TiffRowWriter<T> {
    /// Creates `path` for an image of `width` × `height` pixels, georeferenced with `geo`.
    pub fn create(path: &Path, width: usize, height: usize, geo: Option<&GeoTags>) -> Result<Self> {
        let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
            return Err(Error::invalid_input(format!(
                "{}: an image of {width} × {height} pixels is too large for TIFF (at most 2^32 - 1 per side)",
                path.display()
            )));
        };
        if w == 0 || h == 0 {
            return Err(Error::invalid_input(format!(
                "{}: cannot write an empty image ({width} × {height})",
                path.display()
            )));
        }
        let file = super::atomic::create_file(path)?;
        let target = Target { path: path.to_path_buf(), width: w, height: h, geo: geo.cloned() };
        let big = needs_bigtiff(width, height, std::mem::size_of::<T>());
        let (sender, receiver) = sync_channel(STRIPS_IN_FLIGHT);
        let handle = std::thread::Builder::new()
            .name("tiff-writer".into())
            .spawn(move || write_file::<T>(file, &target, big, receiver))
            .map_err(|e| Error::io(path, e))?;
        Ok(TiffRowWriter {
            path: path.to_path_buf(),
            width,
            height,
            rows: 0,
            strip: Vec::with_capacity(width * ROWS_PER_STRIP.min(height)),
            worker: Some(Worker { sender, handle }),
        })
    }

    /// Appends the next rows (any number, `width` samples each).
    pub fn write_rows(&mut self, rows: ArrayView2<T>) -> Result<()> {
        if rows.ncols() != self.width {
            return Err(Error::invalid_input(format!(
                "{}: rows of {} pixels given to an image {} pixels wide",
                self.path.display(),
                rows.ncols(),
                self.width
            )));
        }
        if rows.nrows() > self.height - self.rows {
            return Err(Error::invalid_input(format!(
                "{}: {} more rows after {} would pass the image height {}",
                self.path.display(),
                rows.nrows(),
                self.rows,
                self.height
            )));
        }
        for row in rows.rows() {
            self.strip.extend(row.iter().copied());
            self.rows += 1;
            if self.strip.len() == self.width * ROWS_PER_STRIP || self.rows == self.height {
                self.send_strip()?;
            }
        }
        Ok(())
    }

    /// Writes the directory and closes the file: an error if rows are missing or anything
    /// failed on the way, and then the file is left empty.
    pub fn finish(mut self) -> Result<()> {
        if self.rows < self.height {
            return Err(Error::invalid_input(format!(
                "{}: only {} of {} rows were written; the file is incomplete",
                self.path.display(),
                self.rows,
                self.height
            )));
        }
        let worker = self.worker.take().ok_or_else(|| self.failed_before())?;
        // A failed send means the thread stopped on an error, which join returns.
        let _ = worker.sender.send(Message::Finish);
        join(&self.path, worker)
    }

    /// Hands the filled strip to the writer thread.
    fn send_strip(&mut self) -> Result<()> {
        let next = Vec::with_capacity(self.strip.capacity());
        let strip = std::mem::replace(&mut self.strip, next);
        let worker = self.worker.as_ref().ok_or_else(|| self.failed_before())?;
        if worker.sender.send(Message::Strip(strip)).is_err() {
            let worker = self.worker.take().ok_or_else(|| self.failed_before())?;
            return Err(join(&self.path, worker).err().unwrap_or_else(|| self.failed_before()));
        }
        Ok(())
    }

    /// The error for a writer used after an error.
    fn failed_before(&self) -> Error {
        Error::new(ErrorKind::Io, format!("{}: an earlier write failed; the file is incomplete", self.path.display()))
    }
}

impl<T: TiffSample> Drop for TiffRowWriter<T> {
    /// Without [`TiffRowWriter::finish`], the thread sees the channel close and empties the file.
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            drop(worker.sender);
            let _ = worker.handle.join();
        }
    }
}

/// Waits for the writer thread and returns its outcome.
fn join<T>(path: &Path, worker: Worker<T>) -> Result<()> {
    drop(worker.sender);
    worker.handle.join().unwrap_or_else(|_| {
        Err(Error::new(ErrorKind::Io, format!("{}: the TIFF writer thread panicked", path.display())))
    })
}

/// The writer thread: encodes the strips received into `file`; on any failure, or when the
/// channel closes before [`Message::Finish`], empties the file.
fn write_file<T: TiffSample>(file: File, target: &Target, big: bool, strips: Receiver<Message<T>>) -> Result<()> {
    let mut out = BufWriter::new(file);
    let encoded = if big {
        encode::<T, TiffKindBig>(&mut out, target, strips)
    } else {
        encode::<T, TiffKindStandard>(&mut out, target, strips)
    };
    match encoded.and_then(|()| out.flush().map_err(|e| Error::io(&target.path, e))) {
        Ok(()) => Ok(()),
        Err(e) => {
            let (file, _unwritten) = out.into_parts();
            let _ = file.set_len(0);
            Err(e)
        }
    }
}

/// Encodes the image: header, tags, the strips as they come, then the strip tables and the
/// directory once [`Message::Finish`] arrives.
fn encode<T: TiffSample, K: TiffKind>(
    out: &mut BufWriter<File>,
    target: &Target,
    strips: Receiver<Message<T>>,
) -> Result<()> {
    let path = &target.path;
    let tiff_err = |e: tiff::TiffError| Error::new(ErrorKind::Io, format!("{}: {e}", path.display()));
    let mut encoder = TiffEncoder::<_, K>::new_generic(out).map_err(tiff_err)?;
    let mut dir = encoder.image_directory().map_err(tiff_err)?;
    write_image_tags::<T, _, K>(&mut dir, target).map_err(tiff_err)?;
    let (mut offsets, mut byte_counts) = (Vec::new(), Vec::new());
    let mut compressed = Vec::new();
    loop {
        match strips.recv() {
            Ok(Message::Strip(samples)) => {
                compressed.clear();
                Deflate::with_level(DeflateLevel::Fast)
                    .write_to(&mut compressed, &T::ne_bytes(&samples))
                    .map_err(|e| Error::io(path, e))?;
                let offset = dir.write_data(compressed.as_slice()).map_err(tiff_err)?;
                offsets.push(K::convert_offset(offset).map_err(tiff_err)?);
                byte_counts.push(K::convert_offset(compressed.len() as u64).map_err(tiff_err)?);
            }
            Ok(Message::Finish) => break,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("{}: the TIFF writer was dropped before finish; the file is incomplete", path.display()),
                ));
            }
        }
    }
    dir.write_tag(Tag::StripOffsets, K::convert_slice(&offsets)).map_err(tiff_err)?;
    dir.write_tag(Tag::StripByteCounts, K::convert_slice(&byte_counts)).map_err(tiff_err)?;
    dir.finish().map_err(tiff_err)
}

/// The tags of a single-band, deflate-compressed, stripped image (those the crate's
/// `ImageEncoder` writes) and the georeferencing.
fn write_image_tags<T: TiffSample, W: Write + Seek, K: TiffKind>(
    dir: &mut DirectoryEncoder<'_, W, K>,
    target: &Target,
) -> tiff::TiffResult<()> {
    dir.write_tag(Tag::ImageWidth, target.width)?;
    dir.write_tag(Tag::ImageLength, target.height)?;
    dir.write_tag(Tag::BitsPerSample, T::BITS)?;
    dir.write_tag(Tag::SampleFormat, T::FORMAT)?;
    dir.write_tag(Tag::SamplesPerPixel, 1u16)?;
    dir.write_tag(Tag::PhotometricInterpretation, PhotometricInterpretation::BlackIsZero)?;
    dir.write_tag(Tag::Compression, CompressionMethod::Deflate)?;
    dir.write_tag(Tag::Predictor, Predictor::None)?;
    dir.write_tag(Tag::RowsPerStrip, ROWS_PER_STRIP as u32)?;
    dir.write_tag(Tag::XResolution, Rational { n: 1, d: 1 })?;
    dir.write_tag(Tag::YResolution, Rational { n: 1, d: 1 })?;
    dir.write_tag(Tag::ResolutionUnit, ResolutionUnit::None)?;
    match &target.geo {
        Some(geo) => geo.write_to(dir),
        None => Ok(()),
    }
}

/// Writes a whole image through a [`TiffRowWriter`].
fn write_whole<T: TiffSample>(path: &Path, values: &Array2<T>, geo: Option<&GeoTags>) -> Result<()> {
    let mut writer = TiffRowWriter::create(path, values.ncols(), values.nrows(), geo)?;
    writer.write_rows(values.view())?;
    writer.finish()
}

/// Writes a single-band float32 TIFF (deflate-compressed). NaN stays NaN.
pub fn write_tiff_f32(path: &Path, values: &Array2<f32>) -> Result<()> {
    write_whole(path, values, None)
}

/// Writes a single-band 8-bit TIFF (deflate-compressed).
pub fn write_tiff_u8(path: &Path, values: &Array2<u8>) -> Result<()> {
    write_whole(path, values, None)
}

/// [`write_tiff_f32`] with georeferencing tags.
pub fn write_tiff_f32_geo(path: &Path, values: &Array2<f32>, geo: Option<&GeoTags>) -> Result<()> {
    write_whole(path, values, geo)
}

/// [`write_tiff_u8`] with georeferencing tags.
pub fn write_tiff_u8_geo(path: &Path, values: &Array2<u8>, geo: Option<&GeoTags>) -> Result<()> {
    write_whole(path, values, geo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigtiff_is_chosen_above_the_threshold_only() {
        assert!(!needs_bigtiff(20_000, 20_000, 4), "1.6 GB of float samples fit a classic TIFF");
        assert!(needs_bigtiff(40_000, 40_000, 4), "6.4 GB do not");
        assert!(!needs_bigtiff(1 << 15, 1 << 15, 3), "exactly 3 GiB is still classic");
        assert!(needs_bigtiff((1 << 15) + 1, 1 << 15, 3));
        assert!(needs_bigtiff(usize::MAX, usize::MAX, 4), "no overflow");
    }
}
