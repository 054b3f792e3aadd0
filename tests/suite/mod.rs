mod cli;
mod eval;
mod io;
mod learned;
mod pipeline;
mod sgm;
mod synth;
