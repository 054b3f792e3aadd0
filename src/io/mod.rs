//! Reading and writing rasters: input images (PNG, TIFF), ground truth (PFM, TIFF, NPY),
//! and the engine's outputs (float TIFF, colour-mapped PNG previews), always written
//! atomically so that an interrupted run never leaves a file that looks complete.

mod atomic;
mod colormap;
mod npy;
mod pfm;
mod png_io;
mod raster;
mod tiff_io;

pub use atomic::{AtomicFile, OutputSet};
pub use colormap::{disparity_preview_rgb, write_preview_png};
pub use raster::{read_disparity, read_image, read_mask, Raster, ReadOptions, SampleFormat};
pub use tiff_io::{read_geotags, write_tiff_f32, write_tiff_f32_geo, write_tiff_u8, write_tiff_u8_geo, GeoTags};
pub use npy::{read_npy, read_npy_array};
pub use pfm::read_pfm;
