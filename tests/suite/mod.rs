mod census;
mod cli;
mod eval;
mod io;
mod learned;
mod micmac_xml;
#[cfg(feature = "ort")]
mod ort;
mod pipeline;
mod sgm;
mod synth;
