//! NumPy arrays in, the CLI's job run on them, arrays out.
//!
//! An array is read as a file holding the same samples would be (`deepsim::io::read_image`):
//! its dtype is the sample format (uint8 maps to [0, 1] by /255, uint16 and float32 by the
//! 2nd–98th percentile stretch of the valid samples), NaN and `nodata` samples are invalid, and
//! the mask (non-zero = valid) is applied after the stretch range is taken, as
//! `pipeline::InputImage::load` does. Hence the same [0, 1] images, bit for bit, as a run on
//! the files.

use deepsim::io::{Raster, SampleFormat, map_to_unit};
use deepsim::pipeline::{self, MatchConfig, NoProgress, Pair};
use deepsim::similarity::Similarity;
use ndarray::{Array2, Zip};
use numpy::PyReadonlyArray2;
use pyo3::prelude::*;
use serde_json::{Value, json};

/// One input image copied out of Python: its samples and their validity, and the mask.
pub struct Input {
    name: &'static str,
    raster: Raster,
    mask: Option<Array2<bool>>,
}

/// Copies `array` (2-D uint8, uint16 or float32) and `mask` (2-D bool, same shape) out of
/// Python; samples equal to `nodata` and NaN samples are invalid.
pub fn input(
    name: &'static str,
    array: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    nodata: Option<f32>,
) -> anyhow::Result<Input> {
    let (values, format) = if let Ok(a) = array.extract::<PyReadonlyArray2<u8>>() {
        (a.as_array().mapv(f32::from), SampleFormat::U8)
    } else if let Ok(a) = array.extract::<PyReadonlyArray2<u16>>() {
        (a.as_array().mapv(f32::from), SampleFormat::U16)
    } else if let Ok(a) = array.extract::<PyReadonlyArray2<f32>>() {
        (a.as_array().to_owned(), SampleFormat::F32)
    } else {
        anyhow::bail!(crate::errors::InvalidInput(format!(
            "{name}: expected a 2-D numpy array of uint8, uint16 or float32 (one grey band), got {}",
            describe(array)
        )));
    };
    let valid = values.mapv(|v| !v.is_nan() && Some(v) != nodata);
    let mask = match mask {
        None => None,
        Some(m) => {
            let m = m.extract::<PyReadonlyArray2<bool>>().map_err(|_| {
                crate::errors::InvalidInput(format!(
                    "{name}_mask: expected a 2-D array (non-zero = valid), got {}",
                    describe(m)
                ))
            })?;
            let m = m.as_array().to_owned();
            if m.dim() != values.dim() {
                anyhow::bail!(crate::errors::InvalidInput(format!(
                    "{name}_mask is {}×{} (rows × columns) but {name} is {}×{}: give a mask of the image's shape",
                    m.nrows(),
                    m.ncols(),
                    values.nrows(),
                    values.ncols()
                )));
            }
            Some(m)
        }
    };
    Ok(Input {
        name,
        raster: Raster {
            values,
            valid,
            format,
        },
        mask,
    })
}

/// `type(x)` and, for an array, its dtype and shape, for error messages.
fn describe(x: &Bound<'_, PyAny>) -> String {
    let kind = x
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    match (x.getattr("dtype"), x.getattr("shape")) {
        (Ok(dtype), Ok(shape)) => format!("{kind} of dtype {dtype} and shape {shape}"),
        _ => kind,
    }
}

impl Input {
    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.raster.width(), self.raster.height())
    }

    /// The image in [0, 1] and its validity (file validity and mask), and its report entry.
    fn into_unit(self) -> anyhow::Result<(Array2<f32>, Array2<bool>, Value)> {
        let (lo, hi) = self.raster.unit_range();
        let mut valid = self.raster.valid;
        if let Some(mask) = &self.mask {
            Zip::from(&mut valid).and(mask).for_each(|v, &m| *v &= m);
        }
        let valid_pixels = valid.iter().filter(|&&v| v).count();
        if valid_pixels == 0 {
            anyhow::bail!(crate::errors::InvalidInput(format!(
                "{} has no valid pixel (mask, nodata or NaN everywhere)",
                self.name
            )));
        }
        let unit = map_to_unit(self.raster.values.view(), valid.view(), lo, hi);
        let report = json!({
            "array": self.name,
            "width": unit.ncols(),
            "height": unit.nrows(),
            "sample_format": self.raster.format,
            "valid_pixels": valid_pixels,
            "mask": self.mask.is_some(),
        });
        Ok((unit, valid, report))
    }
}

/// Both images in [0, 1] with their validity.
pub fn unit_pair(left: Input, right: Input) -> anyhow::Result<Pair> {
    Ok(unit_pair_reported(left, right)?.0)
}

fn unit_pair_reported(left: Input, right: Input) -> anyhow::Result<(Pair, [Value; 2])> {
    let (left, left_valid, left_report) = left.into_unit()?;
    let (right, right_valid, right_report) = right.into_unit()?;
    Ok((
        Pair {
            left,
            right,
            left_valid,
            right_valid,
        },
        [left_report, right_report],
    ))
}

/// What runs without the GIL: the CLI's job with its configuration resolved for the pair.
pub struct Run {
    /// The configuration `deepsim match` resolved for the pair's sizes.
    pub config: MatchConfig,
    /// Backend 0 the classical one, backend 1 the learned one when there is a model.
    pub backends: Vec<Box<dyn Similarity>>,
    /// The models, for the report.
    pub models: Vec<Value>,
    /// The plugin, for the report.
    pub plugin: Option<Value>,
    /// `--nodata`, for the report.
    pub nodata: Option<f32>,
}

/// Runs the CLI's job on the arrays: disparity (NaN = no value), confidence and the report,
/// with run.json's fields (inputs described as arrays, no output files).
pub fn run_job(
    job: Run,
    left: Input,
    right: Input,
) -> anyhow::Result<(Array2<f32>, Array2<f32>, Value)> {
    let (pair, [left_report, right_report]) = unit_pair_reported(left, right)?;
    let size = |a: &Array2<f32>| (a.ncols(), a.nrows());
    let (size_left, size_right) = (size(&pair.left), size(&pair.right));
    let config = job.config;
    let backends: Vec<&dyn Similarity> = job.backends.iter().map(|b| b.as_ref()).collect();
    config.validate_sizes(size_left, size_right, backends.len())?;
    let output = pipeline::run(&pair, &config, &backends, &NoProgress)?;

    let (w, h) = size_left;
    let with_value = output.disparity.iter().filter(|d| !d.is_nan()).count();
    let facts = crate::cli::match_cmd::RunFacts {
        reports: &output.reports,
        times: &output.times,
        lr_rejected: output.lr_rejected,
        small_regions_removed: output.small_regions_removed,
        filled: output.filled,
        density: with_value as f64 / (w * h) as f64,
    };
    let mut report = crate::cli::match_cmd::run_report(&facts, &config, &job.models, &job.plugin);
    // Inputs described as arrays; no command line, georeferencing or output files.
    report["command"] = Value::Null;
    report["inputs"] = json!({ "left": left_report, "right": right_report, "nodata": job.nodata });
    report["georeferenced"] = json!(false);
    report["storage"] = json!("memory");
    report["outputs"] = Value::Null;
    Ok((output.disparity, output.confidence, report))
}
