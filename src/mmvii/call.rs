//! MicMac's call syntax: seven positional arguments, then `Name=value` options in any order;
//! points as `[x,y]`, boxes as `[x0,y0,x1,y1]` (x1, y1 exclusive), as MicMac's `ToString` writes
//! them. Everything is checked here, with messages naming the argument, the value and the
//! expected form; nothing downstream sees raw text.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// The MMVII command this module implements.
pub const COMMAND: &str = "DM4FillCubeCost";

/// The positional arguments, in order, with what each one is.
const POSITIONALS: [(&str, &str); 7] = [
    ("Im1", "the first image, e.g. ./Pyram/Im1.tifDeZoom2.tif"),
    ("Im2", "the second image"),
    ("Model", "MMVIICorrel or MVCNNCorrel"),
    ("P0", "the tile origin in Im1, e.g. [0,0]"),
    ("Box1", "the box read in Im1, e.g. [0,0,195,250]"),
    ("Box2", "the box read in Im2, e.g. [0,0,207,250]"),
    ("Post", "the suffix of ZMin_<Post>.tif, ZMax_<Post>.tif and MatchingCube_<Post>.data"),
];

/// The named options MicMac may pass.
const NAMED: [&str; 7] = ["StepZ", "CNNParams", "CNNArch", "UseCuda", "UsePredicNet", "SzW", "ModCmp"];

/// The cost model of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ModelName {
    /// `MMVIICorrel`: normalised cross-correlation.
    MmviiCorrel,
    /// `MVCNNCorrel`: a learned similarity (ONNX bundle).
    MvcnnCorrel,
}

impl ModelName {
    /// MicMac's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelName::MmviiCorrel => "MMVIICorrel",
            ModelName::MvcnnCorrel => "MVCNNCorrel",
        }
    }
}

/// A box of image pixels, `x0 ≤ x < x1`, `y0 ≤ y < y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PixelBox {
    /// First column.
    pub x0: i64,
    /// First row.
    pub y0: i64,
    /// Column after the last.
    pub x1: i64,
    /// Row after the last.
    pub y1: i64,
}

impl std::fmt::Display for PixelBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{},{},{},{}]", self.x0, self.y0, self.x1, self.y1)
    }
}

/// A parsed and checked `DM4FillCubeCost` call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Call {
    /// First image (relative to the working folder unless absolute).
    pub im1: PathBuf,
    /// Second image.
    pub im2: PathBuf,
    /// The cost model.
    pub model: ModelName,
    /// Image-1 coordinates of the tile's first pixel.
    pub p0: (i64, i64),
    /// The part of image 1 to load.
    pub box1: PixelBox,
    /// The part of image 2 to load.
    pub box2: PixelBox,
    /// Suffix of the Z files and of the cube.
    pub post: String,
    /// Image-2 columns per Z index (`StepZ`, default 1).
    pub step_z: f64,
    /// `CNNParams`: folder and regular expression over file names of the ONNX models.
    pub cnn_params: Option<String>,
    /// `CNNArch`: MicMac's architecture name (informative: the ONNX files carry their own).
    pub cnn_arch: Option<String>,
    /// `UseCuda`: run the networks on the GPU.
    pub use_cuda: bool,
    /// `UsePredicNet`: the decision MLP instead of the cosine.
    pub use_predic_net: bool,
    /// `SzW`: NCC window half-size (default 3, a 7 × 7 window).
    pub szw: usize,
    /// `ModCmp`: a second model to compare with (accepted; deepsim writes no comparison).
    pub mod_cmp: Option<String>,
}

/// Largest accepted `SzW` (a 101 × 101 window).
const MAX_SZW: usize = 50;

impl Call {
    /// Parses MicMac's argument list, starting with the command name (`DM4FillCubeCost`).
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Call> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let usage = "usage: DM4FillCubeCost Im1 Im2 Model P0 Box1 Box2 Post [StepZ=] [CNNParams=DIR/REGEX] \
                     [CNNArch=] [UseCuda=0|1] [UsePredicNet=0|1] [SzW=] [ModCmp=]";
        match args.first() {
            None => return Err(Error::invalid_parameter(format!("no MMVII command given; {usage}"))),
            Some(&c) if c == COMMAND => {}
            Some(c) => {
                return Err(Error::invalid_parameter(format!(
                    "MMVII command '{c}' is not provided by deepsim, which implements only {COMMAND} \
                     (MicMac's external cost cube); for other MMVII commands install MicMac's MMVII \
                     and put it before deepsim's launcher on PATH"
                )));
            }
        }
        let mut positional = Vec::new();
        let mut named: Vec<(&str, &str)> = Vec::new();
        for &arg in &args[1..] {
            match named_arg(arg) {
                Some((name, value)) => {
                    if !NAMED.contains(&name) {
                        return Err(Error::invalid_parameter(format!(
                            "unknown option '{arg}'; {COMMAND} accepts {}",
                            NAMED.map(|n| format!("{n}=")).join(", ")
                        )));
                    }
                    if named.iter().any(|(n, _)| *n == name) {
                        return Err(Error::invalid_parameter(format!("option {name}= given twice")));
                    }
                    named.push((name, value));
                }
                None => positional.push(arg),
            }
        }
        if positional.len() < POSITIONALS.len() {
            let (name, what) = POSITIONALS[positional.len()];
            return Err(Error::invalid_parameter(format!(
                "missing positional argument {} ({name}: {what}); got {} of 7; {usage}",
                positional.len() + 1,
                positional.len()
            )));
        }
        if positional.len() > POSITIONALS.len() {
            return Err(Error::invalid_parameter(format!(
                "unexpected argument '{}' after the 7 positional arguments (options are Name=value); {usage}",
                positional[POSITIONALS.len()]
            )));
        }
        let model = match positional[2] {
            "MMVIICorrel" => ModelName::MmviiCorrel,
            "MVCNNCorrel" => ModelName::MvcnnCorrel,
            other => {
                return Err(Error::invalid_parameter(format!(
                    "unknown model '{other}' (argument 3, Model); deepsim implements MMVIICorrel \
                     (normalised cross-correlation) and MVCNNCorrel (learned, ONNX); MMVII's statistical \
                     models (.dmp) and ExternCorrel are not supported"
                )));
            }
        };
        let p0 = parse_ints(positional[3], "P0", 2, "[x,y], e.g. [0,0]")?;
        let box1 = parse_box(positional[4], "Box1")?;
        let box2 = parse_box(positional[5], "Box2")?;
        let post = positional[6];
        if post.is_empty() || post.contains(['/', '\\']) || post == "." || post == ".." {
            return Err(Error::invalid_parameter(format!(
                "Post '{post}' (argument 7): must be a plain name part, e.g. MMV1Pid21397, as it is used in file names"
            )));
        }
        let mut call = Call {
            im1: PathBuf::from(positional[0]),
            im2: PathBuf::from(positional[1]),
            model,
            p0: (p0[0], p0[1]),
            box1,
            box2,
            post: post.to_string(),
            step_z: 1.0,
            cnn_params: None,
            cnn_arch: None,
            use_cuda: false,
            use_predic_net: false,
            szw: 3,
            mod_cmp: None,
        };
        for (name, value) in named {
            match name {
                "StepZ" => {
                    call.step_z = value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v > 0.0 && *v <= 1000.0)
                        .ok_or_else(|| {
                            Error::invalid_parameter(format!(
                                "StepZ={value}: expected a positive number of pixels per Z step, e.g. StepZ=1.000000 or StepZ=0.5"
                            ))
                        })?;
                }
                "CNNParams" => call.cnn_params = Some(value.to_string()).filter(|v| !v.is_empty()),
                "CNNArch" => call.cnn_arch = Some(value.to_string()).filter(|v| !v.is_empty()),
                "UseCuda" => call.use_cuda = parse_bool(name, value)?,
                "UsePredicNet" => call.use_predic_net = parse_bool(name, value)?,
                "SzW" => {
                    call.szw = value.trim().parse::<usize>().ok().filter(|v| (1..=MAX_SZW).contains(v)).ok_or_else(|| {
                        Error::invalid_parameter(format!(
                            "SzW={value}: expected the window half-size, an integer from 1 to {MAX_SZW} (window 2·SzW+1), e.g. SzW=3"
                        ))
                    })?;
                }
                "ModCmp" => call.mod_cmp = Some(value.to_string()).filter(|v| !v.is_empty()),
                _ => unreachable!("checked against NAMED"),
            }
        }
        if call.model == ModelName::MvcnnCorrel && call.cnn_params.is_none() {
            return Err(Error::invalid_parameter(
                "MVCNNCorrel needs CNNParams=DIR/REGEX (FileModeleParams in the MicMac XML): the folder of \
                 the ONNX models and a regular expression over their file names, e.g. CNNParams=./models/msaff/.*\\.onnx",
            ));
        }
        Ok(call)
    }

    /// `ZMin_<Post>.tif`.
    pub fn zmin_file_name(&self) -> String {
        format!("ZMin_{}.tif", self.post)
    }

    /// `ZMax_<Post>.tif`.
    pub fn zmax_file_name(&self) -> String {
        format!("ZMax_{}.tif", self.post)
    }
}

/// `Name=value` when `arg` starts with an identifier followed by `=`.
fn named_arg(arg: &str) -> Option<(&str, &str)> {
    let (name, value) = arg.split_once('=')?;
    let mut chars = name.chars();
    let ident = chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    ident.then_some((name, value))
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(Error::invalid_parameter(format!("{name}={value}: expected 0 or 1 (or true / false)"))),
    }
}

/// `[a,b,...]` with exactly `n` integers.
fn parse_ints(text: &str, name: &str, n: usize, form: &str) -> Result<Vec<i64>> {
    let bad = || Error::invalid_parameter(format!("{name} '{text}': expected {form}, as MicMac writes it"));
    let inner = text.trim().strip_prefix('[').and_then(|t| t.strip_suffix(']')).ok_or_else(bad)?;
    let values: Vec<i64> = inner.split(',').map(|v| v.trim().parse::<i64>()).collect::<std::result::Result<_, _>>().map_err(|_| bad())?;
    if values.len() != n {
        return Err(bad());
    }
    Ok(values)
}

fn parse_box(text: &str, name: &str) -> Result<PixelBox> {
    let v = parse_ints(text, name, 4, "[x0,y0,x1,y1] (four integers, x1 and y1 exclusive), e.g. [0,0,253,270]")?;
    let bx = PixelBox { x0: v[0], y0: v[1], x1: v[2], y1: v[3] };
    if bx.x0 < 0 || bx.y0 < 0 || bx.x1 <= bx.x0 || bx.y1 <= bx.y0 {
        return Err(Error::invalid_parameter(format!(
            "{name} {bx}: an empty or negative box; expected 0 ≤ x0 < x1 and 0 ≤ y0 < y1"
        )));
    }
    Ok(bx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(extra: &[&str]) -> Result<Call> {
        let mut args = vec![COMMAND, "./Im1.tif", "./Im2.tif", "MMVIICorrel", "[0,0]", "[0,0,253,270]", "[0,0,267,270]", "P"];
        args.extend_from_slice(extra);
        Call::parse(&args)
    }

    #[test]
    fn micmacs_call_parses_with_options_in_any_order() {
        let c = call(&["SzW=2", "StepZ=0.500000", "UseCuda=0"]).unwrap();
        assert_eq!((c.szw, c.step_z, c.use_cuda), (2, 0.5, false));
        assert_eq!(c.box2, PixelBox { x0: 0, y0: 0, x1: 267, y1: 270 });
        assert_eq!(c.zmin_file_name(), "ZMin_P.tif");
        let c = call(&[]).unwrap();
        assert_eq!((c.szw, c.step_z, c.use_predic_net), (3, 1.0, false));
    }

    #[test]
    fn bad_values_name_the_argument() {
        for (extra, expected) in [
            (&["StepZ=0"][..], "StepZ=0"),
            (&["SzW=x"], "SzW=x"),
            (&["UseCuda=yes"], "UseCuda=yes"),
            (&["Foo=1"], "unknown option 'Foo=1'"),
            (&["SzW=1", "SzW=2"], "given twice"),
            (&["extra"], "unexpected argument 'extra'"),
        ] {
            let err = call(extra).unwrap_err().to_string();
            assert!(err.contains(expected), "{extra:?}: {err}");
        }
    }
}
