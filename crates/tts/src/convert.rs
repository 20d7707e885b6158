//! Conversion of the downloaded `hibari.onnx` into `acoustic.onnx`, the graph tract runs well.
//!
//! Two edits, both exact:
//! * every dynamically-quantized `MatMulInteger` becomes `Cast`s to f32, the zero points subtracted,
//!   and a float `MatMul`. The operands are small integers, so the products and sums are the same
//!   numbers; tract's integer path is ~15x slower than its f32 matmul on this model. The int8 weights
//!   stay int8 in the file (their casts are constant-folded when tract loads the model).
//! * the int64 `CumSum` over the phoneme durations (which tract 0.23 cannot evaluate there: "TDim is
//!   not a number") runs in f32 between two `Cast`s; durations are small integers, so it is exact.
//!
//! Editing the protobuf once at install time keeps `load` simple and lets other runtimes read the
//! converted file too (the changed tensors' stale `value_info` entries are dropped).

use std::collections::HashSet;
use std::path::Path;

use prost::Message;
use tract_onnx::pb;

use crate::Error;

pub const SOURCE: &str = "hibari.onnx";
pub const TARGET: &str = "acoustic.onnx";

const FLOAT: i64 = 1;
const INT64: i64 = 7;

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: String,
    inputs: Vec<String>,
    output: String,
    attrs: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        input: inputs,
        output: vec![output],
        name,
        op_type: op.to_string(),
        attribute: attrs,
        ..Default::default()
    }
}

fn cast(name: String, input: String, output: String, to: i64) -> pb::NodeProto {
    node("Cast", name, vec![input], output, vec![attr_int("to", to)])
}

/// `x - zero_point` in f32 (or just `x` in f32 when there is no zero point).
fn dequantized(
    prefix: &str,
    x: &str,
    zero_point: Option<&String>,
    out: &mut Vec<pb::NodeProto>,
) -> String {
    let xf = format!("{x}__{prefix}_f32");
    out.push(cast(
        format!("{prefix}/cast"),
        x.to_string(),
        xf.clone(),
        FLOAT,
    ));
    let Some(zp) = zero_point.filter(|z| !z.is_empty()) else {
        return xf;
    };
    let zf = format!("{zp}__{prefix}_f32");
    out.push(cast(
        format!("{prefix}/cast_zp"),
        zp.clone(),
        zf.clone(),
        FLOAT,
    ));
    let centred = format!("{x}__{prefix}_centred");
    out.push(node(
        "Sub",
        format!("{prefix}/sub_zp"),
        vec![xf, zf],
        centred.clone(),
        vec![],
    ));
    centred
}

/// Rewrites the graph in place; returns how many (MatMulInteger, CumSum) nodes were changed.
pub fn rewrite(model: &mut pb::ModelProto) -> Result<(usize, usize), Error> {
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| Error::invalid_model(SOURCE, "no graph"))?;
    let mut nodes = Vec::with_capacity(graph.node.len() + 512);
    let mut retyped: HashSet<String> = HashSet::new();
    let (mut matmuls, mut cumsums) = (0, 0);
    for (i, n) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        let base = if n.name.is_empty() {
            format!("node{i}")
        } else {
            n.name.clone()
        };
        match n.op_type.as_str() {
            "MatMulInteger" if n.input.len() >= 2 && n.output.len() == 1 => {
                let a = dequantized(
                    &format!("{base}/a"),
                    &n.input[0],
                    n.input.get(2),
                    &mut nodes,
                );
                let b = dequantized(
                    &format!("{base}/b"),
                    &n.input[1],
                    n.input.get(3),
                    &mut nodes,
                );
                nodes.push(node(
                    "MatMul",
                    format!("{base}/f32"),
                    vec![a, b],
                    n.output[0].clone(),
                    vec![],
                ));
                retyped.insert(n.output[0].clone());
                matmuls += 1;
            }
            "CumSum" if !n.input.is_empty() && n.output.len() == 1 => {
                let xf = format!("{}__f32", n.input[0]);
                nodes.push(cast(
                    format!("{base}/cast_in"),
                    n.input[0].clone(),
                    xf.clone(),
                    FLOAT,
                ));
                let yf = format!("{}__f32", n.output[0]);
                let mut inputs = n.input.clone();
                inputs[0] = xf;
                nodes.push(pb::NodeProto {
                    input: inputs,
                    output: vec![yf.clone()],
                    ..n.clone()
                });
                nodes.push(cast(
                    format!("{base}/cast_out"),
                    yf,
                    n.output[0].clone(),
                    INT64,
                ));
                cumsums += 1;
            }
            _ => nodes.push(n),
        }
    }
    graph.node = nodes;
    graph.value_info.retain(|v| !retyped.contains(&v.name));
    Ok((matmuls, cumsums))
}

/// Writes `acoustic.onnx` (atomically, via `acoustic.onnx.partial`) from `hibari.onnx` in `dir` and
/// returns the names of the files written. Running it again rewrites the same bytes; when
/// `hibari.onnx` is gone but `acoustic.onnx` exists, it does nothing and returns an empty list.
pub fn convert(dir: &Path) -> Result<Vec<String>, Error> {
    let source = dir.join(SOURCE);
    let target = dir.join(TARGET);
    if !source.exists() && target.exists() {
        return Ok(Vec::new());
    }
    let bytes = crate::assets::read_bytes(dir, SOURCE)?;
    let mut model =
        pb::ModelProto::decode(bytes.as_slice()).map_err(|e| Error::invalid_model(SOURCE, e))?;
    let (matmuls, cumsums) = rewrite(&mut model)?;
    if cumsums != 1 || matmuls == 0 {
        return Err(Error::invalid_model(
            SOURCE,
            format!("unexpected graph: {matmuls} MatMulInteger, {cumsums} CumSum nodes"),
        ));
    }
    let partial = dir.join(format!("{TARGET}.partial"));
    let io = |source| Error::Io {
        path: partial.clone(),
        source,
    };
    std::fs::write(&partial, model.encode_to_vec()).map_err(io)?;
    std::fs::rename(&partial, &target).map_err(|source| Error::Io {
        path: target.clone(),
        source,
    })?;
    Ok(vec![TARGET.to_string()])
}
