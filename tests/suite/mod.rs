mod cli;
mod eval;
mod io;
mod learned;
#[cfg(feature = "ort")]
mod ort;
mod pipeline;
mod sgm;
mod synth;
