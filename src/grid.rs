//! Whole-level rasters held in memory or in a scratch file, read and written by regions.
//!
//! The pipeline keeps everything that spans a whole pyramid level (the images of each level,
//! each step's results) in a [`Grid`]. In memory, a grid is an array; on disk, it is an
//! anonymous file (already unlinked: nothing is left behind, even after a crash) that tiles
//! read from and write to. The choice is made once per run by [`Storage`], from the memory
//! budget: the matching code is the same either way, so results do not depend on it.

use crate::error::{Error, ErrorKind, Result};
use crate::tiles::Region;
use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Where whole-level rasters live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In memory (the fastest; memory grows with the image size).
    Memory,
    /// In anonymous files created in this folder (memory stays bounded; the page cache does
    /// the rest).
    Scratch(PathBuf),
}

/// A sample type a grid can hold, with its fixed little-endian encoding on disk.
pub trait Sample: Copy + Default + Send + Sync + 'static {
    /// Bytes per sample on disk.
    const BYTES: usize;
    /// Encodes into `out` (exactly [`Self::BYTES`] long).
    fn put(self, out: &mut [u8]);
    /// Decodes from `bytes` (exactly [`Self::BYTES`] long).
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! numeric_sample {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("slice of Self::BYTES"))
            }
        }
    )*};
}
numeric_sample!(f32, i32, u8, u16);

impl Sample for bool {
    const BYTES: usize = 1;
    fn put(self, out: &mut [u8]) {
        out[0] = u8::from(self);
    }
    fn get(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
}

/// A `width × height` raster of `T`, in memory (owned or borrowed) or in a scratch file.
#[derive(Debug)]
pub struct Grid<'a, T: Sample> {
    width: usize,
    height: usize,
    data: Data<'a, T>,
}

#[derive(Debug)]
enum Data<'a, T: Sample> {
    Memory(Cow<'a, Array2<T>>),
    File(File),
}

impl<'a, T: Sample> Grid<'a, T> {
    /// A grid of default values (zeros, false).
    pub fn new(width: usize, height: usize, storage: &Storage) -> Result<Self> {
        let data = match storage {
            Storage::Memory => Data::Memory(Cow::Owned(Array2::default((height, width)))),
            Storage::Scratch(dir) => {
                let file = tempfile::tempfile_in(dir).map_err(|e| scratch_error(dir, e))?;
                let bytes = (width * height * T::BYTES) as u64;
                file.set_len(bytes).map_err(|e| scratch_error(dir, e))?;
                Data::File(file)
            }
        };
        Ok(Grid { width, height, data })
    }

    /// A grid holding `array` in memory.
    pub fn from_array(array: Array2<T>) -> Self {
        let (height, width) = array.dim();
        Grid { width, height, data: Data::Memory(Cow::Owned(array)) }
    }

    /// A grid reading `array` in place.
    pub fn borrowed(array: &'a Array2<T>) -> Self {
        let (height, width) = array.dim();
        Grid { width, height, data: Data::Memory(Cow::Borrowed(array)) }
    }

    /// The whole grid as an array, when it is in memory.
    pub fn in_memory(&self) -> Option<&Array2<T>> {
        match &self.data {
            Data::Memory(array) => Some(array),
            Data::File(_) => None,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The whole grid as a region.
    pub fn region(&self) -> Region {
        Region::full(self.width, self.height)
    }

    /// True when held in a scratch file.
    pub fn on_disk(&self) -> bool {
        matches!(self.data, Data::File(_))
    }

    /// The values of `region` (a view when in memory, a copy when on disk).
    pub fn read(&self, region: Region) -> Result<CowArray<'_, T, Ix2>> {
        self.check(region);
        match &self.data {
            Data::Memory(array) => Ok(CowArray::from(array.slice(ndarray::s![region.y0..region.y1, region.x0..region.x1]))),
            Data::File(file) => {
                let (w, h) = (region.width(), region.height());
                let mut out = Vec::with_capacity(w * h);
                let mut bytes = vec![0u8; w * T::BYTES];
                for y in region.y0..region.y1 {
                    read_at(file, &mut bytes, self.offset(region.x0, y))?;
                    out.extend(bytes.chunks_exact(T::BYTES).map(T::get));
                }
                Ok(CowArray::from(Array2::from_shape_vec((h, w), out).expect("w × h values")))
            }
        }
    }

    /// Writes `values` with its top-left corner at (`x0`, `y0`).
    pub fn write(&mut self, x0: usize, y0: usize, values: ArrayView2<T>) -> Result<()> {
        let (h, w) = values.dim();
        self.check(Region { x0, y0, x1: x0 + w, y1: y0 + h });
        let (width, bytes) = (self.width, T::BYTES);
        let offset = |x: usize, y: usize| ((y * width + x) * bytes) as u64;
        match &mut self.data {
            Data::Memory(array) => {
                array.to_mut().slice_mut(ndarray::s![y0..y0 + h, x0..x0 + w]).assign(&values);
                Ok(())
            }
            Data::File(file) => {
                let mut bytes = vec![0u8; w * T::BYTES];
                for (dy, row) in values.rows().into_iter().enumerate() {
                    for (chunk, &v) in bytes.chunks_exact_mut(T::BYTES).zip(row.iter()) {
                        v.put(chunk);
                    }
                    write_at(file, &bytes, offset(x0, y0 + dy))?;
                }
                Ok(())
            }
        }
    }

    /// The whole grid as an array.
    pub fn into_array(self) -> Result<Array2<T>> {
        match self.data {
            Data::Memory(array) => Ok(array.into_owned()),
            Data::File(_) => Ok(self.read(self.region())?.into_owned()),
        }
    }

    /// Saves the grid to `path` in the scratch files' layout (row-major, little-endian
    /// samples, no header), for another process to [`Grid::open`]: how a distributed run hands
    /// a step's disparity to the workers matching the next step.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write as _;
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        let mut bytes = vec![0u8; self.width * T::BYTES];
        for y in 0..self.height {
            let row = self.read(Region { x0: 0, y0: y, x1: self.width, y1: y + 1 })?;
            for (chunk, &v) in bytes.chunks_exact_mut(T::BYTES).zip(row.iter()) {
                v.put(chunk);
            }
            out.write_all(&bytes).map_err(|e| Error::io(path, e))?;
        }
        let file = out.into_inner().map_err(|e| Error::io(path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path, e))
    }

    /// A `width × height` grid read from a file written by [`Grid::save`] (read only: the
    /// grid must not be written).
    pub fn open(path: &Path, width: usize, height: usize) -> Result<Grid<'static, T>> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let expected = (width * height * T::BYTES) as u64;
        if len != expected {
            return Err(Error::decode(path, format!("{len} bytes, expected {expected} for a {width}×{height} grid")));
        }
        Ok(Grid { width, height, data: Data::File(file) })
    }

    fn offset(&self, x: usize, y: usize) -> u64 {
        ((y * self.width + x) * T::BYTES) as u64
    }

    fn check(&self, region: Region) {
        assert!(
            region.x1 <= self.width && region.y1 <= self.height && region.x0 <= region.x1 && region.y0 <= region.y1,
            "region {region:?} outside a {}×{} grid",
            self.width,
            self.height
        );
    }
}

fn scratch_error(dir: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "cannot use the scratch folder {} ({e}): it needs room for the whole-level rasters of a large \
             image; choose another folder with --scratch DIR",
            dir.display()
        ),
    )
}

fn scratch_io(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, format!("scratch file: {e} (is the scratch folder's disk full?)"))
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset).map_err(scratch_io)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset).map_err(scratch_io)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset).map_err(scratch_io)?;
        if n == 0 {
            return Err(scratch_io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_write(buf, offset).map_err(scratch_io)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(storage: &Storage) {
        let mut grid = Grid::<i32>::new(7, 5, storage).unwrap();
        let block = Array2::from_shape_fn((2, 3), |(y, x)| (10 * y + x) as i32 - 4);
        grid.write(4, 3, block.view()).unwrap();
        let read = grid.read(Region { x0: 3, y0: 2, x1: 7, y1: 5 }).unwrap();
        let expected = ndarray::array![[0, 0, 0, 0], [0, -4, -3, -2], [0, 6, 7, 8]];
        assert_eq!(read.to_owned(), expected);
        assert_eq!(grid.into_array().unwrap().sum(), block.sum());
    }

    #[test]
    fn memory_and_disk_grids_read_back_what_was_written() {
        round_trip(&Storage::Memory);
        let dir = tempfile::tempdir().unwrap();
        round_trip(&Storage::Scratch(dir.path().to_path_buf()));
        // The scratch file is anonymous: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_saved_grid_opens_with_its_values_and_a_wrong_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let grid = Grid::from_array(Array2::from_shape_fn((5, 7), |(y, x)| (10 * y + x) as i32 - 20));
        let path = dir.path().join("g.i32");
        grid.save(&path).unwrap();
        let opened = Grid::<i32>::open(&path, 7, 5).unwrap();
        assert_eq!(opened.into_array().unwrap(), grid.into_array().unwrap());
        let err = Grid::<i32>::open(&path, 5, 7 + 1).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{err}");
    }
}
