mod cli;
mod eval;
mod io;
mod learned;
mod micmac_xml;
mod mmvii;
#[cfg(feature = "ort")]
mod ort;
mod pipeline;
mod sgm;
mod synth;
