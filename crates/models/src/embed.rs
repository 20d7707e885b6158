//! Sentence embeddings with a BERT encoder (all-MiniLM-L6-v2 and its kin), as
//! sentence-transformers computes them: WordPiece tokens, the encoder, mean pooling over the
//! attention mask, L2 normalisation. Cosine similarity is then a dot product.
//!
//! A batch is tokenised, sorted by length and cut into sub-batches of similar length, so that
//! padding (wasted work) stays small when short and long texts arrive together — the same trick
//! sentence-transformers' `encode` uses.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

use crate::bert::{self, BertEncoder};
use crate::runtime::ModelError;

/// Which encoder runs a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoder {
    /// Marquee's own ([`crate::bert`]) where it covers the model, candle's otherwise.
    Marquee,
    /// candle's `bert` (the reference; tests and the benchmark compare both).
    Candle,
}

enum Engine {
    Lean(BertEncoder),
    Candle(BertModel),
}

/// How many texts one forward pass takes at most.
const SUB_BATCH: usize = 32;
/// Padded tokens a sub-batch may have beyond its real ones: 20 %.
const MAX_PADDING: f64 = 1.2;

/// Cuts `order` (longest first) into sub-batches of similar length: a text joins the current
/// one while padding every text to the longest stays within [`MAX_PADDING`] of the real tokens.
/// (One pass padded to its longest text did 2.5× the real work on catalogue text.)
fn sub_batches(order: &[usize], len: impl Fn(usize) -> usize) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut real = 0usize;
    for (pos, &i) in order.iter().enumerate() {
        let n = pos - start;
        let longest = order.get(start).map_or(0, |&s| len(s));
        let fits =
            n < SUB_BATCH && ((n + 1) * longest) as f64 <= MAX_PADDING * (real + len(i)) as f64;
        if n > 0 && !fits {
            out.push(&order[start..pos]);
            start = pos;
            real = 0;
        }
        real += len(i);
    }
    if start < order.len() {
        out.push(&order[start..]);
    }
    out
}

/// A loaded embedding model.
pub struct Embedder {
    engine: Engine,
    tokenizer: Tokenizer,
    /// Tokens per text the model was trained for, special tokens included.
    max_tokens: usize,
    dimensions: usize,
    device: Device,
}

/// Embeddings of a batch, in input order, with the tokens they took.
#[derive(Debug)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens per input, special tokens included (what `usage.prompt_tokens` counts).
    pub tokens: Vec<usize>,
}

/// What to do with a text longer than the model's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse the request (the API: the caller should know their text was not all read).
    Reject,
    /// Embed the first `max_tokens` tokens (catalogue text, where the start says the most).
    Truncate,
}

impl Embedder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, max_tokens: usize) -> Result<Self, ModelError> {
        Self::load_with(dir, max_tokens, Encoder::Marquee)
    }

    /// [`Embedder::load`] with the encoder chosen.
    pub fn load_with(dir: &Path, max_tokens: usize, encoder: Encoder) -> Result<Self, ModelError> {
        let load_err = |what: &str, e: &dyn std::fmt::Display| {
            ModelError::Load(format!("{}: {what}: {e}", dir.display()))
        };
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load_err("config.json", &e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| load_err("config.json", &e))?;
        let hidden: serde_json::Value =
            serde_json::from_str(&config_text).map_err(|e| load_err("config.json", &e))?;
        let dimensions = hidden["hidden_size"].as_u64().unwrap_or(0) as usize;
        let max_positions = hidden["max_position_embeddings"].as_u64().unwrap_or(512) as usize;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_err("tokenizer.json", &e))?;
        // Padding and truncation are decided per call, not by whatever the file says.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| load_err("tokenizer.json", &e))?;
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        let lean = match encoder {
            Encoder::Marquee => match BertEncoder::load(&weights, &hidden) {
                Ok(model) => Some(model),
                Err(bert::LoadError::Unsupported(why)) => {
                    tracing::info!(model = %dir.display(), %why, "embeddings run on candle's encoder");
                    None
                }
                Err(e) => return Err(load_err("model.safetensors", &e)),
            },
            Encoder::Candle => None,
        };
        let engine = match lean {
            Some(model) => Engine::Lean(model),
            None => {
                // SAFETY: the file is memory-mapped read-only; the models directory is
                // Marquee's own and files are replaced by rename, never rewritten in place.
                let vb =
                    unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
                        .map_err(|e| load_err("model.safetensors", &e))?;
                Engine::Candle(BertModel::load(vb, &config).map_err(|e| load_err("model", &e))?)
            }
        };
        Ok(Embedder {
            engine,
            tokenizer,
            max_tokens: max_tokens.min(max_positions),
            dimensions,
            device,
        })
    }

    /// Which encoder runs this model.
    pub fn encoder(&self) -> Encoder {
        match self.engine {
            Engine::Lean(_) => Encoder::Marquee,
            Engine::Candle(_) => Encoder::Candle,
        }
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token ids of each text, special tokens included; over-long texts are cut or refused.
    fn tokenize(&self, texts: &[&str], overflow: Overflow) -> Result<Vec<Vec<u32>>, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Inference(format!("tokenizer: {e}")))?;
        let mut out = Vec::with_capacity(encodings.len());
        for (index, enc) in encodings.into_iter().enumerate() {
            let mut ids = enc.get_ids().to_vec();
            if ids.len() > self.max_tokens {
                match overflow {
                    Overflow::Reject => {
                        return Err(ModelError::InputTooLong {
                            index,
                            tokens: ids.len(),
                            limit: self.max_tokens,
                        });
                    }
                    Overflow::Truncate => {
                        // Keep [CLS] and the first tokens, end with [SEP] as the model expects.
                        let sep = *ids.last().unwrap_or(&0);
                        ids.truncate(self.max_tokens - 1);
                        ids.push(sep);
                    }
                }
            }
            out.push(ids);
        }
        Ok(out)
    }

    /// Tokens each text takes (special tokens included), without running the model.
    pub fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>, ModelError> {
        Ok(self
            .tokenize(texts, Overflow::Truncate)?
            .iter()
            .map(Vec::len)
            .collect())
    }

    /// Refuses texts longer than the model reads (with the index of the first one).
    pub fn check_lengths(&self, texts: &[&str]) -> Result<(), ModelError> {
        self.tokenize(texts, Overflow::Reject).map(|_| ())
    }

    /// Embeds `texts`; every vector has unit length.
    pub fn embed(&self, texts: &[&str], overflow: Overflow) -> Result<Embeddings, ModelError> {
        let ids = self.tokenize(texts, overflow)?;
        let tokens: Vec<usize> = ids.iter().map(Vec::len).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut vectors = vec![Vec::new(); ids.len()];
        if let Engine::Lean(model) = &self.engine {
            // No padding on this path: any texts go together.
            for chunk in order.chunks(SUB_BATCH) {
                let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
                let pooled = model.embed(&batch).map_err(ModelError::Inference)?;
                for (&i, v) in chunk.iter().zip(pooled) {
                    vectors[i] = v;
                }
            }
            return Ok(Embeddings { vectors, tokens });
        }
        for chunk in sub_batches(&order, |i| ids[i].len()) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let pooled = self.forward(&batch)?;
            for (&i, v) in chunk.iter().zip(pooled) {
                vectors[i] = v;
            }
        }
        Ok(Embeddings { vectors, tokens })
    }

    /// One padded forward pass of candle's encoder; mean pooling over real tokens; L2
    /// normalisation.
    fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, ModelError> {
        let inference = |e: candle_core::Error| ModelError::Inference(e.to_string());
        let Engine::Candle(model) = &self.engine else {
            return Err(ModelError::Inference("not candle's encoder".into()));
        };
        let len = batch.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
        let n = batch.len();
        let mut input = vec![0u32; n * len];
        let mut mask = vec![0u32; n * len];
        for (row, ids) in batch.iter().enumerate() {
            input[row * len..row * len + ids.len()].copy_from_slice(ids);
            mask[row * len..row * len + ids.len()].fill(1);
        }
        let input = Tensor::from_vec(input, (n, len), &self.device).map_err(inference)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device).map_err(inference)?;
        let types = input.zeros_like().map_err(inference)?;
        let hidden = model
            .forward(&input, &types, Some(&mask))
            .map_err(inference)?; // [n, len, d]
        let mask_f = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .map_err(inference)?; // [n, len, 1]
        let summed = hidden
            .broadcast_mul(&mask_f)
            .and_then(|h| h.sum(1))
            .map_err(inference)?; // [n, d]
        let counts = mask_f.sum(1).map_err(inference)?; // [n, 1]
        let mean = summed.broadcast_div(&counts).map_err(inference)?;
        let rows: Vec<Vec<f32>> = mean.to_vec2().map_err(inference)?;
        Ok(rows
            .into_iter()
            .map(|mut v| {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::sub_batches;

    #[test]
    fn sub_batches_group_similar_lengths_and_cover_everything() {
        let lens = [200usize, 190, 180, 60, 58, 57, 10, 9, 9, 9];
        let order: Vec<usize> = (0..lens.len()).collect();
        let batches = sub_batches(&order, |i| lens[i]);
        let flat: Vec<usize> = batches.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(flat, order);
        for b in &batches {
            let longest = lens[b[0]];
            let real: usize = b.iter().map(|&i| lens[i]).sum();
            assert!((b.len() * longest) as f64 <= 1.2 * real as f64 || b.len() == 1);
        }
        assert_eq!(batches.len(), 3, "{batches:?}");
        let same = vec![5usize; 100];
        let order: Vec<usize> = (0..100).collect();
        let batches = sub_batches(&order, |i| same[i]);
        assert!(batches.iter().all(|b| b.len() <= 32));
    }
}
