mod census;
mod cli;
mod engine_xml;
mod eval;
mod io;
mod learned;
mod memory;
mod micmac_cli;
mod micmac_regul;
mod micmac_xml;
mod mmvii;
#[cfg(feature = "ort")]
mod ort;
mod pipeline;
mod plugin;
mod sgm;
mod synth;
mod tiles;
