//! A BERT encoder for sentence embeddings on CPU, without padding: the path of every embedding.
//!
//! Why not candle's `bert` (which remains the fallback and the reference the tests compare
//! against): a catalogue text is ~70 tokens, so one text is a handful of small matrix products
//! per layer, and what surrounds them decides the speed. Profiled on all-MiniLM-L6-v2 with one
//! text per call, candle spent ~10 % in a scalar `erf` (GELU), ~5 % in scalar `exp` (softmax),
//! ~20 % in its thread pool between small ops and ~5 % faulting in fresh tensors; and a batch is
//! padded to its longest text.
//!
//! Here the texts of a call are concatenated **without padding** (dense layers work per token;
//! attention runs per text and head), each dense layer is one `gemm` call with its bias (and
//! residual) preloaded into the output, attention is two small `gemm`s per (text, head) spread
//! over the cores, and GELU and softmax use branch-free `exp`/`erf` approximations accurate to
//! ~10⁻⁶ (well inside what f32 GELU and softmax carry anyway), which the compiler vectorizes.
//!
//! Covered: BERT with absolute positions and exact (erf) GELU, the sentence-transformers
//! models Marquee ships. [`BertEncoder::load`] says `Unsupported` otherwise.

use std::path::Path;

use candle_core::{Device, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

pub use crate::EngineLoadError as LoadError;

/// A dense layer: `y = x · Wᵀ + b`.
struct Dense {
    /// `Wᵀ`, row-major `[in × out]` (W column-major): `gemm` then reads it in place instead of
    /// packing the whole matrix on every call, which at ~70 rows a call was most of the work.
    weight_t: Vec<f32>,
    bias: Vec<f32>,
    out: usize,
    inp: usize,
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    /// Query, key and value stacked: `3·hidden` outputs.
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    intermediate: Dense,
    output: Dense,
    out_norm: Norm,
}

/// A loaded encoder.
pub struct BertEncoder {
    hidden: usize,
    heads: usize,
    eps: f32,
    vocab: usize,
    max_positions: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
}

impl BertEncoder {
    /// Loads `model.safetensors` with the dimensions of `config.json` (given parsed).
    pub fn load(weights: &Path, config: &serde_json::Value) -> Result<Self, LoadError> {
        let unsupported = |why: String| Err(LoadError::Unsupported(why));
        let get = |key: &str| config[key].as_u64().map(|v| v as usize);
        let act = config["hidden_act"].as_str().unwrap_or("gelu");
        if act != "gelu" {
            return unsupported(format!("activation {act:?}"));
        }
        let positions = config["position_embedding_type"]
            .as_str()
            .unwrap_or("absolute");
        if positions != "absolute" {
            return unsupported(format!("position embeddings {positions:?}"));
        }
        let (Some(hidden), Some(heads), Some(layers_n), Some(ffn)) = (
            get("hidden_size"),
            get("num_attention_heads"),
            get("num_hidden_layers"),
            get("intermediate_size"),
        ) else {
            return unsupported("config.json lacks a dimension".into());
        };
        if heads == 0 || hidden % heads != 0 {
            return unsupported(format!("{heads} heads for hidden size {hidden}"));
        }
        let eps = config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32;
        let tensors = candle_core::safetensors::load(weights, &Device::Cpu)?;
        // sentence-transformers files name tensors without a prefix; some BERT files carry
        // `bert.`.
        let prefix = if tensors.contains_key("embeddings.word_embeddings.weight") {
            ""
        } else {
            "bert."
        };
        let take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, LoadError> {
            let full = format!("{prefix}{name}");
            let t: &Tensor = tensors
                .get(&full)
                .ok_or_else(|| LoadError::Unsupported(format!("no tensor {full}")))?;
            if t.dims() != shape {
                return Err(LoadError::Unsupported(format!(
                    "{full} has shape {:?}, expected {shape:?}",
                    t.dims()
                )));
            }
            Ok(t.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?)
        };
        let dense = |name: &str, out: usize, inp: usize| -> Result<Dense, LoadError> {
            let w = take(&format!("{name}.weight"), &[out, inp])?;
            Ok(Dense {
                weight_t: transpose(&w, out, inp),
                bias: take(&format!("{name}.bias"), &[out])?,
                out,
                inp,
            })
        };
        let norm = |name: &str| -> Result<Norm, LoadError> {
            Ok(Norm {
                weight: take(&format!("{name}.weight"), &[hidden])?,
                bias: take(&format!("{name}.bias"), &[hidden])?,
            })
        };
        let word_t = tensors
            .get(&format!("{prefix}embeddings.word_embeddings.weight"))
            .ok_or_else(|| LoadError::Unsupported("no word embeddings".into()))?;
        let vocab = word_t.dims()[0];
        let pos_t = tensors
            .get(&format!("{prefix}embeddings.position_embeddings.weight"))
            .ok_or_else(|| LoadError::Unsupported("no position embeddings".into()))?;
        let max_positions = pos_t.dims()[0];
        let types = tensors
            .get(&format!("{prefix}embeddings.token_type_embeddings.weight"))
            .map(|t| t.dims()[0])
            .unwrap_or(0);
        let word = take("embeddings.word_embeddings.weight", &[vocab, hidden])?;
        let position = take(
            "embeddings.position_embeddings.weight",
            &[max_positions, hidden],
        )?;
        let token_type = take("embeddings.token_type_embeddings.weight", &[types, hidden])?;
        let embed_norm = norm("embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(layers_n);
        for l in 0..layers_n {
            let at = |part: &str| format!("encoder.layer.{l}.{part}");
            let q = dense(&at("attention.self.query"), hidden, hidden)?;
            let k = dense(&at("attention.self.key"), hidden, hidden)?;
            let v = dense(&at("attention.self.value"), hidden, hidden)?;
            // Wᵀ of the stacked [q; k; v] is each Wᵀ's rows side by side.
            let weight_t = (0..hidden)
                .flat_map(|j| {
                    [&q.weight_t, &k.weight_t, &v.weight_t]
                        .into_iter()
                        .flat_map(move |w| w[j * hidden..(j + 1) * hidden].iter().copied())
                })
                .collect();
            let qkv = Dense {
                weight_t,
                bias: [q.bias, k.bias, v.bias].concat(),
                out: 3 * hidden,
                inp: hidden,
            };
            layers.push(Layer {
                qkv,
                attn_out: dense(&at("attention.output.dense"), hidden, hidden)?,
                attn_norm: norm(&at("attention.output.LayerNorm"))?,
                intermediate: dense(&at("intermediate.dense"), ffn, hidden)?,
                output: dense(&at("output.dense"), hidden, ffn)?,
                out_norm: norm(&at("output.LayerNorm"))?,
            });
        }
        Ok(BertEncoder {
            hidden,
            heads,
            eps,
            vocab,
            max_positions,
            word,
            position,
            token_type,
            embed_norm,
            layers,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Mean-pooled, L2-normalised embeddings of token sequences (special tokens included;
    /// each at most [`Self::max_positions`] long, ids inside the vocabulary — the caller's
    /// tokenizer guarantees both; anything else is refused).
    pub fn embed(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let h = self.hidden;
        for ids in texts {
            if ids.is_empty() || ids.len() > self.max_positions {
                return Err(format!("a text of {} tokens", ids.len()));
            }
            if let Some(bad) = ids.iter().find(|&&t| t as usize >= self.vocab) {
                return Err(format!("token {bad} is outside the vocabulary"));
            }
        }
        let starts: Vec<usize> = texts
            .iter()
            .scan(0, |at, ids| {
                let s = *at;
                *at += ids.len();
                Some(s)
            })
            .collect();
        let m: usize = texts.iter().map(|ids| ids.len()).sum();
        // Embeddings: word + position + token type 0, normalised.
        let mut x = vec![0f32; m * h];
        x.par_chunks_mut(h)
            .zip(
                texts
                    .iter()
                    .flat_map(|ids| ids.iter().enumerate())
                    .collect::<Vec<_>>(),
            )
            .for_each(|(row, (p, &id))| {
                let w = &self.word[id as usize * h..][..h];
                let pe = &self.position[p * h..][..h];
                for i in 0..h {
                    row[i] = w[i] + pe[i] + self.token_type[i];
                }
                layer_norm(row, &self.embed_norm, self.eps);
            });
        let mut qkv = vec![0f32; m * 3 * h];
        let mut ctx = vec![0f32; m * h];
        let mut inter = vec![0f32; m * self.layers.first().map_or(0, |l| l.intermediate.out)];
        for layer in &self.layers {
            dense(&layer.qkv, &x, &mut qkv, m, false);
            self.attention(texts, &starts, &qkv, &mut ctx);
            // Output of attention added to its input (the residual, in place), normalised.
            dense(&layer.attn_out, &ctx, &mut x, m, true);
            x.par_chunks_mut(h)
                .for_each(|row| layer_norm(row, &layer.attn_norm, self.eps));
            dense(&layer.intermediate, &x, &mut inter, m, false);
            inter.par_chunks_mut(4096).for_each(gelu);
            dense(&layer.output, &inter, &mut x, m, true);
            x.par_chunks_mut(h)
                .for_each(|row| layer_norm(row, &layer.out_norm, self.eps));
        }
        Ok(texts
            .iter()
            .zip(&starts)
            .map(|(ids, &s)| {
                let mut v = vec![0f32; h];
                for row in x[s * h..(s + ids.len()) * h].chunks_exact(h) {
                    for (a, &b) in v.iter_mut().zip(row) {
                        *a += b;
                    }
                }
                let n = ids.len() as f32;
                v.iter_mut().for_each(|a| *a /= n);
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|a| *a /= norm);
                }
                v
            })
            .collect())
    }

    /// Scaled dot-product attention of every (text, head), written into `ctx` (`m × hidden`).
    fn attention(&self, texts: &[&[u32]], starts: &[usize], qkv: &[f32], ctx: &mut [f32]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let ctx_ptr = SendPtr(ctx.as_mut_ptr());
        let units: Vec<(usize, usize)> = (0..texts.len())
            .flat_map(|t| (0..self.heads).map(move |head| (t, head)))
            .collect();
        units.par_iter().for_each(|&(t, head)| {
            let (s, n) = (starts[t], texts[t].len());
            let mut scores = vec![0f32; n * n];
            let base = s * 3 * h + head * d;
            // SAFETY: Q, K and V of this text and head lie inside `qkv` (rows s..s+n, row
            // stride 3h, columns head·d..+d at offsets 0, h, 2h); `scores` is n × n.
            unsafe {
                gemm::gemm(
                    n,
                    n,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    qkv.as_ptr().add(base),
                    1,
                    3 * h as isize,
                    qkv.as_ptr().add(base + h),
                    3 * h as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                )
            };
            for row in scores.chunks_exact_mut(n) {
                softmax(row);
            }
            // SAFETY: the output block (rows s..s+n, columns head·d..+d of `ctx`, row stride h)
            // belongs to this (text, head) alone; V as above.
            unsafe {
                gemm::gemm(
                    n,
                    d,
                    n,
                    ctx_ptr.at(s * h + head * d),
                    1,
                    h as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    n as isize,
                    qkv.as_ptr().add(base + 2 * h),
                    1,
                    3 * h as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                )
            };
        });
    }
}

/// A pointer the attention tasks share; each writes its own block.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the blocks written through it are disjoint (one per text and head).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer `offset` floats on (a method, so that closures capture the whole `SendPtr`).
    ///
    /// # Safety
    /// `offset` stays inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's contract.
        unsafe { self.0.add(offset) }
    }
}

/// `out = x · Wᵀ + b` for `m` rows, or `out += x · Wᵀ + b` with `accumulate` (the residual).
fn dense(layer: &Dense, x: &[f32], out: &mut [f32], m: usize, accumulate: bool) {
    let (n, k) = (layer.out, layer.inp);
    assert!(x.len() >= m * k && out.len() >= m * n);
    for row in out[..m * n].chunks_exact_mut(n) {
        if accumulate {
            row.iter_mut().zip(&layer.bias).for_each(|(o, b)| *o += b);
        } else {
            row.copy_from_slice(&layer.bias);
        }
    }
    let threads = rayon::current_num_threads();
    let parallelism = if m * n * k >= 1 << 18 && threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: `x` is m × k, `out` m × n and `Wᵀ` k × n, all row-major and in bounds (asserted).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            layer.weight_t.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    };
}

/// The transpose of a row-major `rows × cols` matrix.
fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

fn layer_norm(row: &mut [f32], norm: &Norm, eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let r = 1.0 / (var + eps).sqrt();
    for ((v, &w), &b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
        *v = (*v - mean) * r * w + b;
    }
}

/// `e^x`: Cody–Waite reduction to `2^k · e^r` with |r| ≤ ln 2 / 2, a degree-7 Taylor polynomial
/// for `e^r` (relative error < 2·10⁻⁸ before rounding), no branches (vectorizes).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to integer
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^k from the bits of k + 127 + 2^23 (the low mantissa bits of that float are k + 127):
    // no float-to-int conversion, which would not vectorize.
    let scale = f32::from_bits((k + 8_388_735.0).to_bits() << 23);
    p * scale
}

/// `erf(x)`, Abramowitz & Stegun 7.1.26 (absolute error < 1.5·10⁻⁷ in exact arithmetic, < 10⁻⁶
/// in f32), without branches.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// Exact GELU, `x · Φ(x)`, in place.
fn gelu(xs: &mut [f32]) {
    for v in xs {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    // Exponentials first (vectorizes), then their sum.
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let r = 1.0 / row.iter().sum::<f32>();
    row.iter_mut().for_each(|v| *v *= r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_match_the_standard_library() {
        let mut worst_exp = 0f64;
        let mut worst_erf = 0f64;
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0; // −20 … 20
            let e = exp(x) as f64;
            let want = (x as f64).exp();
            worst_exp = worst_exp.max(((e - want) / want).abs());
            let x = i as f32 / 6000.0; // −3.3 … 3.3
            worst_erf = worst_erf.max((erf(x) as f64 - series_erf(x as f64)).abs());
        }
        assert!(worst_exp < 3e-7, "exp relative error {worst_exp}");
        assert!(worst_erf < 1e-6, "erf absolute error {worst_erf}");
        for x in [4.0f32, 5.0, 8.0] {
            assert!((erf(x) - 1.0).abs() < 1e-6 && (erf(-x) + 1.0).abs() < 1e-6);
        }
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(-87.0) > 0.0 && exp(88.0).is_finite());
    }

    /// erf by its Maclaurin series in f64: 2/√π Σ (−1)ⁿ x²ⁿ⁺¹ / (n! (2n+1)); for |x| ≤ 3.3
    /// the cancellation costs fewer than 5 of f64's 16 digits.
    fn series_erf(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0.0;
        while n < 200.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if term.abs() < 1e-30 {
                break;
            }
        }
        (sum * 2.0 / std::f64::consts::PI.sqrt()).clamp(-1.0, 1.0)
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row = vec![1.0, 3.0, -2.0, 3.0, 0.5];
        softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(row[1], row[3]);
        assert!(row[1] > row[0] && row[0] > row[4] && row[4] > row[2]);
    }
}
