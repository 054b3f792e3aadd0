//! Reading and writing rasters: input images (PNG, TIFF), ground truth (PFM, TIFF, NPY),
//! and the engine's outputs (float TIFF, colour-mapped PNG previews), always written
//! atomically so that an interrupted run never leaves a file that looks complete.
//!
//! Large images stream: [`open_rows`] reads an input by bands of rows (TIFF decodes only the
//! strips or tiles it needs) and [`TiffRowWriter`] writes an output strip by strip.

mod atomic;
mod colormap;
pub(crate) mod limits;
mod npy;
mod out_dir;
mod pfm;
mod png_io;
mod png_rows;
mod quantile;
mod raster;
mod stream;
mod tiff_io;
mod tiff_rows;
mod tiff_writer;

pub use atomic::{create_file, same_file, AtomicFile, OutputSet};
pub use out_dir::{OutputFolder, LOCK_FILE};
pub use limits::{decode_limit, format_bytes, set_decode_limit};
pub use colormap::{disparity_preview_rgb, write_preview_png};
pub use raster::{map_to_unit, read_disparity, read_image, read_mask, Raster, ReadOptions, SampleFormat};
pub use stream::{open_mask_rows, open_rows, unit_range, RasterRows, RowReader};
pub use tiff_io::{read_geotags, GeoTags};
pub use tiff_writer::{
    write_tiff_f32, write_tiff_f32_geo, write_tiff_u8, write_tiff_u8_geo, TiffRowWriter, TiffSample, ROWS_PER_STRIP,
};
pub use npy::{read_npy, read_npy_array};
pub use pfm::read_pfm;
