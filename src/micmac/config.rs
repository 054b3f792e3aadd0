//! The typed reading of a `ParamMICMAC` file.

use super::xml::{parse, Element};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The regularisation algorithm of a step (`AlgoRegul`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Algo {
    /// `eAlgo2PrgDyn`: dynamic programming along several directions.
    PrgDyn2,
    /// `eAlgoDequant`: sub-pixel refinement of the previous step.
    Dequant,
}

/// `ArgMaskAuto`: the occlusion ("automatic mask") state of the regulariser.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MaskAuto {
    /// `ValDefCorrel`: the correlation given to the masked state.
    pub def_cor: f64,
    /// `CostTrans`: the cost of entering or leaving the masked state.
    pub cost_trans: f64,
}

/// `CorrelAdHoc/TypeCAH/ScoreLearnedMMVII`: a learned similarity.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LearnedCost {
    /// `FileModeleCost` (`MVCNNCorrel` for the learned networks).
    pub cost: String,
    /// `FileModeleParams`: a folder and a regular expression over file names.
    pub params: String,
    /// `FileModeleArch`: the architecture name (`...MLP...` selects the MLP head).
    pub arch: String,
}

/// `EtapeMEC/DeepsimPlugin`: a run-time similarity plugin (a tag of this project, not MicMac's).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PluginCost {
    /// `Path`: the plugin's shared library, as written (after `${…}` substitution).
    pub path: String,
    /// `Options`: the string handed to the plugin (empty when absent).
    pub options: String,
}

/// One `EtapeMEC` after inheritance from the first (`DeZoom -1`) step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    /// Line of the `EtapeMEC` element.
    pub line: usize,
    /// `DeZoom`: the image is reduced by this factor (a power of two).
    pub dezoom: u32,
    /// `SzW`: correlation window half-size (window (2·SzW+1)²).
    pub szw: usize,
    /// `Px1Pas`: disparity step in pixels of the step's zoom.
    pub px1_pas: f64,
    /// `Px1DilatAlti`: ± margin around the previous step's disparity.
    pub dilat_alti: i32,
    /// `Px1DilatPlani`: radius of the min/max filter of the intervals.
    pub dilat_plani: usize,
    /// `Px1Regul`: ZReg, the cost per pixel of disparity change.
    pub regul: f64,
    /// `AlgoRegul`.
    pub algo: Algo,
    /// `ModulationProgDyn/EtapeProgDyn/NbDir`: number of line orientations.
    pub nb_dir: usize,
    /// `ModulationProgDyn/Px1PenteMax`.
    pub pente_max: f64,
    /// `ModulationProgDyn/ArgMaskAuto`.
    pub mask_auto: Option<MaskAuto>,
    /// `CorrelAdHoc`: a learned similarity for this step (NCC otherwise).
    pub learned: Option<LearnedCost>,
    /// `DeepsimPlugin`: a plugin similarity for this step (never together with `learned`).
    pub plugin: Option<PluginCost>,
    /// `GenImagesCorrel`: write the correlation image of the step.
    pub gen_images_correl: bool,
}

/// `MasqImageIn/OneMasqueImage`: masks found next to the images by a pattern.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MaskRule {
    /// `PatternSel`: a regular expression over image names.
    pub pattern: String,
    /// `NomMasq`: the mask name, `$1` … replaced by the pattern's groups.
    pub name: String,
    /// `AcceptNonExistingFile`: a missing mask means "all valid".
    pub accept_missing: bool,
}

/// `Section_WorkSpace` tiling.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Tiles {
    /// `SzDalleMin`.
    pub min_px: usize,
    /// `SzDalleMax`.
    pub max_px: usize,
    /// `SzRecouvrtDalles`: overlap between tiles.
    pub overlap_px: usize,
}

/// What a `ParamMICMAC` file asks for.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MicmacConfig {
    /// `Images/Im1`.
    pub im1: String,
    /// `Images/Im2`.
    pub im2: String,
    /// `MasqImageIn`.
    pub masks: Option<MaskRule>,
    /// `IntervParalaxe/Px1IncCalc`: ± search range at full resolution.
    pub px1_inc: f64,
    /// The steps (`EtapeMEC` after the first), in file order.
    pub steps: Vec<Step>,
    /// `TmpMEC` (MicMac's DirMEC): where results go.
    pub dir_mec: String,
    /// `SzDalle*`.
    pub tiles: Tiles,
    /// `ByProcess`: worker processes (threads here).
    pub by_process: Option<usize>,
}

/// A loaded file: its resolved symbols, configuration and the tags that have no effect here.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MicmacFile {
    /// The file.
    pub path: PathBuf,
    /// `DicoLoc` symbols after overrides and substitution.
    pub symbols: BTreeMap<String, String>,
    /// The configuration.
    pub config: MicmacConfig,
    /// Element paths that are recognised but change nothing in this engine.
    pub no_effect: Vec<String>,
}

/// How an element is treated.
#[derive(Clone, Copy, PartialEq)]
enum Known {
    /// Read into the configuration (or a container of such elements).
    Used,
    /// Recognised, without effect here.
    NoEffect,
}

/// Every element path this reader knows, relative to the root.
const KNOWN: &[(&str, Known)] = &[
    ("DicoLoc", Known::Used),
    ("DicoLoc/Symb", Known::Used),
    ("Section_Terrain", Known::Used),
    ("Section_Terrain/IntervParalaxe", Known::Used),
    ("Section_Terrain/IntervParalaxe/Px1IncCalc", Known::Used),
    ("Section_Terrain/IntervParalaxe/Px1Moy", Known::NoEffect),
    ("Section_PriseDeVue", Known::Used),
    ("Section_PriseDeVue/GeomImages", Known::Used),
    ("Section_PriseDeVue/Images", Known::Used),
    ("Section_PriseDeVue/Images/Im1", Known::Used),
    ("Section_PriseDeVue/Images/Im2", Known::Used),
    ("Section_PriseDeVue/MasqImageIn", Known::Used),
    ("Section_PriseDeVue/MasqImageIn/OneMasqueImage", Known::Used),
    ("Section_PriseDeVue/MasqImageIn/OneMasqueImage/PatternSel", Known::Used),
    ("Section_PriseDeVue/MasqImageIn/OneMasqueImage/NomMasq", Known::Used),
    ("Section_PriseDeVue/MasqImageIn/AcceptNonExistingFile", Known::Used),
    ("Section_MEC", Known::Used),
    ("Section_MEC/ChantierFullImage1", Known::NoEffect),
    ("Section_MEC/HighPrecPyrIm", Known::NoEffect),
    ("Section_MEC/TypePyramImage", Known::NoEffect),
    ("Section_MEC/TypePyramImage/Resol", Known::NoEffect),
    ("Section_MEC/TypePyramImage/DivIm", Known::NoEffect),
    ("Section_MEC/TypePyramImage/TypeEl", Known::NoEffect),
    ("Section_MEC/EtapeMEC", Known::Used),
    ("Section_MEC/EtapeMEC/DeZoom", Known::Used),
    ("Section_MEC/EtapeMEC/ModeInterpolation", Known::NoEffect),
    ("Section_MEC/EtapeMEC/SzW", Known::Used),
    ("Section_MEC/EtapeMEC/AlgoRegul", Known::Used),
    ("Section_MEC/EtapeMEC/Px1Pas", Known::Used),
    ("Section_MEC/EtapeMEC/Px1DilatAlti", Known::Used),
    ("Section_MEC/EtapeMEC/Px1DilatPlani", Known::Used),
    ("Section_MEC/EtapeMEC/Px1Regul", Known::Used),
    ("Section_MEC/EtapeMEC/GenImagesCorrel", Known::Used),
    ("Section_MEC/EtapeMEC/SsResolOptim", Known::NoEffect),
    ("Section_MEC/EtapeMEC/CoxRoyUChar", Known::NoEffect),
    ("Section_MEC/EtapeMEC/ModulationProgDyn", Known::Used),
    ("Section_MEC/EtapeMEC/ModulationProgDyn/EtapeProgDyn", Known::Used),
    ("Section_MEC/EtapeMEC/ModulationProgDyn/EtapeProgDyn/ModeAgreg", Known::Used),
    ("Section_MEC/EtapeMEC/ModulationProgDyn/EtapeProgDyn/NbDir", Known::Used),
    ("Section_MEC/EtapeMEC/ModulationProgDyn/Px1PenteMax", Known::Used),
    ("Section_MEC/EtapeMEC/ModulationProgDyn/ArgMaskAuto", Known::Used),
    ("Section_MEC/EtapeMEC/ModulationProgDyn/ArgMaskAuto/ValDefCorrel", Known::Used),
    ("Section_MEC/EtapeMEC/ModulationProgDyn/ArgMaskAuto/CostTrans", Known::Used),
    ("Section_MEC/EtapeMEC/ModulationProgDyn/ArgMaskAuto/ReInjectMask", Known::NoEffect),
    ("Section_MEC/EtapeMEC/CorrelAdHoc", Known::Used),
    ("Section_MEC/EtapeMEC/CorrelAdHoc/SzBlocAH", Known::NoEffect),
    ("Section_MEC/EtapeMEC/CorrelAdHoc/TypeCAH", Known::Used),
    ("Section_MEC/EtapeMEC/CorrelAdHoc/TypeCAH/ScoreLearnedMMVII", Known::Used),
    ("Section_MEC/EtapeMEC/CorrelAdHoc/TypeCAH/ScoreLearnedMMVII/FileModeleCost", Known::Used),
    ("Section_MEC/EtapeMEC/CorrelAdHoc/TypeCAH/ScoreLearnedMMVII/FileModeleParams", Known::Used),
    ("Section_MEC/EtapeMEC/CorrelAdHoc/TypeCAH/ScoreLearnedMMVII/FileModeleArch", Known::Used),
    ("Section_MEC/EtapeMEC/DeepsimPlugin", Known::Used),
    ("Section_MEC/EtapeMEC/DeepsimPlugin/Path", Known::Used),
    ("Section_MEC/EtapeMEC/DeepsimPlugin/Options", Known::Used),
    ("Section_Results", Known::NoEffect),
    ("Section_Results/GeomMNT", Known::NoEffect),
    ("Section_Results/ZoomMakeTA", Known::NoEffect),
    ("Section_Results/GammaVisu", Known::NoEffect),
    ("Section_Results/ZoomVisuLiaison", Known::NoEffect),
    ("Section_WorkSpace", Known::Used),
    ("Section_WorkSpace/WorkDir", Known::NoEffect),
    ("Section_WorkSpace/TmpMEC", Known::Used),
    ("Section_WorkSpace/TmpResult", Known::NoEffect),
    ("Section_WorkSpace/TmpPyr", Known::NoEffect),
    ("Section_WorkSpace/PurgeMECResultBefore", Known::NoEffect),
    ("Section_WorkSpace/ByProcess", Known::Used),
    ("Section_WorkSpace/AvalaibleMemory", Known::NoEffect),
    ("Section_WorkSpace/SzDalleMin", Known::Used),
    ("Section_WorkSpace/SzDalleMax", Known::Used),
    ("Section_WorkSpace/SzRecouvrtDalles", Known::Used),
    ("Section_WorkSpace/SzMinDecomposCalc", Known::NoEffect),
    ("Section_WorkSpace/ComprMasque", Known::NoEffect),
    ("Section_Vrac", Known::NoEffect),
    ("Section_Vrac/DebugMM", Known::NoEffect),
];

/// Reads values of one element, naming it in errors.
struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn error(&self, element: &Element, at: &str, what: String) -> Error {
        Error::invalid_input(format!("{}:{}: <{at}>: {what}", self.path.display(), element.line))
    }

    fn number<T: std::str::FromStr>(&self, element: &Element, at: &str, expected: &str) -> Result<T> {
        element
            .text
            .parse::<T>()
            .map_err(|_| self.error(element, at, format!("'{}' is not {expected}", element.text)))
    }

    fn boolean(&self, element: &Element, at: &str) -> Result<bool> {
        match element.text.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(self.error(element, at, format!("'{other}' is not a boolean (true or false)"))),
        }
    }
}

impl MicmacFile {
    /// Loads `path` with `+Name=value` overrides (given as `(Name, value)`).
    pub fn load(path: &Path, overrides: &[(String, String)]) -> Result<Self> {
        let text = super::xml::read_text(path)?;
        let raw = parse(&text, path)?;
        if raw.name != "ParamMICMAC" {
            return Err(Error::invalid_input(format!(
                "{}: the root element is <{}>; a MicMac parameter file starts with <ParamMICMAC>",
                path.display(),
                raw.name
            )));
        }
        let symbols = symbols(&raw, overrides, path)?;
        let root = substitute(&raw, &symbols, path)?;
        let mut no_effect = Vec::new();
        check_known(&root, "", path, &mut no_effect)?;
        let config = read_config(&root, path)?;
        Ok(MicmacFile { path: path.to_path_buf(), symbols, config, no_effect })
    }
}

/// The longest value a symbol or an element may expand to: `${…}` references can double a
/// value per level (`E2=${E1}${E1}`), so a few lines could otherwise ask for gigabytes.
const MAX_EXPANDED_BYTES: usize = 1 << 20;

/// How deep symbols may refer to symbols (`A=${B}`, `B=${C}`, …).
const MAX_SYMBOL_DEPTH: usize = 64;

/// `DicoLoc` symbols, overridden by the command line, then substituted among themselves.
fn symbols(root: &Element, overrides: &[(String, String)], path: &Path) -> Result<BTreeMap<String, String>> {
    let mut raw: BTreeMap<String, (String, usize)> = BTreeMap::new();
    if let Some(dico) = root.child("DicoLoc") {
        for symb in dico.children_named("Symb") {
            let (name, value) = symb.text.split_once('=').ok_or_else(|| {
                Error::invalid_input(format!(
                    "{}:{}: <DicoLoc/Symb>: '{}' is not Name=value",
                    path.display(),
                    symb.line,
                    symb.text
                ))
            })?;
            let name = name.trim().to_string();
            if let Some((_, first)) = raw.get(&name) {
                return Err(Error::invalid_input(format!(
                    "{}:{}: <DicoLoc/Symb>: {name} is defined twice (first at line {first}); keep one",
                    path.display(),
                    symb.line
                )));
            }
            raw.insert(name, (value.trim().to_string(), symb.line));
        }
    }
    for (name, value) in overrides {
        let Some(entry) = raw.get_mut(name) else {
            let known: Vec<&str> = raw.keys().map(String::as_str).collect();
            return Err(Error::invalid_parameter(format!(
                "+{name}={value}: {} has no <Symb> {name} in its <DicoLoc> (it has: {})",
                path.display(),
                known.join(", ")
            )));
        };
        entry.0 = value.clone();
    }
    // Symbols may use other symbols (DirMEC=${Modele}): each is resolved once, depth first.
    let mut done = BTreeMap::new();
    for name in raw.keys() {
        let mut stack = Vec::new();
        resolve_symbol(name, &raw, &mut done, &mut stack, path)?;
    }
    Ok(done)
}

/// Resolves symbol `name` (and those it uses) into `done`; `stack` holds the symbols being
/// resolved, to name a cycle.
fn resolve_symbol(
    name: &str,
    raw: &BTreeMap<String, (String, usize)>,
    done: &mut BTreeMap<String, String>,
    stack: &mut Vec<String>,
    path: &Path,
) -> Result<()> {
    if done.contains_key(name) {
        return Ok(());
    }
    let (value, line) = &raw[name];
    let at = |what: String| Error::invalid_input(format!("{}:{line}: <DicoLoc/Symb> {name}: {what}", path.display()));
    if let Some(pos) = stack.iter().position(|s| s == name) {
        let mut cycle = stack[pos..].to_vec();
        cycle.push(name.to_string());
        return Err(at(format!("the symbols refer to each other in a cycle: {}", cycle.join(" → "))));
    }
    if stack.len() >= MAX_SYMBOL_DEPTH {
        return Err(at(format!("symbols refer to symbols more than {MAX_SYMBOL_DEPTH} levels deep")));
    }
    stack.push(name.to_string());
    for reference in references(value) {
        match reference {
            Ok(r) if raw.contains_key(r) => resolve_symbol(r, raw, done, stack, path)?,
            _ => {} // reported by `expand` below
        }
    }
    stack.pop();
    let expanded = expand(value, done).map_err(|e| at(e.to_string()))?;
    done.insert(name.to_string(), expanded);
    Ok(())
}

/// The names referred to by `${Name}` in `text` (`Err` for an unclosed `${`).
fn references(text: &str) -> impl Iterator<Item = std::result::Result<&str, ()>> + '_ {
    text.match_indices("${").map(move |(start, _)| {
        let after = &text[start + 2..];
        after.find('}').map(|end| &after[..end]).ok_or(())
    })
}

/// Why a `${…}` expansion failed.
#[derive(Debug)]
enum ExpandError {
    /// `${Name}` with no such symbol.
    Unknown(String),
    /// `${` without its `}`.
    Unclosed(String),
    /// The result would pass [`MAX_EXPANDED_BYTES`].
    TooLong,
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Unknown(name) => write!(f, "${{{name}}} is not a symbol of <DicoLoc>"),
            ExpandError::Unclosed(rest) => write!(f, "'${{{rest}' has no closing brace: write ${{Name}}"),
            ExpandError::TooLong => write!(f, "expands to more than {MAX_EXPANDED_BYTES} bytes (symbols that repeat symbols?)"),
        }
    }
}

/// `text` with every `${Name}` replaced by its value in `symbols`.
fn expand(text: &str, symbols: &BTreeMap<String, String>) -> std::result::Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len().min(MAX_EXPANDED_BYTES));
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| ExpandError::Unclosed(after.chars().take(40).collect()))?;
        let name = &after[..end];
        let value = symbols.get(name).ok_or_else(|| ExpandError::Unknown(name.to_string()))?;
        if out.len() + value.len() > MAX_EXPANDED_BYTES {
            return Err(ExpandError::TooLong);
        }
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if out.len() > MAX_EXPANDED_BYTES {
        return Err(ExpandError::TooLong);
    }
    Ok(out)
}

fn substitute(element: &Element, symbols: &BTreeMap<String, String>, path: &Path) -> Result<Element> {
    let text = expand(&element.text, symbols).map_err(|e| {
        Error::invalid_input(format!("{}:{}: <{}>: {e}", path.display(), element.line, element.name))
    })?;
    let children = element.children.iter().map(|c| substitute(c, symbols, path)).collect::<Result<_>>()?;
    Ok(Element { name: element.name.clone(), text, children, line: element.line })
}

/// The elements that may appear several times under one parent; any other one given twice is
/// an error (it would otherwise be read once and the other copy silently ignored).
const REPEATABLE: &[&str] = &["DicoLoc/Symb", "Section_MEC/EtapeMEC"];

fn check_known(element: &Element, prefix: &str, path: &Path, no_effect: &mut Vec<String>) -> Result<()> {
    for (i, child) in element.children.iter().enumerate() {
        let at = if prefix.is_empty() { child.name.clone() } else { format!("{prefix}/{}", child.name) };
        if !REPEATABLE.contains(&at.as_str())
            && let Some(first) = element.children[..i].iter().find(|c| c.name == child.name)
        {
            return Err(Error::invalid_input(format!(
                "{}:{}: <{at}> is given twice (first at line {}): keep one",
                path.display(),
                child.line,
                first.line
            )));
        }
        match KNOWN.iter().find(|(p, _)| *p == at) {
            Some((_, Known::NoEffect)) => {
                if !no_effect.contains(&at) {
                    no_effect.push(at.clone());
                }
            }
            Some((_, Known::Used)) => check_known(child, &at, path, no_effect)?,
            None => {
                return Err(Error::invalid_input(format!(
                    "{}:{}: <{at}> is not a tag this engine knows (value '{}'); remove it, or see docs/micmac.md \
                     for the supported tags",
                    path.display(),
                    child.line,
                    child.text
                )));
            }
        }
    }
    Ok(())
}

/// The largest `SzW` (window half-size) accepted: NCC windows go up to 31 × 31.
const MAX_SZW: usize = 15;

/// A step's values; `None` = not given (inherit).
#[derive(Default, Clone)]
struct PartialStep {
    szw: Option<usize>,
    px1_pas: Option<f64>,
    dilat_alti: Option<i32>,
    dilat_plani: Option<usize>,
    regul: Option<f64>,
    algo: Option<Algo>,
    nb_dir: Option<usize>,
    pente_max: Option<f64>,
    mask_auto: Option<MaskAuto>,
    learned: Option<LearnedCost>,
    plugin: Option<PluginCost>,
    gen_images_correl: Option<bool>,
}

fn read_step(e: &Element, r: &Reader<'_>) -> Result<(i64, PartialStep)> {
    const AT: &str = "Section_MEC/EtapeMEC";
    let field = |name: &str| e.child(name).map(|c| (c, format!("{AT}/{name}")));
    let dezoom_el = e.child("DeZoom").ok_or_else(|| r.error(e, AT, "no <DeZoom>".into()))?;
    let dezoom: i64 = r.number(dezoom_el, &format!("{AT}/DeZoom"), "an integer")?;
    if dezoom != -1 && !(dezoom >= 1 && (dezoom as u64).is_power_of_two()) {
        return Err(r.error(dezoom_el, &format!("{AT}/DeZoom"), format!("{dezoom}: use -1 (defaults) or a power of two (1, 2, 4, …)")));
    }
    let mut s = PartialStep::default();
    if let Some((c, at)) = field("SzW") {
        let szw: usize = r.number(c, &at, "a window half-size (1, 2, 3, …)")?;
        if !(1..=MAX_SZW).contains(&szw) {
            return Err(r.error(c, &at, format!("{szw}: the window half-size must be 1 to {MAX_SZW} (window 2·SzW+1)")));
        }
        s.szw = Some(szw);
    }
    if let Some((c, at)) = field("Px1Pas") {
        let v: f64 = r.number(c, &at, "a number")?;
        if !(v > 0.0 && v <= 16.0) {
            return Err(r.error(c, &at, format!("{v}: the disparity step must be in (0, 16]")));
        }
        s.px1_pas = Some(v);
    }
    if let Some((c, at)) = field("Px1DilatAlti") {
        s.dilat_alti = Some(r.number(c, &at, "a non-negative integer")?);
    }
    if let Some((c, at)) = field("Px1DilatPlani") {
        s.dilat_plani = Some(r.number(c, &at, "a non-negative integer")?);
    }
    if let Some((c, at)) = field("Px1Regul") {
        let v: f64 = r.number(c, &at, "a number")?;
        if !(v >= 0.0 && v.is_finite()) {
            return Err(r.error(c, &at, format!("{v}: ZReg must be ≥ 0")));
        }
        s.regul = Some(v);
    }
    if let Some((c, at)) = field("AlgoRegul") {
        s.algo = Some(match c.text.as_str() {
            "eAlgo2PrgDyn" => Algo::PrgDyn2,
            "eAlgoDequant" => Algo::Dequant,
            other => return Err(r.error(c, &at, format!("'{other}' is not supported; use eAlgo2PrgDyn or eAlgoDequant"))),
        });
    }
    if let Some((c, at)) = field("GenImagesCorrel") {
        s.gen_images_correl = Some(r.boolean(c, &at)?);
    }
    if let Some(m) = e.child("ModulationProgDyn") {
        let at = format!("{AT}/ModulationProgDyn");
        if let Some(ep) = m.child("EtapeProgDyn") {
            if let Some(mode) = ep.child("ModeAgreg")
                && mode.text != "ePrgDAgrSomme" {
                    return Err(r.error(mode, &format!("{at}/EtapeProgDyn/ModeAgreg"), format!("'{}' is not supported; use ePrgDAgrSomme", mode.text)));
                }
            if let Some(n) = ep.child("NbDir") {
                let nb: usize = r.number(n, &format!("{at}/EtapeProgDyn/NbDir"), "a number of directions")?;
                if !(1..=32).contains(&nb) {
                    return Err(r.error(n, &format!("{at}/EtapeProgDyn/NbDir"), format!("{nb}: use 1 to 32 directions")));
                }
                s.nb_dir = Some(nb);
            }
        }
        if let Some(p) = m.child("Px1PenteMax") {
            let v: f64 = r.number(p, &format!("{at}/Px1PenteMax"), "a number")?;
            if !(v > 0.0 && v.is_finite()) {
                return Err(r.error(p, &format!("{at}/Px1PenteMax"), format!("{v}: the maximum slope must be > 0")));
            }
            s.pente_max = Some(v);
        }
        if let Some(a) = m.child("ArgMaskAuto") {
            let at = format!("{at}/ArgMaskAuto");
            let get = |name: &str, lo: f64, hi: f64| -> Result<f64> {
                let c = a.child(name).ok_or_else(|| r.error(a, &at, format!("no <{name}>")))?;
                let v: f64 = r.number(c, &format!("{at}/{name}"), "a number")?;
                if !(v.is_finite() && (lo..=hi).contains(&v)) {
                    return Err(r.error(c, &format!("{at}/{name}"), format!("{v}: must be between {lo} and {hi}")));
                }
                Ok(v)
            };
            s.mask_auto = Some(MaskAuto { def_cor: get("ValDefCorrel", -1.0, 1.0)?, cost_trans: get("CostTrans", 0.0, 16.0)? });
        }
    }
    if let Some(cah) = e.child("CorrelAdHoc") {
        let at = format!("{AT}/CorrelAdHoc/TypeCAH/ScoreLearnedMMVII");
        let score = cah
            .child("TypeCAH")
            .and_then(|t| t.child("ScoreLearnedMMVII"))
            .ok_or_else(|| r.error(cah, &format!("{AT}/CorrelAdHoc"), "no <TypeCAH><ScoreLearnedMMVII>".into()))?;
        let get = |name: &str| -> Result<String> {
            score.child(name).map(|c| c.text.clone()).ok_or_else(|| r.error(score, &at, format!("no <{name}>")))
        };
        s.learned = Some(LearnedCost { cost: get("FileModeleCost")?, params: get("FileModeleParams")?, arch: get("FileModeleArch")? });
    }
    if let Some(plugin) = e.child("DeepsimPlugin") {
        let at = format!("{AT}/DeepsimPlugin");
        if s.learned.is_some() {
            return Err(r.error(plugin, &at, "this step also has <CorrelAdHoc>: both choose the step's similarity; keep one".into()));
        }
        let path = plugin.child("Path").map(|c| c.text.clone()).unwrap_or_default();
        if path.is_empty() {
            return Err(r.error(plugin, &at, "no <Path>: give the plugin's shared library, e.g. <Path>plugins/libmy_measure.so</Path>".into()));
        }
        let options = plugin.child("Options").map(|c| c.text.clone()).unwrap_or_default();
        s.plugin = Some(PluginCost { path, options });
    }
    Ok((dezoom, s))
}

fn read_config(root: &Element, path: &Path) -> Result<MicmacConfig> {
    let r = Reader { path };
    let section = |name: &str| -> Result<&Element> {
        root.child(name)
            .ok_or_else(|| Error::invalid_input(format!("{}: no <{name}> section (required)", path.display())))
    };
    let pdv = section("Section_PriseDeVue")?;
    if let Some(g) = pdv.child("GeomImages")
        && g.text != "eGeomImage_EpipolairePure" {
            return Err(r.error(g, "Section_PriseDeVue/GeomImages", format!("'{}': this engine matches epipolar pairs only (eGeomImage_EpipolairePure)", g.text)));
        }
    let images = pdv.child("Images").ok_or_else(|| r.error(pdv, "Section_PriseDeVue", "no <Images>".into()))?;
    let image = |name: &str| -> Result<String> {
        images.child(name).map(|c| c.text.clone()).ok_or_else(|| r.error(images, "Section_PriseDeVue/Images", format!("no <{name}>")))
    };
    let masks = match pdv.child("MasqImageIn") {
        None => None,
        Some(m) => {
            let one = m.child("OneMasqueImage").ok_or_else(|| r.error(m, "Section_PriseDeVue/MasqImageIn", "no <OneMasqueImage>".into()))?;
            let get = |name: &str| -> Result<String> {
                one.child(name).map(|c| c.text.clone()).ok_or_else(|| r.error(one, "Section_PriseDeVue/MasqImageIn/OneMasqueImage", format!("no <{name}>")))
            };
            let accept_missing = match m.child("AcceptNonExistingFile") {
                Some(c) => r.boolean(c, "Section_PriseDeVue/MasqImageIn/AcceptNonExistingFile")?,
                None => false,
            };
            Some(MaskRule { pattern: get("PatternSel")?, name: get("NomMasq")?, accept_missing })
        }
    };
    let inc = section("Section_Terrain")?
        .child("IntervParalaxe")
        .and_then(|i| i.child("Px1IncCalc"))
        .ok_or_else(|| Error::invalid_input(format!("{}: no <Section_Terrain/IntervParalaxe/Px1IncCalc> (the ± search range)", path.display())))?;
    let px1_inc: f64 = r.number(inc, "Section_Terrain/IntervParalaxe/Px1IncCalc", "a number of pixels")?;
    if !(px1_inc > 0.0 && px1_inc.is_finite()) {
        return Err(r.error(inc, "Section_Terrain/IntervParalaxe/Px1IncCalc", format!("{px1_inc}: the search range must be > 0")));
    }

    let mec = section("Section_MEC")?;
    let mut defaults = PartialStep::default();
    let mut steps = Vec::new();
    for (i, e) in mec.children_named("EtapeMEC").enumerate() {
        let (dezoom, s) = read_step(e, &r)?;
        if dezoom == -1 {
            if i != 0 {
                return Err(r.error(e, "Section_MEC/EtapeMEC", "DeZoom -1 (the defaults) must be the first step".into()));
            }
            defaults = s;
            continue;
        }
        let d = &defaults;
        let missing = |name: &str| r.error(e, "Section_MEC/EtapeMEC", format!("no <{name}> here nor in the first (DeZoom -1) step"));
        // A step that names its similarity (learned or plugin) overrides both inherited ones.
        let (learned, plugin) = if s.learned.is_some() || s.plugin.is_some() {
            (s.learned.clone(), s.plugin.clone())
        } else {
            (d.learned.clone(), d.plugin.clone())
        };
        steps.push(Step {
            line: e.line,
            dezoom: dezoom as u32,
            szw: s.szw.or(d.szw).unwrap_or(2),
            px1_pas: s.px1_pas.or(d.px1_pas).unwrap_or(1.0),
            dilat_alti: s.dilat_alti.or(d.dilat_alti).ok_or_else(|| missing("Px1DilatAlti"))?,
            dilat_plani: s.dilat_plani.or(d.dilat_plani).ok_or_else(|| missing("Px1DilatPlani"))?,
            regul: s.regul.or(d.regul).ok_or_else(|| missing("Px1Regul"))?,
            algo: s.algo.or(d.algo).ok_or_else(|| missing("AlgoRegul"))?,
            nb_dir: s.nb_dir.or(d.nb_dir).unwrap_or(7),
            pente_max: s.pente_max.or(d.pente_max).unwrap_or(3.0),
            mask_auto: s.mask_auto.or(d.mask_auto),
            learned,
            plugin,
            gen_images_correl: s.gen_images_correl.or(d.gen_images_correl).unwrap_or(false),
        });
    }
    if steps.is_empty() {
        return Err(r.error(mec, "Section_MEC", "no <EtapeMEC> with a DeZoom of 1 or more".into()));
    }
    for pair in steps.windows(2) {
        if pair[1].dezoom > pair[0].dezoom {
            return Err(r.error(mec, "Section_MEC", format!(
                "step at line {} has DeZoom {} after DeZoom {}: steps must go from coarse to fine",
                pair[1].line, pair[1].dezoom, pair[0].dezoom
            )));
        }
    }

    let ws = root.child("Section_WorkSpace");
    let ws_value = |name: &str| ws.and_then(|w| w.child(name));
    let size = |name: &str, default: usize| -> Result<usize> {
        match ws_value(name) {
            Some(c) => r.number(c, &format!("Section_WorkSpace/{name}"), "a number of pixels"),
            None => Ok(default),
        }
    };
    let dir_mec = ws_value("TmpMEC").map(|c| c.text.trim_end_matches('/').to_string()).unwrap_or_else(|| "MEC".into());
    let by_process = match ws_value("ByProcess") {
        Some(c) => Some(r.number(c, "Section_WorkSpace/ByProcess", "a number of processes")?),
        None => None,
    };
    Ok(MicmacConfig {
        im1: image("Im1")?,
        im2: image("Im2")?,
        masks,
        px1_inc,
        steps,
        dir_mec,
        tiles: Tiles { min_px: size("SzDalleMin", 1000)?, max_px: size("SzDalleMax", 2000)?, overlap_px: size("SzRecouvrtDalles", 50)? },
        by_process,
    })
}
