//! `deepsim eval`: accuracy of a disparity map against ground truth.

use super::args::EvalArgs;
use anyhow::Context;
use deepsim::eval::evaluate;
use deepsim::io::{create_file, read_disparity, read_mask, same_file, OutputSet};
use std::io::Write as _;

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    if let Some(json) = &args.json {
        let inputs = [Some(&args.disparity), Some(&args.gt), args.mask.as_ref()];
        if let Some(input) = inputs.into_iter().flatten().find(|input| same_file(input, json)) {
            anyhow::bail!("--json {} is the input {}, which it would overwrite: choose another file", json.display(), input.display());
        }
    }
    let disparity = read_disparity(&args.disparity)?;
    let gt = read_disparity(&args.gt)?;
    let mask = args.mask.as_deref().map(read_mask).transpose()?;
    let predicted = ndarray::Zip::from(&disparity.values)
        .and(&disparity.valid)
        .map_collect(|&d, &ok| if ok { d } else { f32::NAN });
    let evaluation = evaluate(&predicted, &gt.values, &gt.valid, mask.as_ref()).with_context(|| {
        format!(
            "evaluating {} against {}{}",
            args.disparity.display(),
            args.gt.display(),
            args.mask.as_ref().map_or(String::new(), |m| format!(" with mask {}", m.display()))
        )
    })?;
    say!("{}", evaluation.table());
    say!("(non-occlusion mask: {}; a missing prediction counts as bad)\n", evaluation.nonocc_source);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&evaluation)?;
        let mut outputs = OutputSet::new();
        outputs.write(path, |tmp| {
            let mut file = create_file(tmp)?;
            file.write_all(text.as_bytes()).map_err(|e| deepsim::Error::io(tmp, e))
        })?;
        outputs.commit()?;
    }
    Ok(())
}
