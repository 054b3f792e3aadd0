//! MicMac compatibility: `ParamMICMAC` parameter files (the XML that `mm3d MICMAC` reads).
//!
//! [`MicmacFile::load`] reads a file as MicMac does — `<DicoLoc>` symbols, `+Name=value`
//! overrides, `${Name}` substitution — and checks every element against the tags this engine
//! knows: a tag that changes the result is read into [`MicmacConfig`], a tag that is recognised
//! but has no effect here is listed in [`MicmacFile::no_effect`] (the CLI prints them as a
//! warning), and anything else is an error naming the element path, its line and the value.

mod config;
mod plan;
mod xml;

pub use config::{Algo, LearnedCost, MaskAuto, MaskRule, MicmacConfig, MicmacFile, PluginCost, Step, Tiles};
pub use plan::{resolve_model, BackendSpec, MicmacPlan};
pub use xml::{parse as parse_xml, read_text as read_xml_text, Element};
