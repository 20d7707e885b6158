//! Conversion of the upstream checkpoint (`efficientnet-lite0.pth`, a legacy `torch.save` state
//! dict) into `model.safetensors`, the only file [`crate::ImageClassifier::load`] reads.
//!
//! Each batch norm is folded into the conv before it (inference never needs the statistics
//! separately): with `s = γ / √(var + ε)`, the conv's weight becomes `W·s` (per output channel)
//! and its bias `β − mean·s`. ε is 1e-3, TensorFlow's default, which the TF-trained weights use.
//! The arithmetic is done in f64 and stored as f32.
//!
//! Tensor names in `model.safetensors` (all f32; conv weights keep PyTorch's
//! `[out, in / groups, kh, kw]` layout, every weight has a `.bias` of `[out]` beside it):
//!
//! | name | shape | source |
//! |---|---|---|
//! | `stem.weight` | `[32, 3, 3, 3]` | `_conv_stem` + `_bn0` |
//! | `blocks.{i}.expand.weight` (i ≥ 1) | `[c·6, c, 1, 1]` | `_blocks.{i}._expand_conv` + `_bn0` |
//! | `blocks.{i}.depthwise.weight` | `[c', 1, k, k]` | `_blocks.{i}._depthwise_conv` + `_bn1` |
//! | `blocks.{i}.project.weight` | `[out, c', 1, 1]` | `_blocks.{i}._project_conv` + `_bn2` |
//! | `head.weight` | `[1280, 320, 1, 1]` | `_conv_head` + `_bn1` |
//! | `classifier.weight` | `[1000, 1280]` | `_fc` (no batch norm) |

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use safetensors::{Dtype, tensor::TensorView};

use crate::error::Error;
use crate::net::Network;
use crate::pth::{self, PthTensor};

/// The raw checkpoint `marquee models pull` downloads.
pub const RAW_FILE: &str = "efficientnet-lite0.pth";
/// The converted weights [`crate::ImageClassifier::load`] reads.
pub const MODEL_FILE: &str = "model.safetensors";
/// Batch norm ε of the TF-trained EfficientNet-Lite weights.
const BATCH_NORM_EPS: f64 = 1e-3;
/// Stored in the safetensors header; a single entry keeps the file byte-for-byte reproducible.
const FORMAT_METADATA: &str = "marquee efficientnet-lite0: batch norms folded into the convs (eps 1e-3); conv weights [out, in/groups, kh, kw], biases [out]";

/// Converts `dir/efficientnet-lite0.pth` into `dir/model.safetensors` (written to a `.partial`
/// file, checked by building the network from it, then renamed into place). Returns the names of
/// the files written. Idempotent: the output depends only on the input bytes.
pub fn convert(dir: &Path) -> Result<Vec<String>, Error> {
    let raw_path = dir.join(RAW_FILE);
    let raw = fs::read(&raw_path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => Error::MissingModelFile {
            path: raw_path.clone(),
        },
        _ => Error::io(&raw_path, e),
    })?;
    let state_dict = pth::read_state_dict(&raw).map_err(|m| Error::invalid_model(&raw_path, m))?;
    let folded = fold_batch_norms(state_dict).map_err(|m| Error::invalid_model(&raw_path, m))?;
    let bytes = serialize(&folded).map_err(|m| Error::invalid_model(&raw_path, m))?;

    let out_path = dir.join(MODEL_FILE);
    // A converted file that cannot be loaded is a conversion bug; catch it before installing.
    Network::from_safetensors(&bytes).map_err(|m| {
        Error::invalid_model(&out_path, format!("the converted weights do not load: {m}"))
    })?;
    let partial = dir.join(format!("{MODEL_FILE}.partial"));
    fs::write(&partial, &bytes).map_err(|e| Error::io(&partial, e))?;
    fs::rename(&partial, &out_path).map_err(|e| Error::io(&out_path, e))?;
    Ok(vec![MODEL_FILE.to_owned()])
}

/// Maps the upstream state dict to the converted tensors (name → tensor, sorted by name). Every
/// f32 tensor must be used exactly once.
fn fold_batch_norms(
    state_dict: Vec<(String, PthTensor)>,
) -> Result<BTreeMap<String, PthTensor>, String> {
    let mut source: HashMap<String, PthTensor> = state_dict.into_iter().collect();
    let mut out = BTreeMap::new();
    let mut fold = |source: &mut HashMap<_, _>, conv: &str, bn: &str, name: &str| {
        let (weight, bias) = fold_conv(source, conv, bn)?;
        out.insert(format!("{name}.weight"), weight);
        out.insert(format!("{name}.bias"), bias);
        Ok::<(), String>(())
    };
    fold(&mut source, "_conv_stem", "_bn0", "stem")?;
    let mut block = 0;
    while source.contains_key(&format!("_blocks.{block}._depthwise_conv.weight")) {
        let (up, down) = (format!("_blocks.{block}"), format!("blocks.{block}"));
        for (conv, bn, name) in [
            ("_expand_conv", "_bn0", "expand"),
            ("_depthwise_conv", "_bn1", "depthwise"),
            ("_project_conv", "_bn2", "project"),
        ] {
            // Blocks without expansion (ratio 1) have no expand conv.
            if name == "expand" && !source.contains_key(&format!("{up}.{conv}.weight")) {
                continue;
            }
            fold(
                &mut source,
                &format!("{up}.{conv}"),
                &format!("{up}.{bn}"),
                &format!("{down}.{name}"),
            )?;
        }
        block += 1;
    }
    fold(&mut source, "_conv_head", "_bn1", "head")?;
    out.insert("classifier.weight".into(), take(&mut source, "_fc.weight")?);
    out.insert("classifier.bias".into(), take(&mut source, "_fc.bias")?);
    if !source.is_empty() {
        let mut left: Vec<_> = source.into_keys().collect();
        left.sort();
        return Err(format!("unexpected tensors: {}", left.join(", ")));
    }
    Ok(out)
}

fn take(source: &mut HashMap<String, PthTensor>, name: &str) -> Result<PthTensor, String> {
    source
        .remove(name)
        .ok_or_else(|| format!("missing tensor {name}"))
}

/// Folds batch norm `bn` into conv `conv` (which may have its own bias); returns weight and bias.
fn fold_conv(
    source: &mut HashMap<String, PthTensor>,
    conv: &str,
    bn: &str,
) -> Result<(PthTensor, PthTensor), String> {
    let mut weight = take(source, &format!("{conv}.weight"))?;
    let conv_bias = source.remove(&format!("{conv}.bias"));
    let [gamma, beta, mean, var] = ["weight", "bias", "running_mean", "running_var"]
        .map(|field| take(source, &format!("{bn}.{field}")));
    let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
    let outputs = weight.shape.first().copied().unwrap_or(0);
    for (what, t) in [("γ", &gamma), ("β", &beta), ("mean", &mean), ("var", &var)]
        .into_iter()
        .chain(conv_bias.as_ref().map(|b| ("conv bias", b)))
    {
        if t.shape != [outputs] {
            return Err(format!(
                "{bn} {what} has shape {:?}; {conv} has {outputs} outputs",
                t.shape
            ));
        }
    }
    if outputs == 0 || weight.data.len() % outputs != 0 {
        return Err(format!("{conv}.weight has shape {:?}", weight.shape));
    }
    let per_output = weight.data.len() / outputs;
    let mut bias = Vec::with_capacity(outputs);
    for o in 0..outputs {
        let variance = f64::from(var.data[o]);
        if variance.is_nan() || variance < 0.0 {
            return Err(format!("{bn}.running_var[{o}] is {variance}"));
        }
        let scale = f64::from(gamma.data[o]) / (variance + BATCH_NORM_EPS).sqrt();
        for w in &mut weight.data[o * per_output..(o + 1) * per_output] {
            *w = (f64::from(*w) * scale) as f32;
        }
        let b0 = conv_bias.as_ref().map_or(0.0, |b| f64::from(b.data[o]));
        bias.push(((b0 - f64::from(mean.data[o])) * scale + f64::from(beta.data[o])) as f32);
    }
    Ok((
        weight,
        PthTensor {
            shape: vec![outputs],
            data: bias,
        },
    ))
}

fn serialize(tensors: &BTreeMap<String, PthTensor>) -> Result<Vec<u8>, String> {
    let bytes: Vec<(&str, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let data = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.as_str(), t.shape.as_slice(), data)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F32, shape.to_vec(), data)
                .map(|view| (*name, view))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let metadata = HashMap::from([("format".to_owned(), FORMAT_METADATA.to_owned())]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], data: &[f32]) -> PthTensor {
        PthTensor {
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    /// Folding must give the same result as running the conv, then the batch norm.
    #[test]
    fn folded_conv_equals_conv_then_batch_norm() {
        // A 1×1 conv, 2 outputs × 3 inputs, applied to one pixel.
        let w = [0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75];
        let x = [0.3f32, -0.2, 0.9];
        let (gamma, beta, mean, var) = (
            [1.2f32, 0.7],
            [0.1f32, -0.3],
            [0.4f32, -1.1],
            [0.25f32, 2.0],
        );
        let mut source = HashMap::from([
            ("c.weight".to_owned(), t(&[2, 3, 1, 1], &w)),
            ("bn.weight".to_owned(), t(&[2], &gamma)),
            ("bn.bias".to_owned(), t(&[2], &beta)),
            ("bn.running_mean".to_owned(), t(&[2], &mean)),
            ("bn.running_var".to_owned(), t(&[2], &var)),
        ]);
        let (fw, fb) = fold_conv(&mut source, "c", "bn").unwrap();
        assert!(source.is_empty());
        for o in 0..2 {
            let conv: f64 = (0..3)
                .map(|i| f64::from(w[o * 3 + i]) * f64::from(x[i]))
                .sum();
            let bn = (conv - f64::from(mean[o])) / (f64::from(var[o]) + BATCH_NORM_EPS).sqrt()
                * f64::from(gamma[o])
                + f64::from(beta[o]);
            let folded: f64 = (0..3)
                .map(|i| f64::from(fw.data[o * 3 + i]) * f64::from(x[i]))
                .sum::<f64>()
                + f64::from(fb.data[o]);
            assert!((bn - folded).abs() < 1e-6, "{o}: {bn} vs {folded}");
        }
    }
}
