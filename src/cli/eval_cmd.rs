//! `deepsim eval`: accuracy of a disparity map against ground truth.

use super::args::EvalArgs;
use anyhow::Context;
use deepsim::eval::evaluate;
use deepsim::io::{read_disparity, read_mask};

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let disparity = read_disparity(&args.disparity)?;
    let gt = read_disparity(&args.gt)?;
    let mask = args.mask.as_deref().map(read_mask).transpose()?;
    let predicted = ndarray::Zip::from(&disparity.values)
        .and(&disparity.valid)
        .map_collect(|&d, &ok| if ok { d } else { f32::NAN });
    let evaluation = evaluate(&predicted, &gt.values, &gt.valid, mask.as_ref())?;
    print!("{}", evaluation.table());
    println!("(non-occlusion mask: {}; a missing prediction counts as bad)", evaluation.nonocc_source);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&evaluation)?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
