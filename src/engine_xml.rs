//! This project's own XML configuration, `<DeepsimMatch>`: one file holding a complete run,
//! including what MicMac's `ParamMICMAC` has no tag for (classical P1/P2 SGM, census, the
//! runtime and its execution provider, tiles, post-processing). `deepsim match FILE.xml` runs
//! either flavour, told apart by the root element. Documented in docs/engine-xml.md, with
//! `xml/deepsim_example.xml`.
//!
//! Like the MicMac reader, every element is checked: an unknown tag or a bad value is an error
//! naming the file, the line, the element path and the value. Paths are relative to the file's
//! folder.

use crate::error::{Error, Result};
use crate::micmac::{parse_xml, Element};
use crate::pipeline::{Fill, LrCheckMode, MatchConfig, Regularizer, Step};
use crate::pyramid::Propagation;
use crate::runtime::Device;
use crate::sgm::lines::{LineParams, MaskLabel};
use crate::sgm::{Penalty, SgmParams};
use crate::similarity::{parse_window, Head};
use crate::tiles::TileParams;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The root element of this project's files.
pub const ROOT: &str = "DeepsimMatch";

/// A similarity a step asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackendChoice {
    /// Census over a `width × height` window.
    Census {
        /// Window width.
        width: usize,
        /// Window height.
        height: usize,
    },
    /// NCC over a square window.
    Ncc {
        /// Window side.
        window: usize,
    },
    /// A run-time plugin (docs/plugins.md).
    Plugin {
        /// The shared library.
        path: PathBuf,
        /// The options string handed to the plugin.
        options: String,
    },
    /// A learned model bundle.
    Model {
        /// Bundle folder.
        dir: PathBuf,
        /// The head (default: MLP when the bundle has one).
        head: Option<Head>,
    },
}

/// Which runtime executes the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeChoice {
    /// tract, pure Rust, CPU.
    Tract,
    /// ONNX Runtime.
    Ort,
}

/// `<Runtime>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimeSpec {
    /// `<Engine>`.
    pub engine: RuntimeChoice,
    /// `<Device>`.
    pub device: Device,
    /// `<DeviceId>`.
    pub device_id: i32,
    /// `<TensorRtCache>`.
    pub trt_cache: Option<PathBuf>,
    /// `<TensorRtFp16>`.
    pub trt_fp16: bool,
}

/// A `<DeepsimMatch>` file.
#[derive(Debug, Clone, Serialize)]
pub struct EngineFile {
    /// The file.
    pub path: PathBuf,
    /// `<Left>`, `<Right>`.
    pub left: PathBuf,
    /// Right image.
    pub right: PathBuf,
    /// `<LeftMask>`, `<RightMask>`.
    pub left_mask: Option<PathBuf>,
    /// Right mask.
    pub right_mask: Option<PathBuf>,
    /// `<NoData>`.
    pub nodata: Option<f32>,
    /// `<Output>`.
    pub out: PathBuf,
    /// `<Scratch>`: where whole-level rasters go when they pass the memory budget (default: the
    /// output folder).
    pub scratch: Option<PathBuf>,
    /// `<Runtime>`.
    pub runtime: RuntimeSpec,
    /// The distinct similarities; `config.steps[i].similarity` indexes this list.
    pub backends: Vec<BackendChoice>,
    /// Everything else.
    pub config: MatchConfig,
    /// `<Confidence>`: also write the confidence products (ambiguity, risks, disparity
    /// interval, validity bits), as `--confidence`.
    pub confidence: bool,
}

/// An element with its path, for checks and messages.
struct Node<'a> {
    element: &'a Element,
    at: String,
    file: &'a Path,
}

impl<'a> Node<'a> {
    fn error(&self, what: String) -> Error {
        Error::invalid_input(format!("{}:{}: <{}>: {what}", self.file.display(), self.element.line, self.at))
    }

    /// Fails on a child not in `allowed`, naming the allowed ones, and on a child given twice
    /// (except `<Step>`, the one element that repeats).
    fn only(&self, allowed: &[&str]) -> Result<()> {
        for (i, c) in self.element.children.iter().enumerate() {
            if c.name != "Step"
                && let Some(first) = self.element.children[..i].iter().find(|f| f.name == c.name)
            {
                return Err(self
                    .child_node(c)
                    .error(format!("given twice (first at line {}): keep one", first.line)));
            }
            if !allowed.contains(&c.name.as_str()) {
                return Err(self.child_node(c).error(format!(
                    "not a tag of <{}> (value '{}'); expected one of: {}",
                    self.at,
                    c.text,
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn child_node(&self, c: &'a Element) -> Node<'a> {
        Node { element: c, at: format!("{}/{}", self.at, c.name), file: self.file }
    }

    fn child(&self, name: &str) -> Option<Node<'a>> {
        self.element.child(name).map(|c| self.child_node(c))
    }

    fn required(&self, name: &str) -> Result<Node<'a>> {
        self.child(name).ok_or_else(|| self.error(format!("no <{name}>")))
    }

    fn text(&self) -> &'a str {
        &self.element.text
    }

    fn parse<T: std::str::FromStr>(&self, expected: &str) -> Result<T> {
        self.text().parse().map_err(|_| self.error(format!("'{}' is not {expected}", self.text())))
    }

    fn boolean(&self) -> Result<bool> {
        match self.text() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(self.error(format!("'{other}' is not a boolean (true or false)"))),
        }
    }

    fn opt<T: std::str::FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>> {
        self.child(name).map(|c| c.parse(expected)).transpose()
    }

    fn choice<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T> {
        choices.iter().find(|(n, _)| *n == self.text()).map(|(_, v)| *v).ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            self.error(format!("'{}': choose one of {}", self.text(), names.join(", ")))
        })
    }
}

impl EngineFile {
    /// Reads and checks a `<DeepsimMatch>` file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::micmac::read_xml_text(path)?;
        let root = parse_xml(&text, path)?;
        if root.name != ROOT {
            return Err(Error::invalid_input(format!(
                "{}: the root element is <{}>; this project's files start with <{ROOT}> (MicMac's with <ParamMICMAC>)",
                path.display(),
                root.name
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &str| base.join(p);
        let r = Node { element: &root, at: ROOT.into(), file: path };
        r.only(&[
            "Left", "Right", "LeftMask", "RightMask", "NoData", "Output", "DisparityMin", "DisparityMax", "Runtime", "Tiles",
            "MemoryBudget", "Scratch", "Step", "SubPixel", "LrCheck", "LrCheckMode", "Median", "MinRegion", "Fill", "Confidence",
        ])?;
        let runtime = read_runtime(&r, &rel)?;
        let tiles = match r.child("Tiles") {
            None => Some(TileParams { size_px: 2048, overlap_px: 64 }),
            Some(t) => {
                t.only(&["Size", "Overlap"])?;
                let size: usize = t.opt("Size", "a number of pixels")?.unwrap_or(2048);
                let overlap = t.opt("Overlap", "a number of pixels")?.unwrap_or(64);
                (size > 0).then_some(TileParams { size_px: size, overlap_px: overlap })
            }
        };
        let mut backends = Vec::new();
        let mut steps = Vec::new();
        for s in root.children_named("Step") {
            steps.push(read_step(&r.child_node(s), &rel, &mut backends)?);
        }
        if steps.is_empty() {
            return Err(r.error("no <Step>: give at least one (the last one at <Zoom> 1)".into()));
        }
        let lr_check: f32 = r.opt("LrCheck", "a tolerance in pixels (negative: off)")?.unwrap_or(1.0);
        if !lr_check.is_finite() {
            let node = r.required("LrCheck")?;
            return Err(node.error(format!("'{}': give a tolerance in pixels (e.g. 1), or a negative number to turn the check off", node.text())));
        }
        let config = MatchConfig {
            disp_min: r.required("DisparityMin")?.parse("an integer")?,
            disp_max: r.required("DisparityMax")?.parse("an integer")?,
            steps,
            subpixel: r.child("SubPixel").map(|c| c.boolean()).transpose()?.unwrap_or(true),
            lr_check_px: (lr_check >= 0.0).then_some(lr_check),
            lr_check_mode: match r.child("LrCheckMode") {
                Some(m) => m.choice(&[("fast", LrCheckMode::Fast), ("accurate", LrCheckMode::Accurate)])?,
                None => LrCheckMode::default(),
            },
            median: r.child("Median").map(|c| c.boolean()).transpose()?.unwrap_or(true),
            min_region_px: r.opt("MinRegion", "a number of pixels")?.unwrap_or(50),
            fill: match r.child("Fill") {
                Some(f) => f.choice(&[("none", Fill::None), ("background", Fill::Background)])?,
                None => Fill::None,
            },
            keep_steps: false,
            tiles,
            memory_budget: match r.child("MemoryBudget") {
                None => Some(crate::pipeline::default_budget()),
                Some(b) => Some(crate::pipeline::parse_size(b.text()).ok_or_else(|| {
                    b.error(format!("'{}' is not a memory size (e.g. 4G, 512M) of at most 1 PiB", b.text()))
                })?),
            },
        };
        Ok(EngineFile {
            path: path.to_path_buf(),
            left: rel(r.required("Left")?.text()),
            right: rel(r.required("Right")?.text()),
            left_mask: r.child("LeftMask").map(|c| rel(c.text())),
            right_mask: r.child("RightMask").map(|c| rel(c.text())),
            nodata: r.opt("NoData", "a number")?,
            out: rel(r.required("Output")?.text()),
            scratch: r.child("Scratch").map(|c| rel(c.text())),
            runtime,
            backends,
            config,
            confidence: r.child("Confidence").map(|c| c.boolean()).transpose()?.unwrap_or(false),
        })
    }
}

fn read_runtime(r: &Node<'_>, rel: &dyn Fn(&str) -> PathBuf) -> Result<RuntimeSpec> {
    let mut spec = RuntimeSpec { engine: RuntimeChoice::Tract, device: Device::Cpu, device_id: 0, trt_cache: None, trt_fp16: false };
    if let Some(rt) = r.child("Runtime") {
        rt.only(&["Engine", "Device", "DeviceId", "TensorRtCache", "TensorRtFp16"])?;
        if let Some(e) = rt.child("Engine") {
            spec.engine = e.choice(&[("tract", RuntimeChoice::Tract), ("ort", RuntimeChoice::Ort)])?;
        }
        if let Some(d) = rt.child("Device") {
            spec.device = d.choice(&[("cpu", Device::Cpu), ("cuda", Device::Cuda), ("tensorrt", Device::Tensorrt), ("auto", Device::Auto)])?;
            if spec.engine == RuntimeChoice::Tract && spec.device != Device::Cpu {
                return Err(d.error(format!("'{}' needs <Engine>ort</Engine>: tract runs on the CPU only", d.text())));
            }
        }
        spec.device_id = rt.opt("DeviceId", "a GPU index")?.unwrap_or(0);
        spec.trt_cache = rt.child("TensorRtCache").map(|c| rel(c.text()));
        spec.trt_fp16 = rt.child("TensorRtFp16").map(|c| c.boolean()).transpose()?.unwrap_or(false);
    }
    Ok(spec)
}

fn read_step(s: &Node<'_>, rel: &dyn Fn(&str) -> PathBuf, backends: &mut Vec<BackendChoice>) -> Result<Step> {
    s.only(&["Zoom", "Census", "Ncc", "Model", "Plugin", "Sgm", "MicMac", "NoRegularizer", "DilateAlti", "DilatePlani", "UncertainFullRange"])?;
    let zoom_node = s.required("Zoom")?;
    let zoom: u32 = zoom_node.parse("a power of two (1, 2, 4, …)")?;
    if !zoom.is_power_of_two() {
        return Err(zoom_node.error(format!("{zoom}: the zoom (image reduction) must be a power of two: 1, 2, 4, …")));
    }
    let similarities: Vec<Node<'_>> = ["Census", "Ncc", "Model", "Plugin"].iter().filter_map(|n| s.child(n)).collect();
    if similarities.len() != 1 {
        return Err(s.error("give exactly one similarity: <Census>, <Ncc>, <Model> or <Plugin>".into()));
    }
    let sim = &similarities[0];
    let choice = match sim.element.name.as_str() {
        "Census" => {
            sim.only(&["Window"])?;
            let spec = sim.child("Window").map(|w| w.text().to_string()).unwrap_or_else(|| "7x7".into());
            let (width, height) = parse_window(&spec).ok_or_else(|| sim.error(format!("window '{spec}': expected WxH or N, e.g. 7x7")))?;
            // Checked here, so that the message names the file, the line and the element.
            crate::similarity::Census::new(width, height).map_err(|e| sim.error(e.message().to_string()))?;
            BackendChoice::Census { width, height }
        }
        "Ncc" => {
            sim.only(&["Window"])?;
            let window = sim.opt("Window", "an odd window side, e.g. 7")?.unwrap_or(7);
            crate::similarity::Ncc::new(window).map_err(|e| sim.error(e.message().to_string()))?;
            BackendChoice::Ncc { window }
        }
        "Plugin" => {
            sim.only(&["Path", "Options"])?;
            let options = sim.child("Options").map(|o| o.text().to_string()).unwrap_or_default();
            BackendChoice::Plugin { path: rel(sim.required("Path")?.text()), options }
        }
        _ => {
            sim.only(&["Dir", "Head"])?;
            let head = match sim.child("Head") {
                Some(h) => Some(h.choice(&[("mlp", Head::Mlp), ("cosine", Head::Cosine)])?),
                None => None,
            };
            BackendChoice::Model { dir: rel(sim.required("Dir")?.text()), head }
        }
    };
    let census = matches!(choice, BackendChoice::Census { .. });
    let similarity = match backends.iter().position(|b| *b == choice) {
        Some(k) => k,
        None => {
            backends.push(choice);
            backends.len() - 1
        }
    };
    let regularizers: Vec<Node<'_>> = ["Sgm", "MicMac", "NoRegularizer"].iter().filter_map(|n| s.child(n)).collect();
    if regularizers.len() > 1 {
        return Err(s.error("give at most one of <Sgm>, <MicMac>, <NoRegularizer>".into()));
    }
    // The command line's defaults: census steps get the penalties chosen for census.
    let (p1, p2) = if census { crate::sgm::CENSUS_PENALTIES } else { crate::sgm::DEFAULT_PENALTIES };
    let regularizer = match regularizers.first() {
        None => Regularizer::Sgm(SgmParams { directions: 8, penalty: Penalty::Classic { p1, p2, p2_adapt: None } }),
        Some(g) if g.element.name == "Sgm" => {
            g.only(&["Directions", "P1", "P2", "P2Adapt"])?;
            let params = SgmParams {
                directions: g.opt("Directions", "4, 8 or 16")?.unwrap_or(8),
                penalty: Penalty::Classic {
                    p1: g.opt("P1", "a number")?.unwrap_or(p1),
                    p2: g.opt("P2", "a number")?.unwrap_or(p2),
                    p2_adapt: g.opt("P2Adapt", "a number")?,
                },
            };
            params.validate().map_err(|e| g.error(e.message().to_string()))?;
            Regularizer::Sgm(params)
        }
        Some(g) if g.element.name == "MicMac" => {
            g.only(&["NbDir", "ZReg", "MaxSlope", "DefCor", "CostTrans"])?;
            let def_cor: Option<f32> = g.opt("DefCor", "a correlation")?;
            let cost_trans: f32 = g.opt("CostTrans", "a number")?.unwrap_or(1.0);
            let params = LineParams {
                orientations: g.opt("NbDir", "a number of line orientations")?.unwrap_or(7),
                weight: g.opt("ZReg", "a number")?.unwrap_or(0.05),
                max_slope: g.opt("MaxSlope", "a number")?.unwrap_or(3.0),
                mask: def_cor.map(|c| MaskLabel { cost: 1.0 - c, transition: cost_trans }),
            };
            params.validate().map_err(|e| g.error(e.message().to_string()))?;
            Regularizer::Micmac(params)
        }
        Some(g) => {
            g.only(&[])?;
            Regularizer::None
        }
    };
    Ok(Step {
        level: zoom.trailing_zeros(),
        similarity,
        regularizer,
        propagation: Propagation {
            dilate_alti_px: s.opt("DilateAlti", "a number of pixels")?.unwrap_or(4),
            dilate_plani_px: s.opt("DilatePlani", "a number of pixels")?.unwrap_or(2),
            uncertain_full_range: s.opt("UncertainFullRange", "true or false")?.unwrap_or(true),
        },
    })
}
