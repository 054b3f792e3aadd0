//! The weights of a decision MLP, read from its ONNX graph when the graph has the standard
//! pattern, so that the engine can evaluate it natively (`crate::similarity`'s split MLP):
//!
//! `Concat(left, right)` → (`Gemm` | `MatMul` [+ `Add`]) → `Relu` → … → (`Gemm` | `MatMul` [+ `Add`])
//! → `Sigmoid`, with shape-only nodes (`Squeeze`, `Reshape`, `Flatten`) allowed once the width is 1,
//! before or after the sigmoid. Weights may be stored in any float type and cast to f32 in the
//! graph (`Cast` of an initialiser), as the fp16 bundles do.
//!
//! Anything else (another activation, a normalisation layer, a residual) is not this pattern:
//! [`read_mlp`] then returns `None` and the engine runs the ONNX file as it is.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto};
use tract_onnx::prelude::{DatumType, Framework, Tensor};

/// One fully connected layer: `y = W x + b`.
#[derive(Debug, Clone)]
pub struct Dense {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// `W`, row-major `[outputs, inputs]`.
    pub weight: Vec<f32>,
    /// `b`, `[outputs]`.
    pub bias: Vec<f32>,
}

/// A decision MLP: `sigmoid(L_n(relu(… relu(L_1([left; right])))))`.
#[derive(Debug, Clone)]
pub struct MlpWeights {
    /// The layers in order; ReLU after every one but the last, whose single output goes
    /// through the sigmoid.
    pub layers: Vec<Dense>,
}

/// The weights of the decision network in `path`, or `None` when its graph is not the standard
/// pattern (see the module documentation); an error only when the file cannot be read.
pub fn read_mlp(path: &Path) -> Result<Option<MlpWeights>> {
    let proto: ModelProto = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| Error::decode(path, format!("not an ONNX model ({e})")))?;
    let Some(graph) = proto.graph.as_ref() else {
        return Ok(None);
    };
    Ok(match_pattern(graph))
}

/// Constant tensors of the graph (initialisers, `Constant` nodes, casts of either), as f32.
fn constants(graph: &GraphProto) -> HashMap<String, Tensor> {
    let resolver = tract_onnx::data_resolver::FopenDataResolver;
    let mut consts: HashMap<String, Tensor> = HashMap::new();
    for t in &graph.initializer {
        if let Ok(tensor) = tract_onnx::tensor::load_tensor(&resolver, t, None) {
            consts.insert(t.name.clone(), tensor);
        }
    }
    for node in &graph.node {
        match node.op_type.as_str() {
            "Constant" => {
                if let (Some(out), Some(t)) = (
                    node.output.first(),
                    attribute(node, "value").and_then(|a| a.t.as_ref()),
                ) && let Ok(tensor) = tract_onnx::tensor::load_tensor(&resolver, t, None)
                {
                    consts.insert(out.clone(), tensor);
                }
            }
            "Cast" | "Identity" => {
                if let (Some(input), Some(out)) = (node.input.first(), node.output.first())
                    && let Some(tensor) = consts.get(input)
                {
                    let tensor = tensor.clone();
                    consts.insert(out.clone(), tensor);
                }
            }
            _ => {}
        }
    }
    consts
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a tract_onnx::pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn int_attribute(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, |a| a.i)
}

/// `tensor` as f32 values with its shape, when it is a float tensor.
fn as_f32(tensor: &Tensor) -> Option<(Vec<usize>, Vec<f32>)> {
    if !tensor.datum_type().is_float() {
        return None;
    }
    let cast = tensor.cast_to_dt(DatumType::F32).ok()?;
    let values: Vec<f32> = cast
        .to_plain_array_view::<f32>()
        .ok()?
        .iter()
        .copied()
        .collect();
    Some((tensor.shape().to_vec(), values))
}

/// A `[rows, cols]` matrix transposed.
fn transpose(rows: usize, cols: usize, m: &[f32]) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

fn match_pattern(graph: &GraphProto) -> Option<MlpWeights> {
    let consts = constants(graph);
    let is_const = |name: &str| consts.contains_key(name);
    // The nodes reading a value, ignoring those computing only shapes from it.
    let consumers = |value: &str| -> Vec<&NodeProto> {
        graph
            .node
            .iter()
            .filter(|n| n.op_type != "Shape" && n.input.iter().any(|i| i == value))
            .collect()
    };
    let (left, right) = ("left", "right");
    let concat = consumers(left);
    let [concat] = concat.as_slice() else {
        return None;
    };
    if concat.op_type != "Concat"
        || concat.input.len() != 2
        || concat.input[0] != left
        || concat.input[1] != right
    {
        return None;
    }
    if !matches!(int_attribute(concat, "axis", 0), -1 | 1) {
        return None;
    }
    let mut value = concat.output.first()?.clone();
    let mut layers: Vec<Dense> = Vec::new();
    let mut relu_after: Vec<bool> = Vec::new();
    let mut sigmoid = false;
    loop {
        if graph.output.iter().any(|o| o.name == value) {
            break;
        }
        let node = consumers(&value);
        let [node] = node.as_slice() else { return None };
        let other_inputs: Vec<&String> = node
            .input
            .iter()
            .filter(|i| **i != value && !i.is_empty())
            .collect();
        let width = layers.last().map(|l| l.outputs);
        match node.op_type.as_str() {
            "Gemm" => {
                if sigmoid || node.input.first()? != &value || int_attribute(node, "transA", 0) != 0
                {
                    return None;
                }
                let alpha = attribute(node, "alpha").map_or(1.0, |a| a.f);
                let beta = attribute(node, "beta").map_or(1.0, |a| a.f);
                let (shape, w) = as_f32(consts.get(node.input.get(1)?)?)?;
                let [a, b] = shape[..] else { return None };
                let (outputs, inputs, mut weight) = if int_attribute(node, "transB", 0) != 0 {
                    (a, b, w)
                } else {
                    (b, a, transpose(a, b, &w))
                };
                weight.iter_mut().for_each(|v| *v *= alpha);
                let mut bias = vec![0.0; outputs];
                if let Some(c) = node.input.get(2).filter(|c| !c.is_empty()) {
                    let (_, values) = as_f32(consts.get(c)?)?;
                    if values.len() != outputs {
                        return None;
                    }
                    bias = values.iter().map(|v| v * beta).collect();
                }
                layers.push(Dense {
                    inputs,
                    outputs,
                    weight,
                    bias,
                });
                relu_after.push(false);
            }
            "MatMul" => {
                if sigmoid || node.input.first()? != &value {
                    return None;
                }
                let (shape, w) = as_f32(consts.get(node.input.get(1)?)?)?;
                let [inputs, outputs] = shape[..] else {
                    return None;
                };
                layers.push(Dense {
                    inputs,
                    outputs,
                    weight: transpose(inputs, outputs, &w),
                    bias: vec![0.0; outputs],
                });
                relu_after.push(false);
            }
            "Add" => {
                // A bias right after a MatMul.
                let [bias_name] = other_inputs.as_slice() else {
                    return None;
                };
                let last = layers.last_mut()?;
                if *relu_after.last()? || sigmoid || !is_const(bias_name) {
                    return None;
                }
                let (_, values) = as_f32(consts.get(*bias_name)?)?;
                if values.len() != last.outputs {
                    return None;
                }
                last.bias.iter_mut().zip(values).for_each(|(b, v)| *b += v);
            }
            "Relu" => {
                let flag = relu_after.last_mut()?;
                if *flag || sigmoid {
                    return None;
                }
                *flag = true;
            }
            "Sigmoid" => {
                if sigmoid || width != Some(1) || *relu_after.last()? {
                    return None;
                }
                sigmoid = true;
            }
            "Squeeze" | "Reshape" | "Flatten" | "Unsqueeze" => {
                // Only dropping the unit axis of the last layer's output.
                if width != Some(1)
                    || !other_inputs.iter().all(|i| is_const(i))
                    || node.op_type == "Unsqueeze"
                {
                    return None;
                }
            }
            _ => return None,
        }
        value = node.output.first()?.clone();
    }
    let n = layers.len();
    let shapes_chain = layers.windows(2).all(|w| w[0].outputs == w[1].inputs);
    let relus_ok = relu_after
        .iter()
        .enumerate()
        .all(|(i, &r)| r == (i + 1 < n));
    if n < 2
        || !sigmoid
        || !shapes_chain
        || !relus_ok
        || layers[n - 1].outputs != 1
        || !layers[0].inputs.is_multiple_of(2)
    {
        return None;
    }
    Some(MlpWeights { layers })
}
