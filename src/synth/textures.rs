//! Texture sources given by the user: `--texture FILE` (repeatable) and `--texture-dir DIR`.
//!
//! Procedural materials never have the statistics of real surfaces (lichen on a membrane
//! roof, worn paving, a crown's leaves), so crops of real images, e.g. the left images of
//! the user's own unlabeled pairs, stand in for some of them. Every source is read once with
//! the engine's readers, converted to grey in [0, 1], and checked; all errors name the file
//! and the fix before anything is generated. The files of a folder are taken in name order,
//! so pair `i` depends only on the seed, `i`, the options and the files' contents.

use super::appearance::Texture;
use super::config::SynthConfig;
use crate::error::{Error, Result};
use crate::io::{read_image, ReadOptions};
use std::path::{Path, PathBuf};

/// Smallest side (px) of a texture image: a crop must hold some structure.
pub const MIN_SIDE_PX: usize = 64;
/// Larger images keep only their central window of this side (px), to bound memory
/// (4 bytes per texel).
pub const MAX_SIDE_PX: usize = 4096;

/// The image files of `dir` that are used as textures: `.png`, `.tif`, `.tiff` (any case),
/// sorted by name.
pub fn texture_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::invalid_parameter(format!("--texture-dir {}: cannot list the folder ({e}); give a folder of PNG or TIFF images", dir.display()))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        if path.is_file() && matches!(ext.as_str(), "png" | "tif" | "tiff") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::invalid_parameter(format!(
            "--texture-dir {}: no PNG or TIFF image in the folder; put images there (e.g. the left images of real pairs) or drop the option",
            dir.display()
        )));
    }
    Ok(files)
}

/// Reads every texture source of `config`: the `--texture` files, then those of
/// `--texture-dir`.
pub fn load(config: &SynthConfig) -> Result<Vec<Texture>> {
    let mut sources: Vec<(&str, PathBuf)> = config.textures.iter().map(|p| ("--texture", p.clone())).collect();
    if let Some(dir) = &config.texture_dir {
        sources.extend(texture_files(dir)?.into_iter().map(|p| ("--texture-dir", p)));
    }
    sources.iter().map(|(option, path)| read_one(option, path)).collect()
}

fn read_one(option: &str, path: &Path) -> Result<Texture> {
    let raster = read_image(path, &ReadOptions::default())
        .map_err(|e| Error::invalid_input(format!("{option}: cannot use {} as a texture: {}", path.display(), e.message())))?;
    let (w, h) = (raster.width(), raster.height());
    if w < MIN_SIDE_PX || h < MIN_SIDE_PX {
        return Err(Error::invalid_input(format!(
            "{option} {}: {w}×{h} px is too small to be a texture; use at least {MIN_SIDE_PX}×{MIN_SIDE_PX}",
            path.display()
        )));
    }
    let unit = raster.to_unit();
    let (cw, ch) = (w.min(MAX_SIDE_PX), h.min(MAX_SIDE_PX));
    let (x0, y0) = ((w - cw) / 2, (h - ch) / 2);
    let window = unit.slice(ndarray::s![y0..y0 + ch, x0..x0 + cw]);
    let mut texture = Texture::new(cw, ch, window.iter().copied().collect());
    texture.source = path.display().to_string();
    Ok(texture)
}
