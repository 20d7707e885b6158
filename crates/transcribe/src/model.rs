//! Whisper's text decoder with a self-attention key/value cache.
//!
//! The encoder is candle-transformers' `AudioEncoder`, used unchanged. Its `TextDecoder`
//! caches only the cross-attention keys/values and re-runs every previous token at each
//! step, which makes a step cost grow with the prompt plus the text so far (up to 448
//! positions through every layer). This decoder keeps the self-attention keys/values too, so
//! a step processes one token; it reads the same `model.decoder.*` tensors.

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use crate::convert::WhisperConfig;

type Result<T> = candle_core::Result<T>;

fn linear(vb: &VarBuilder, name: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
    let vb = vb.pp(name);
    let weight = vb.get((d_out, d_in), "weight")?;
    let bias = if bias {
        Some(vb.get(d_out, "bias")?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

fn layer_norm(vb: &VarBuilder, name: &str, d: usize) -> Result<LayerNorm> {
    let vb = vb.pp(name);
    Ok(LayerNorm::new(
        vb.get(d, "weight")?,
        vb.get(d, "bias")?,
        1e-5,
    ))
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    n_head: usize,
}

impl Attention {
    fn load(vb: &VarBuilder, name: &str, d: usize, n_head: usize) -> Result<Self> {
        let vb = vb.pp(name);
        Ok(Self {
            query: linear(&vb, "q_proj", d, d, true)?,
            key: linear(&vb, "k_proj", d, d, false)?,
            value: linear(&vb, "v_proj", d, d, true)?,
            out: linear(&vb, "out_proj", d, d, true)?,
            n_head,
        })
    }

    /// `[1, n, d]` -> `[1, heads, n, d / heads]`, contiguous.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        x.reshape((b, n, self.n_head, d / self.n_head))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Scaled dot-product attention of `q` (`[1, n, d]`, not yet split) over split `k`, `v`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, n, d) = q.dims3()?;
        let scale = 1.0 / ((d / self.n_head) as f64).sqrt();
        let q = (self.split_heads(q)? * scale)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let mixed = weights.matmul(v)?.transpose(1, 2)?.reshape((b, n, d))?;
        self.out.forward(&mixed)
    }
}

struct Block {
    self_attn: Attention,
    self_attn_ln: LayerNorm,
    cross_attn: Attention,
    cross_attn_ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    mlp_ln: LayerNorm,
}

/// Decoder weights; immutable and shared by all concurrent transcriptions.
pub struct TextDecoder {
    token_embedding: Embedding,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    n_ctx: usize,
}

/// Per-decode state: cross-attention keys/values for one audio window and the growing
/// self-attention cache.
pub struct DecoderState {
    cross: Vec<(Tensor, Tensor)>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl DecoderState {
    /// Tokens processed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Forgets the tokens, keeping the audio (for another decode of the same window).
    pub fn reset(&mut self) {
        self.cache.iter_mut().for_each(|c| *c = None);
        self.len = 0;
    }
}

impl TextDecoder {
    pub fn load(vb: &VarBuilder, config: &WhisperConfig) -> Result<Self> {
        let vb = vb.pp("model.decoder");
        let d = config.d_model;
        let n_head = config.decoder_attention_heads;
        let token_embedding =
            Embedding::new(vb.get((config.vocab_size, d), "embed_tokens.weight")?, d);
        let positions = vb.get((config.max_target_positions, d), "embed_positions.weight")?;
        let blocks = (0..config.decoder_layers)
            .map(|i| {
                let vb = vb.pp(format!("layers.{i}"));
                Ok(Block {
                    self_attn: Attention::load(&vb, "self_attn", d, n_head)?,
                    self_attn_ln: layer_norm(&vb, "self_attn_layer_norm", d)?,
                    cross_attn: Attention::load(&vb, "encoder_attn", d, n_head)?,
                    cross_attn_ln: layer_norm(&vb, "encoder_attn_layer_norm", d)?,
                    fc1: linear(&vb, "fc1", d, 4 * d, true)?,
                    fc2: linear(&vb, "fc2", 4 * d, d, true)?,
                    mlp_ln: layer_norm(&vb, "final_layer_norm", d)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            token_embedding,
            positions,
            blocks,
            ln: layer_norm(&vb, "layer_norm", d)?,
            n_ctx: config.max_target_positions,
        })
    }

    /// Longest token sequence (prompt included) the decoder can attend over.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Projects the encoder output `[1, frames, d]` to every layer's cross keys/values.
    pub fn start(&self, audio_features: &Tensor) -> Result<DecoderState> {
        let cross = self
            .blocks
            .iter()
            .map(|b| {
                let attn = &b.cross_attn;
                let k = attn.split_heads(&attn.key.forward(audio_features)?)?;
                let v = attn.split_heads(&attn.value.forward(audio_features)?)?;
                Ok((k, v))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DecoderState {
            cache: vec![None; cross.len()],
            cross,
            len: 0,
        })
    }

    /// Feeds `tokens` after those already in `state` and returns the logits (`[n, vocab]`,
    /// f32) for the positions listed in `want` (indices into `tokens`).
    pub fn forward(
        &self,
        tokens: &[u32],
        state: &mut DecoderState,
        want: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        let n = tokens.len();
        let offset = state.len;
        if n == 0 || offset + n > self.n_ctx {
            candle_core::bail!(
                "decoder context is {} tokens; asked for {} more after {offset}",
                self.n_ctx,
                n
            );
        }
        let device = self.positions.device();
        let ids = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let mut x = self
            .token_embedding
            .forward(&ids)?
            .broadcast_add(&self.positions.narrow(0, offset, n)?)?;
        let mask = causal_mask(n, offset, device)?;
        for (i, block) in self.blocks.iter().enumerate() {
            // Self-attention over the cache plus the new tokens.
            let h = block.self_attn_ln.forward(&x)?;
            let attn = &block.self_attn;
            let q = attn.query.forward(&h)?;
            let k = attn.split_heads(&attn.key.forward(&h)?)?;
            let v = attn.split_heads(&attn.value.forward(&h)?)?;
            let (k, v) = match state.cache[i].take() {
                Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                None => (k, v),
            };
            x = (x + attn.attend(&q, &k, &v, mask.as_ref())?)?;
            state.cache[i] = Some((k, v));
            // Cross-attention over the audio.
            let h = block.cross_attn_ln.forward(&x)?;
            let (ck, cv) = &state.cross[i];
            let q = block.cross_attn.query.forward(&h)?;
            x = (&x + block.cross_attn.attend(&q, ck, cv, None)?)?;
            // Feed-forward.
            let h = block.mlp_ln.forward(&x)?;
            x = (&x + block.fc2.forward(&block.fc1.forward(&h)?.gelu_erf()?)?)?;
        }
        state.len += n;
        let x = self.ln.forward(&x)?.squeeze(0)?;
        // Output projection tied to the token embedding. `E · h` streams the `[vocab, d]`
        // matrix row by row, which measured faster here than `h · Eᵀ`.
        let embeddings = self.token_embedding.embeddings();
        want.iter()
            .map(|&p| {
                embeddings
                    .matmul(&x.i(p..p + 1)?.t()?)?
                    .squeeze(1)?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()
            })
            .collect()
    }
}

/// Additive mask letting new token `i` (absolute position `offset + i`) see positions
/// `0..=offset + i`; `None` for a single token, which may see everything.
fn causal_mask(n: usize, offset: usize, device: &Device) -> Result<Option<Tensor>> {
    if n == 1 {
        return Ok(None);
    }
    let total = offset + n;
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (n, total), device).map(Some)
}
