//! EfficientNet-Lite0 inference: the TF-ported network with batch norms folded into the convs.
//!
//! Activations are NHWC, held as `(height × width, channels)` candle tensors, so every 1×1
//! convolution is one matmul (candle → gemm) with the weight stored `(in, out)`. The stem's 3×3
//! stride-2 convolution is a matmul too, over 27-wide patches gathered here. Biases, ReLU6 and the
//! residual adds are fused in-place ops on the matmul outputs (one pass each instead of candle's
//! allocate-per-op), and the depthwise convolutions are [`crate::depthwise`]'s kernel.
//!
//! Structure (from the weights, checked at load): stem conv 3×3/2 → 16 inverted-residual blocks
//! (1×1 expand → depthwise k×k → 1×1 project, residual when the shape is kept; no
//! squeeze-excite) → 1×1 head conv → global average pool → linear classifier. Convolutions pad
//! TF-style ("SAME", asymmetric for stride 2); activations are ReLU6.

use candle_core::{
    CpuStorage, CustomOp1, Device, InplaceOp1, InplaceOp2, Layout, Shape, Tensor, bail,
};
use safetensors::{Dtype, SafeTensors};

use crate::depthwise::{Geometry, depthwise_bias_relu6, same_padding};

/// Side of the square network input, in pixels.
pub const INPUT_SIZE: usize = 224;
/// Number of ImageNet classes the classifier scores.
pub const NUM_CLASSES: usize = 1000;

/// Stride of each inverted-residual block of EfficientNet-Lite0: stages of 1, 2, 2, 3, 3, 4 and
/// 1 blocks with strides 1, 2, 2, 2, 1, 2, 1, where only a stage's first block strides. The
/// weights give kernel sizes and widths, not strides.
const BLOCK_STRIDES: [usize; 16] = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1];
const STEM_KERNEL: usize = 3;
const STEM_STRIDE: usize = 2;
const RGB: usize = 3;

/// The loaded network; immutable, so one instance serves concurrent calls.
pub(crate) struct Network {
    stem: Stem,
    blocks: Vec<Block>,
    head: Pointwise,
    classifier: Pointwise,
}

/// The 3×3 stride-2 stem conv as a matmul: weight `(ky, kx, c_in) × c_out`.
struct Stem {
    weight: Tensor,
    bias: Vec<f32>,
}

/// A 1×1 conv (or the linear classifier) as a matmul: weight `(in, out)`.
struct Pointwise {
    weight: Tensor,
    bias: Vec<f32>,
}

struct Depthwise {
    kernel: usize,
    stride: usize,
    /// `(ky, kx, channel)` row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// NHWC activations: `tensor` is `(height × width, channels)`.
struct FeatureMap {
    tensor: Tensor,
    height: usize,
    width: usize,
}

impl Network {
    /// Builds the network from the converted (BN-folded) safetensors bytes; see
    /// [`crate::convert`] for the tensor names.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Network, String> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not safetensors: {e}"))?;
        let weights = Weights(&st);

        let (stem_shape, stem_w) = weights.get("stem.weight", 4)?;
        let [stem_out, RGB, STEM_KERNEL, STEM_KERNEL] = stem_shape[..] else {
            return Err(format!(
                "stem.weight has shape {stem_shape:?}; expected [out, {RGB}, {STEM_KERNEL}, {STEM_KERNEL}]"
            ));
        };
        let (kh, kw) = (STEM_KERNEL, STEM_KERNEL);
        // (out, in, ky, kx) → ((ky, kx, in), out), the order the patch gatherer writes.
        let mut stem = vec![0.0f32; stem_w.len()];
        for o in 0..stem_out {
            for i in 0..RGB {
                for ky in 0..kh {
                    for kx in 0..kw {
                        stem[((ky * kw + kx) * RGB + i) * stem_out + o] =
                            stem_w[((o * RGB + i) * kh + ky) * kw + kx];
                    }
                }
            }
        }
        let stem = Stem {
            weight: tensor(stem, (kh * kw * RGB, stem_out)).map_err(|e| e.to_string())?,
            bias: weights.bias("stem.bias", stem_out)?,
        };

        let mut channels = stem_out;
        let mut blocks = Vec::with_capacity(BLOCK_STRIDES.len());
        for (index, &stride) in BLOCK_STRIDES.iter().enumerate() {
            let prefix = format!("blocks.{index}");
            let expand = if weights.has(&format!("{prefix}.expand.weight")) {
                Some(weights.pointwise(&format!("{prefix}.expand"), channels)?)
            } else {
                None
            };
            let inner = expand.as_ref().map_or(channels, |e| e.bias.len());
            let depthwise = weights.depthwise(&format!("{prefix}.depthwise"), inner, stride)?;
            let project = weights.pointwise(&format!("{prefix}.project"), inner)?;
            let out = project.bias.len();
            blocks.push(Block {
                expand,
                depthwise,
                project,
                residual: stride == 1 && out == channels,
            });
            channels = out;
        }
        if weights.has(&format!("blocks.{}.project.weight", BLOCK_STRIDES.len())) {
            return Err(format!(
                "more than {} blocks; not EfficientNet-Lite0",
                BLOCK_STRIDES.len()
            ));
        }
        let head = weights.pointwise("head", channels)?;
        let classifier = weights.pointwise("classifier", head.bias.len())?;
        if classifier.bias.len() != NUM_CLASSES {
            return Err(format!(
                "the classifier has {} classes, not {NUM_CLASSES}",
                classifier.bias.len()
            ));
        }
        Ok(Network {
            stem,
            blocks,
            head,
            classifier,
        })
    }

    /// The class logits for one `INPUT_SIZE × INPUT_SIZE × 3` NHWC input.
    pub fn forward(&self, input: &[f32]) -> candle_core::Result<Vec<f32>> {
        if input.len() != INPUT_SIZE * INPUT_SIZE * RGB {
            bail!(
                "the input has {} values, not {INPUT_SIZE}×{INPUT_SIZE}×{RGB}",
                input.len()
            );
        }
        let (patches, height, width) = stem_patches(input, INPUT_SIZE, INPUT_SIZE);
        let tensor = tensor(patches, (height * width, STEM_KERNEL * STEM_KERNEL * RGB))?
            .matmul(&self.stem.weight)?;
        tensor.inplace_op1(&AddBias {
            bias: &self.stem.bias,
            relu6: true,
        })?;
        let mut features = FeatureMap {
            tensor,
            height,
            width,
        };
        for block in &self.blocks {
            features = block.forward(features)?;
        }
        let head = self.head.forward(&features.tensor, true)?;
        let pooled = head.mean_keepdim(0)?;
        let logits = self.classifier.forward(&pooled, false)?;
        logits.flatten_all()?.to_vec1::<f32>()
    }
}

impl Block {
    fn forward(&self, input: FeatureMap) -> candle_core::Result<FeatureMap> {
        let expanded = match &self.expand {
            Some(expand) => expand.forward(&input.tensor, true)?,
            None => input.tensor.clone(),
        };
        let geometry = Geometry::same(
            input.height,
            input.width,
            self.depthwise.bias.len(),
            self.depthwise.kernel,
            self.depthwise.stride,
        );
        let filtered = expanded.apply_op1_no_bwd(&DepthwiseOp {
            conv: &self.depthwise,
            geometry,
        })?;
        let projected = filtered.matmul(&self.project.weight)?;
        let bias = &self.project.bias;
        if self.residual {
            projected.inplace_op2(&input.tensor, &AddBiasResidual { bias })?;
        } else {
            projected.inplace_op1(&AddBias { bias, relu6: false })?;
        }
        Ok(FeatureMap {
            tensor: projected,
            height: geometry.out_height,
            width: geometry.out_width,
        })
    }
}

impl Pointwise {
    fn forward(&self, input: &Tensor, relu6: bool) -> candle_core::Result<Tensor> {
        let output = input.matmul(&self.weight)?;
        output.inplace_op1(&AddBias {
            bias: &self.bias,
            relu6,
        })?;
        Ok(output)
    }
}

/// Gathers the stem conv's 3×3 patches (TF "SAME" padding, stride 2) of an NHWC image into rows
/// of `(ky, kx, channel)`; returns them with the output height and width.
fn stem_patches(input: &[f32], height: usize, width: usize) -> (Vec<f32>, usize, usize) {
    let (out_h, pad_top) = same_padding(height, STEM_KERNEL, STEM_STRIDE);
    let (out_w, pad_left) = same_padding(width, STEM_KERNEL, STEM_STRIDE);
    let patch = STEM_KERNEL * STEM_KERNEL * RGB;
    let mut patches = vec![0.0f32; out_h * out_w * patch];
    for (p, row) in patches.chunks_exact_mut(patch).enumerate() {
        let (oy, ox) = (p / out_w, p % out_w);
        for ky in 0..STEM_KERNEL {
            let Some(iy) = (oy * STEM_STRIDE + ky)
                .checked_sub(pad_top)
                .filter(|&y| y < height)
            else {
                continue;
            };
            for kx in 0..STEM_KERNEL {
                let Some(ix) = (ox * STEM_STRIDE + kx)
                    .checked_sub(pad_left)
                    .filter(|&x| x < width)
                else {
                    continue;
                };
                let src = (iy * width + ix) * RGB;
                let dst = (ky * STEM_KERNEL + kx) * RGB;
                row[dst..dst + RGB].copy_from_slice(&input[src..src + RGB]);
            }
        }
    }
    (patches, out_h, out_w)
}

fn tensor(data: Vec<f32>, shape: (usize, usize)) -> candle_core::Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// The contiguous f32 slice of a CPU tensor's storage.
fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("expected f32 activations")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("expected contiguous activations"),
    }
}

fn f32_slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("expected f32 activations")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => bail!("expected contiguous activations"),
    }
}

/// In place: `x + bias` per channel (the last dim), then ReLU6 if asked.
struct AddBias<'a> {
    bias: &'a [f32],
    relu6: bool,
}

impl InplaceOp1 for AddBias<'_> {
    fn name(&self) -> &'static str {
        "add-bias"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let data = f32_slice_mut(storage, layout)?;
        if data.len() % self.bias.len() != 0 {
            bail!(
                "{} values do not fit {} channels",
                data.len(),
                self.bias.len()
            );
        }
        for row in data.chunks_exact_mut(self.bias.len()) {
            for (x, b) in row.iter_mut().zip(self.bias) {
                *x += b;
            }
            if self.relu6 {
                for x in row.iter_mut() {
                    *x = x.clamp(0.0, 6.0);
                }
            }
        }
        Ok(())
    }
}

/// In place: `x + bias + residual` (a block's projection plus its input).
struct AddBiasResidual<'a> {
    bias: &'a [f32],
}

impl InplaceOp2 for AddBiasResidual<'_> {
    fn name(&self) -> &'static str {
        "add-bias-residual"
    }

    fn cpu_fwd(
        &self,
        storage: &mut CpuStorage,
        layout: &Layout,
        residual: &CpuStorage,
        residual_layout: &Layout,
    ) -> candle_core::Result<()> {
        let data = f32_slice_mut(storage, layout)?;
        let residual = f32_slice(residual, residual_layout)?;
        if data.len() != residual.len() || data.len() % self.bias.len() != 0 {
            bail!("residual shape mismatch");
        }
        let channels = self.bias.len();
        for (row, skip) in data
            .chunks_exact_mut(channels)
            .zip(residual.chunks_exact(channels))
        {
            for ((x, b), s) in row.iter_mut().zip(self.bias).zip(skip) {
                *x += b + s;
            }
        }
        Ok(())
    }
}

/// The depthwise conv + bias + ReLU6 of one block, as a candle op on `(h × w, c)` activations.
struct DepthwiseOp<'a> {
    conv: &'a Depthwise,
    geometry: Geometry,
}

impl CustomOp1 for DepthwiseOp<'_> {
    fn name(&self) -> &'static str {
        "depthwise-conv"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = f32_slice(storage, layout)?;
        let g = &self.geometry;
        if input.len() != g.in_height * g.in_width * g.channels {
            bail!("depthwise input has {} values", input.len());
        }
        let output = depthwise_bias_relu6(input, g, &self.conv.weight, &self.conv.bias);
        Ok((
            CpuStorage::F32(output),
            Shape::from((g.out_height * g.out_width, g.channels)),
        ))
    }
}

/// Typed access to the converted tensors.
struct Weights<'a>(&'a SafeTensors<'a>);

impl Weights<'_> {
    fn has(&self, name: &str) -> bool {
        self.0.tensor(name).is_ok()
    }

    /// An f32 tensor of the given rank: its shape and values.
    fn get(&self, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<f32>), String> {
        let view = self
            .0
            .tensor(name)
            .map_err(|_| format!("missing tensor {name}"))?;
        if view.dtype() != Dtype::F32 || view.shape().len() != rank {
            return Err(format!(
                "{name} is {:?} {:?}; expected f32 of rank {rank}",
                view.dtype(),
                view.shape()
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((view.shape().to_vec(), values))
    }

    fn bias(&self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        let (shape, values) = self.get(name, 1)?;
        if shape != [len] {
            return Err(format!("{name} has shape {shape:?}, expected [{len}]"));
        }
        Ok(values)
    }

    /// `{prefix}.weight` `(out, in, 1, 1)` (or `(out, in)` for the classifier) taking `inputs`
    /// channels, stored transposed as `(in, out)`.
    fn pointwise(&self, prefix: &str, inputs: usize) -> Result<Pointwise, String> {
        let name = format!("{prefix}.weight");
        let view = self
            .0
            .tensor(&name)
            .map_err(|_| format!("missing tensor {name}"))?;
        let rank = view.shape().len();
        let (shape, values) = self.get(&name, rank)?;
        let (outputs, ok) = match shape[..] {
            [o, i, 1, 1] | [o, i] => (o, i == inputs),
            _ => (0, false),
        };
        if !ok {
            return Err(format!(
                "{name} has shape {shape:?}; expected {inputs} inputs"
            ));
        }
        let mut transposed = vec![0.0f32; values.len()];
        for o in 0..outputs {
            for i in 0..inputs {
                transposed[i * outputs + o] = values[o * inputs + i];
            }
        }
        Ok(Pointwise {
            weight: tensor(transposed, (inputs, outputs)).map_err(|e| e.to_string())?,
            bias: self.bias(&format!("{prefix}.bias"), outputs)?,
        })
    }

    /// `{prefix}.weight` `(channels, 1, k, k)`, stored as `(k, k, channels)`.
    fn depthwise(&self, prefix: &str, channels: usize, stride: usize) -> Result<Depthwise, String> {
        let name = format!("{prefix}.weight");
        let (shape, values) = self.get(&name, 4)?;
        let kernel = shape[2];
        if shape != [channels, 1, kernel, kernel] || kernel % 2 == 0 {
            return Err(format!(
                "{name} has shape {shape:?}; expected [{channels}, 1, k, k] with k odd"
            ));
        }
        let taps = kernel * kernel;
        let mut weight = vec![0.0f32; values.len()];
        for c in 0..channels {
            for t in 0..taps {
                weight[t * channels + c] = values[c * taps + t];
            }
        }
        Ok(Depthwise {
            kernel,
            stride,
            weight,
            bias: self.bias(&format!("{prefix}.bias"), channels)?,
        })
    }
}
