//! Text generation with quantized LLaMA-family models in GGUF (SmolLM2 and its kin).
//!
//! The GGUF file carries everything: the quantized weights, the tokenizer (vocabulary and
//! merges) and the special tokens, so a model is one file. Weights are shared between
//! concurrent generations; each generation owns its key/value cache. The decoder is Marquee's
//! own ([`crate::llama`], 2.5× candle's decode speed on the default model) wherever it covers
//! the model, candle's `quantized_llama` otherwise.
//!
//! Decoding is incremental: after each token the text decoded so far is compared with what was
//! already emitted, and only complete UTF-8 that cannot be the start of a stop sequence is
//! handed to the caller, so a stream never shows half a character or half a stop string.

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::ModelWeights;
use tokenizers::Tokenizer;

use crate::llama::{self, Llama};
use crate::runtime::ModelError;

/// Which decoder runs a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoder {
    /// Marquee's own ([`crate::llama`]) where it covers the model, candle's otherwise.
    Marquee,
    /// candle's `quantized_llama` (the reference; the benchmark runs both).
    Candle,
}

/// The loaded weights, in the form the chosen decoder runs.
enum Engine {
    Lean(Llama),
    Candle(ModelWeights),
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// Sampling and length settings of one generation (OpenAI's meanings).
#[derive(Clone, Debug)]
pub struct GenerationParams {
    /// Upper bound on generated tokens; `None`: up to the context length.
    pub max_tokens: Option<usize>,
    /// 0 is greedy (deterministic); OpenAI's default is 1.
    pub temperature: f64,
    pub top_p: f64,
    /// Same seed, same prompt, same settings: same output.
    pub seed: Option<u64>,
    /// Generation ends before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams {
            max_tokens: None,
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            stop: Vec::new(),
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
        }
    }
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn, or a stop string was met.
    Stop,
    /// `max_tokens` or the context length was reached.
    Length,
    /// The caller stopped listening (a dropped stream).
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// The result of a generation.
#[derive(Clone, Debug)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
    /// Seconds from start to the first generated token (prompt processing included).
    pub time_to_first_token: f64,
    pub seconds: f64,
}

/// How messages are laid out for the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\ncontent<|im_end|>\n…<|im_start|>assistant\n` (SmolLM2, Qwen).
    ChatMl,
}

/// A loaded generation model.
pub struct ChatModel {
    engine: Engine,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    /// Tokens that end the assistant's turn.
    end_tokens: Vec<u32>,
    context_tokens: usize,
    /// Bytes of weights read per generated token (all tensors, quantized).
    weight_bytes: u64,
    default_system: Option<String>,
    device: Device,
}

impl ChatModel {
    /// Loads a GGUF file: weights and tokenizer.
    pub fn load(
        path: &Path,
        template: ChatTemplate,
        context_tokens: usize,
        stop_tokens: &[String],
        default_system: Option<String>,
    ) -> Result<Self, ModelError> {
        Self::load_with(
            path,
            template,
            context_tokens,
            stop_tokens,
            default_system,
            Decoder::Marquee,
        )
    }

    /// [`ChatModel::load`] with the decoder chosen (the benchmark compares both).
    pub fn load_with(
        path: &Path,
        template: ChatTemplate,
        context_tokens: usize,
        stop_tokens: &[String],
        default_system: Option<String>,
        decoder: Decoder,
    ) -> Result<Self, ModelError> {
        let load_err =
            |e: &dyn std::fmt::Display| ModelError::Load(format!("{}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(|e| load_err(&e))?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| load_err(&e))?;
        let device = Device::Cpu;
        let tokenizer = Tokenizer::from_gguf(&content).map_err(|e| load_err(&e))?;
        let lean = match decoder {
            Decoder::Marquee => match Llama::from_gguf(&content, &mut file) {
                Ok(model) => Some(model),
                Err(llama::LoadError::Unsupported(why)) => {
                    tracing::info!(model = %path.display(), %why, "generation runs on candle's decoder");
                    None
                }
                Err(e) => return Err(load_err(&e)),
            },
            Decoder::Candle => None,
        };
        let (engine, weight_bytes) = match lean {
            Some(model) => {
                let bytes = model.weight_bytes();
                (Engine::Lean(model), bytes)
            }
            None => Self::load_candle(content, file, &device).map_err(|e| load_err(&e))?,
        };
        let mut end_tokens = Vec::new();
        for token in stop_tokens {
            match tokenizer.token_to_id(token) {
                Some(id) => end_tokens.push(id),
                None => {
                    return Err(load_err(&format!(
                        "the stop token {token:?} is not in the model's vocabulary"
                    )));
                }
            }
        }
        Ok(ChatModel {
            engine,
            tokenizer: Arc::new(tokenizer),
            template,
            end_tokens,
            context_tokens: context_tokens
                .min(candle_transformers::models::quantized_llama::MAX_SEQ_LEN),
            weight_bytes,
            default_system,
            device,
        })
    }

    /// candle's decoder, with the tensors it has no SIMD kernel for converted to Q8_0.
    fn load_candle(
        content: gguf_file::Content,
        mut file: std::fs::File,
        device: &Device,
    ) -> candle_core::Result<(Engine, u64)> {
        let mut requantized = None;
        if content
            .tensor_infos
            .values()
            .any(|t| needs_requantization(t.ggml_dtype))
        {
            let bytes = requantize(&content, &mut file, device)?;
            requantized = Some(std::io::Cursor::new(bytes));
        }
        let (content, mut reader): (gguf_file::Content, Box<dyn ReadSeek>) = match requantized {
            Some(mut cursor) => {
                let content = gguf_file::Content::read(&mut cursor)?;
                (content, Box::new(cursor))
            }
            None => (content, Box::new(file)),
        };
        let weight_bytes = content
            .tensor_infos
            .values()
            .map(|t| {
                let elems = t.shape.elem_count();
                (elems / t.ggml_dtype.block_size() * t.ggml_dtype.type_size()) as u64
            })
            .sum();
        let weights = ModelWeights::from_gguf(content, &mut reader, device)?;
        Ok((Engine::Candle(weights), weight_bytes))
    }

    pub fn context_tokens(&self) -> usize {
        self.context_tokens
    }

    /// Bytes of weights one decoding step reads (for the memory-bandwidth bound).
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }

    /// The prompt text for `messages`, ending where the assistant's reply begins.
    pub fn render(&self, messages: &[Message]) -> String {
        match self.template {
            ChatTemplate::ChatMl => {
                let mut out = String::new();
                if !messages
                    .iter()
                    .any(|m| m.role == "system" || m.role == "developer")
                    && let Some(system) = &self.default_system
                {
                    out.push_str("<|im_start|>system\n");
                    out.push_str(system);
                    out.push_str("<|im_end|>\n");
                }
                for m in messages {
                    // OpenAI's newer "developer" role is the system role for this template.
                    let role = if m.role == "developer" {
                        "system"
                    } else {
                        m.role.as_str()
                    };
                    out.push_str("<|im_start|>");
                    out.push_str(role);
                    out.push('\n');
                    out.push_str(&m.content);
                    out.push_str("<|im_end|>\n");
                }
                out.push_str("<|im_start|>assistant\n");
                out
            }
        }
    }

    /// Token ids of a rendered prompt (special tokens in the text are recognised).
    pub fn tokenize(&self, prompt: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| ModelError::Inference(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Checks that a prompt of `prompt_tokens` leaves room for `max_tokens`; returns how many
    /// tokens may be generated.
    pub fn budget(
        &self,
        prompt_tokens: usize,
        max_tokens: Option<usize>,
    ) -> Result<usize, ModelError> {
        let room = self.context_tokens.saturating_sub(prompt_tokens);
        match max_tokens {
            _ if room == 0 => Err(ModelError::ContextTooLong {
                tokens: prompt_tokens,
                limit: self.context_tokens,
            }),
            Some(n) if n > room => Err(ModelError::ContextTooLong {
                tokens: prompt_tokens + n,
                limit: self.context_tokens,
            }),
            Some(n) => Ok(n),
            None => Ok(room),
        }
    }

    /// Which decoder runs this model (Marquee's own unless the model needs candle's).
    pub fn decoder(&self) -> Decoder {
        match self.engine {
            Engine::Lean(_) => Decoder::Marquee,
            Engine::Candle(_) => Decoder::Candle,
        }
    }

    /// The next-token logits after `tokens` (a fresh context).
    pub fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() || tokens.len() > self.context_tokens {
            return Err(ModelError::ContextTooLong {
                tokens: tokens.len(),
                limit: self.context_tokens,
            });
        }
        let mut state = self.new_state(tokens.len());
        self.forward(&mut state, tokens, 0)
    }

    /// Generates a reply to `prompt` (token ids). `on_text` receives each new piece of text as
    /// soon as it is final and returns `false` to stop (the client went away).
    pub fn generate(
        &self,
        prompt: &[u32],
        params: &GenerationParams,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation, ModelError> {
        let started = std::time::Instant::now();
        let inference = |e: candle_core::Error| ModelError::Inference(e.to_string());
        let budget = self.budget(prompt.len(), params.max_tokens)?;
        let sampling = if params.temperature <= 1e-7 {
            Sampling::ArgMax
        } else if params.top_p > 0.0 && params.top_p < 1.0 {
            Sampling::TopP {
                p: params.top_p,
                temperature: params.temperature,
            }
        } else {
            Sampling::All {
                temperature: params.temperature,
            }
        };
        let seed = params.seed.unwrap_or_else(random_seed);
        let mut sampler = LogitsProcessor::from_sampling(seed, sampling);
        let mut generated: Vec<u32> = Vec::new();
        let mut counts: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        let mut emitted = 0usize; // bytes of `text` handed to the caller
        let mut text = String::new();
        let mut finish = FinishReason::Length;
        let mut first_token_at = None;

        let mut state = self.new_state(prompt.len() + budget);
        let mut logits = self.forward(&mut state, prompt, 0)?;
        let mut position = prompt.len();
        while generated.len() < budget {
            if params.frequency_penalty != 0.0 || params.presence_penalty != 0.0 {
                for (&token, &count) in &counts {
                    if let Some(l) = logits.get_mut(token as usize) {
                        *l -= count as f32 * params.frequency_penalty + params.presence_penalty;
                    }
                }
            }
            let n = logits.len();
            let logits_row = Tensor::from_vec(logits, n, &self.device).map_err(inference)?;
            let next = sampler.sample(&logits_row).map_err(inference)?;
            if first_token_at.is_none() {
                first_token_at = Some(started.elapsed().as_secs_f64());
            }
            if self.end_tokens.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            generated.push(next);
            *counts.entry(next).or_default() += 1;
            text = self
                .tokenizer
                .decode(&generated, true)
                .map_err(|e| ModelError::Inference(format!("tokenizer: {e}")))?;
            if let Some(at) = params
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| {
                    text[emitted.min(text.len())..]
                        .find(s.as_str())
                        .map(|i| i + emitted)
                })
                .min()
            {
                text.truncate(at);
                if at > emitted && !on_text(&text[emitted..at]) {
                    finish = FinishReason::Cancelled;
                } else {
                    finish = FinishReason::Stop;
                }
                emitted = at;
                break;
            }
            // Hold back an incomplete character and any tail that could begin a stop string.
            let mut safe = text.len();
            if text.ends_with('\u{FFFD}') {
                safe = text.len() - '\u{FFFD}'.len_utf8();
            }
            for stop in params.stop.iter().filter(|s| !s.is_empty()) {
                for k in (1..stop.len()).rev() {
                    if stop.is_char_boundary(k) && text[..safe].ends_with(&stop[..k]) {
                        safe -= k;
                        break;
                    }
                }
            }
            if safe > emitted && text.is_char_boundary(safe) {
                if !on_text(&text[emitted..safe]) {
                    finish = FinishReason::Cancelled;
                    break;
                }
                emitted = safe;
            }
            if generated.len() >= budget {
                break;
            }
            logits = self.forward(&mut state, &[next], position)?;
            position += 1;
        }
        if finish != FinishReason::Cancelled && emitted < text.len() {
            let tail = text[emitted..].trim_end_matches('\u{FFFD}').to_string();
            if !tail.is_empty() && !on_text(&tail) {
                finish = FinishReason::Cancelled;
            }
            text.truncate(emitted + tail.len());
        }
        Ok(Generation {
            text,
            prompt_tokens: prompt.len(),
            completion_tokens: generated.len(),
            finish_reason: finish,
            time_to_first_token: first_token_at.unwrap_or_else(|| started.elapsed().as_secs_f64()),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// One generation's decoding state.
enum State {
    Lean(llama::Cache),
    /// candle's model keeps the key/value cache inside the weights' clone.
    Candle(Box<ModelWeights>),
}

impl ChatModel {
    /// A decoding state with room for `positions` tokens.
    fn new_state(&self, positions: usize) -> State {
        match &self.engine {
            Engine::Lean(model) => State::Lean(model.new_cache(positions)),
            Engine::Candle(weights) => State::Candle(Box::new(weights.clone())),
        }
    }

    /// Next-token logits after `tokens`, which start at `position`.
    fn forward(
        &self,
        state: &mut State,
        tokens: &[u32],
        position: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let inference = |e: candle_core::Error| ModelError::Inference(e.to_string());
        match (&self.engine, state) {
            (Engine::Lean(model), State::Lean(cache)) => {
                debug_assert_eq!(cache.len(), position);
                let mut logits = vec![0f32; model.config().vocab];
                model
                    .forward(cache, tokens, &mut logits)
                    .map_err(ModelError::Inference)?;
                Ok(logits)
            }
            (Engine::Candle(_), State::Candle(weights)) => {
                let input = Tensor::new(tokens, &self.device)
                    .and_then(|t| t.unsqueeze(0))
                    .map_err(inference)?;
                weights
                    .forward(&input, position)
                    .and_then(|l| l.squeeze(0))
                    .and_then(|l| l.to_vec1())
                    .map_err(inference)
            }
            _ => Err(ModelError::Inference(
                "decoder state of another engine".into(),
            )),
        }
    }
}

trait ReadSeek: std::io::Read + std::io::Seek {}
impl<T: std::io::Read + std::io::Seek> ReadSeek for T {}

/// Quantisations whose CPU kernels in candle are scalar (no SIMD dot product on x86): their
/// tensors are converted to Q8_0 at load, which has one. Q8_0 reads more bytes per weight
/// (8.5 bits instead of 5–6) but runs several times faster, and it holds a 4- or 5-bit value
/// with its offset almost exactly.
fn needs_requantization(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// The GGUF file with the tensors that need it converted to Q8_0, as bytes.
fn requantize(
    content: &gguf_file::Content,
    file: &mut std::fs::File,
    device: &Device,
) -> candle_core::Result<Vec<u8>> {
    let mut tensors = Vec::with_capacity(content.tensor_infos.len());
    for (name, info) in &content.tensor_infos {
        let q = content.tensor(file, name, device)?;
        let row = info.shape.dims().last().copied().unwrap_or(0);
        let q = if needs_requantization(info.ggml_dtype) && row % GgmlDType::Q8_0.block_size() == 0
        {
            QTensor::quantize(&q.dequantize(device)?, GgmlDType::Q8_0)?
        } else {
            q
        };
        tensors.push((name.clone(), q));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &refs)?;
    Ok(out.into_inner())
}

/// A seed for callers that gave none: different per call.
fn random_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
