//! Writing result maps while the rows arrive: float/8-bit/16-bit TIFFs (BigTIFF when large, with the
//! left image's georeferencing) under `*.partial` names until the run has succeeded, and a
//! colour preview of the disparity (subsampled for large images).

use anyhow::Context;
use deepsim::grid::Grid;
use deepsim::io::{write_preview_png, AtomicFile, GeoTags, OutputSet, TiffRowWriter, TiffSample};
use deepsim::pipeline::{Products, RowSink, PRODUCT_FILES};
use deepsim::tiles::Region;
use ndarray::{Array2, ArrayView2};
use std::path::Path;

/// The preview's longest side; larger maps are subsampled to it.
const PREVIEW_MAX_PX: usize = 4096;

/// What a map file holds, from the rows the pipeline delivers.
#[derive(Debug, Clone, Copy)]
pub enum Content {
    /// The disparity d (NaN = no value).
    Disparity,
    /// MicMac's Px1 = −d.
    Px1,
    /// Zeros (MicMac's Px2 of an epipolar pair).
    Zeros,
    /// The confidence.
    Confidence,
    /// One of the confidence products' float maps: its index in [`Products::maps`].
    Product(usize),
    /// The validity bits of the confidence products (uint16).
    Validity,
}

/// A TIFF being written: float maps, or the uint16 validity bits.
enum Writer {
    F32(TiffRowWriter<f32>),
    U16(TiffRowWriter<u16>),
}

impl Writer {
    fn finish(self) -> deepsim::Result<()> {
        match self {
            Writer::F32(w) => w.finish(),
            Writer::U16(w) => w.finish(),
        }
    }

    fn f32(&mut self) -> &mut TiffRowWriter<f32> {
        match self {
            Writer::F32(w) => w,
            Writer::U16(_) => unreachable!("float contents get float writers (MapFiles::create)"),
        }
    }
}

struct MapFile {
    name: String,
    file: Option<AtomicFile>,
    writer: Option<Writer>,
    content: Content,
}

/// A [`RowSink`] writing the final maps, and a preview when asked.
pub struct MapFiles {
    maps: Vec<MapFile>,
    preview: Option<(String, Preview)>,
}

/// The confidence products' files, with their contents, in [`PRODUCT_FILES`] order.
pub fn product_files() -> Vec<(String, Content)> {
    PRODUCT_FILES
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), if i + 1 < PRODUCT_FILES.len() { Content::Product(i) } else { Content::Validity }))
        .collect()
}

impl MapFiles {
    /// Opens `(name, content)` files in `dir` for a `width × height` map.
    pub fn create(
        dir: &Path,
        width: usize,
        height: usize,
        geo: Option<&GeoTags>,
        files: &[(String, Content)],
        preview: Option<&str>,
    ) -> anyhow::Result<Self> {
        // Built first, so that its Drop removes the files already opened if one fails.
        let mut maps = MapFiles { maps: Vec::new(), preview: preview.map(|name| (name.to_string(), Preview::new(width, height))) };
        for (name, content) in files {
            let file = AtomicFile::new(&dir.join(name))?;
            let writer = match content {
                Content::Validity => TiffRowWriter::create(file.tmp_path(), width, height, geo).map(Writer::U16),
                _ => TiffRowWriter::create(file.tmp_path(), width, height, geo).map(Writer::F32),
            };
            maps.maps.push(MapFile { name: name.clone(), file: Some(file), writer: None, content: *content });
            maps.maps.last_mut().expect("just pushed").writer = Some(writer?);
        }
        Ok(maps)
    }

    /// Completes every file and hands them to `outputs` (renamed with it); returns their names.
    pub fn finish(mut self, dir: &Path, outputs: &mut OutputSet) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for map in &mut self.maps {
            let writer = map.writer.take().expect("finished once");
            writer.finish().with_context(|| format!("cannot complete {}", map.name))?;
            outputs.add(map.file.take().expect("finished once"));
            names.push(map.name.clone());
        }
        if let Some((name, preview)) = self.preview.take() {
            let image = preview.finish();
            outputs.write(&dir.join(&name), |p| write_preview_png(p, &image))?;
            names.push(name);
        }
        Ok(names)
    }
}

impl Drop for MapFiles {
    /// Files not finished (an error happened) are removed.
    fn drop(&mut self) {
        for map in &mut self.maps {
            drop(map.writer.take());
            if let Some(file) = map.file.take() {
                file.discard();
            }
        }
    }
}

impl RowSink for MapFiles {
    fn rows(&mut self, first_row: usize, disparity: ArrayView2<f32>, confidence: ArrayView2<f32>) -> deepsim::Result<()> {
        for map in &mut self.maps {
            let writer = map.writer.as_mut().expect("open until finish");
            match map.content {
                Content::Disparity => writer.f32().write_rows(disparity)?,
                Content::Px1 => writer.f32().write_rows(disparity.mapv(|d| -d).view())?,
                Content::Zeros => writer.f32().write_rows(Array2::zeros(disparity.dim()).view())?,
                Content::Confidence => writer.f32().write_rows(confidence)?,
                Content::Product(_) | Content::Validity => {}
            }
        }
        if let Some((_, preview)) = &mut self.preview {
            preview.rows(first_row, disparity);
        }
        Ok(())
    }

    fn wants_products(&self) -> bool {
        self.maps.iter().any(|m| matches!(m.content, Content::Product(_) | Content::Validity))
    }

    fn product_rows(&mut self, _first_row: usize, products: &Products) -> deepsim::Result<()> {
        for map in &mut self.maps {
            let writer = map.writer.as_mut().expect("open until finish");
            match (map.content, writer) {
                (Content::Product(i), Writer::F32(w)) => w.write_rows(products.maps()[i].view())?,
                (Content::Validity, Writer::U16(w)) => w.write_rows(products.validity.view())?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Every `step`-th row and column of the disparity, for the preview.
struct Preview {
    step: usize,
    image: Array2<f32>,
}

impl Preview {
    fn new(width: usize, height: usize) -> Self {
        let step = width.max(height).div_ceil(PREVIEW_MAX_PX).max(1);
        Preview { step, image: Array2::from_elem((height.div_ceil(step), width.div_ceil(step)), f32::NAN) }
    }

    fn rows(&mut self, first_row: usize, disparity: ArrayView2<f32>) {
        for (i, row) in disparity.rows().into_iter().enumerate() {
            let y = first_row + i;
            if y.is_multiple_of(self.step) {
                for (x, &d) in row.iter().step_by(self.step).enumerate() {
                    self.image[(y / self.step, x)] = d;
                }
            }
        }
    }

    fn finish(self) -> Array2<f32> {
        self.image
    }
}

/// Writes `grid` through `convert` as a TIFF `dir/name` (a member of `outputs`), band by band.
pub fn write_grid<T: deepsim::grid::Sample, U: TiffSample>(
    dir: &Path,
    name: &str,
    grid: &Grid<'_, T>,
    geo: Option<&GeoTags>,
    outputs: &mut OutputSet,
    convert: impl Fn(T) -> U,
) -> anyhow::Result<()> {
    let (w, h) = (grid.width(), grid.height());
    outputs.write(&dir.join(name), |path| {
        let mut writer = TiffRowWriter::<U>::create(path, w, h, geo)?;
        for y0 in (0..h).step_by(256) {
            let band = grid.read(Region { x0: 0, y0, x1: w, y1: (y0 + 256).min(h) })?;
            writer.write_rows(band.mapv(&convert).view())?;
        }
        writer.finish()
    })?;
    Ok(())
}
