mod cli;
mod eval;
mod io;
mod pipeline;
mod sgm;
mod synth;
