//! Allocations a graph makes whatever its input: a hostile or broken model can ask for a
//! gigantic constant tensor (`ConstantOfShape` of a constant 65536 × 65536 shape, an `Expand`
//! or `Tile` to a constant huge size) that every runtime allocates, or folds at load time, before
//! running anything, and then aborts on. A feature extractor's or decision network's tensors
//! scale with its input, so a constant-sized one this large is never legitimate: it is refused
//! here, with the node named, before a runtime sees the file (issue #16 item 4).

use tract_onnx::pb::{tensor_proto::DataType, GraphProto, TensorProto};

/// Largest element count of a tensor whose size the graph fixes by constants (2^28 f32 values:
/// 1 GiB). Real networks' constant-shaped tensors are a few thousand values at most.
pub const MAX_CONSTANT_ELEMENTS: u128 = 1 << 28;

/// One problem per node of `graph` whose output size is fixed by constants and too large.
pub fn oversized_constant_tensors(graph: &GraphProto) -> Vec<String> {
    let constant = |name: &str| -> Option<Vec<i64>> {
        let tensor = graph.initializer.iter().find(|t| t.name == name).or_else(|| {
            graph
                .node
                .iter()
                .find(|n| n.op_type == "Constant" && n.output.iter().any(|o| o == name))
                .and_then(|n| n.attribute.iter().find(|a| a.name == "value"))
                .and_then(|a| a.t.as_ref())
        })?;
        int64_values(tensor)
    };
    let mut problems = Vec::new();
    for node in &graph.node {
        // The input holding the constant extent, and whether it is a shape (product = size)
        // or repeats (product = growth factor of an input of unknown size).
        let extent = match node.op_type.as_str() {
            "ConstantOfShape" | "Expand" | "Tile" => node.input.get(if node.op_type == "ConstantOfShape" { 0 } else { 1 }),
            _ => None,
        };
        let Some(values) = extent.and_then(|name| constant(name)) else { continue };
        let elements = values.iter().try_fold(1u128, |acc, &v| acc.checked_mul(v.max(0) as u128));
        if elements.is_none_or(|n| n > MAX_CONSTANT_ELEMENTS) {
            let what = if node.op_type == "Tile" { "repeats its input" } else { "makes a tensor of shape" };
            problems.push(format!(
                "node '{}' ({}) {what} {values:?} whatever the image: {} values, more than the {} a network of \
                 this contract may fix by constants; re-export the model (its tensors must scale with the input)",
                node.name,
                node.op_type,
                elements.map_or("over 2^128".to_string(), |n| n.to_string()),
                MAX_CONSTANT_ELEMENTS
            ));
        }
    }
    problems
}

/// The values of a small integer tensor (INT64 or INT32, typed or raw), if it is one.
fn int64_values(tensor: &TensorProto) -> Option<Vec<i64>> {
    const MAX_RANK: usize = 64;
    let values: Vec<i64> = if tensor.data_type == DataType::Int64 as i32 {
        if !tensor.int64_data.is_empty() {
            tensor.int64_data.clone()
        } else {
            tensor.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
        }
    } else if tensor.data_type == DataType::Int32 as i32 {
        if !tensor.int32_data.is_empty() {
            tensor.int32_data.iter().map(|&v| v as i64).collect()
        } else {
            tensor.raw_data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64).collect()
        }
    } else {
        return None;
    };
    (values.len() <= MAX_RANK).then_some(values)
}
