//! Conversion of the pulled CTranslate2 export into the files [`crate::Transcriber`] loads.
//!
//! Input (raw files in the model directory): `ct2-model.bin`, `ct2-config.json`,
//! `tokenizer.json`. Output: `model.safetensors` with the Hugging Face Whisper tensor names
//! that candle's Whisper implementation reads, and a `config.json` in the Hugging Face shape
//! (plus the decoding suppress lists taken from `ct2-config.json`). `tokenizer.json` is used
//! as is. After a conversion the raw `ct2-model.bin` and `ct2-config.json` are not needed.
//!
//! Tensors keep the precision of the source, float16 for the published tiny.en: that is
//! lossless (the export holds nothing finer), halves the file against float32, and
//! [`crate::Transcriber::load`] upcasts to float32 once at load time because candle's CPU
//! kernels are fastest, and accumulate most accurately, in float32.
//!
//! The CTranslate2 layout differs from Hugging Face's in three ways that matter here:
//! self-attention q/k/v are one fused `[3d, d]` linear, cross-attention k/v are one fused
//! `[2d, d]` linear, and the output projection is an alias of the token embedding. The key
//! projections of Whisper have no bias; CTranslate2 stores zeros there, which the conversion
//! checks (it also confirms the q/k/v order of the fused matrix).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::ct2::{self, Ct2DType, Ct2Model};

/// Raw CTranslate2 model binary, as pulled.
pub const RAW_MODEL_FILE: &str = "ct2-model.bin";
/// Raw CTranslate2 config (alignment heads, suppress ids), as pulled.
pub const RAW_CONFIG_FILE: &str = "ct2-config.json";
/// Hugging Face tokenizer, as pulled and kept.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Converted weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Converted model configuration.
pub const CONFIG_FILE: &str = "config.json";

/// Upper bound on the raw binary we are willing to read into memory.
const MAX_RAW_MODEL_BYTES: u64 = 4 << 30;

/// `config.json`: the Hugging Face Whisper fields candle's [`candle_transformers::models::whisper::Config`]
/// reads, plus the decoding lists this crate needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperConfig {
    pub model_type: String,
    pub num_mel_bins: usize,
    pub max_source_positions: usize,
    pub d_model: usize,
    pub encoder_attention_heads: usize,
    pub encoder_layers: usize,
    pub decoder_attention_heads: usize,
    pub decoder_layers: usize,
    pub vocab_size: usize,
    pub max_target_positions: usize,
    /// Tokens never sampled (non-speech symbols and task tokens).
    pub suppress_tokens: Vec<u32>,
    /// Tokens not sampled as the first token of a window (space, end of text).
    pub begin_suppress_tokens: Vec<u32>,
    /// Cross-attention heads that track time alignment, `[layer, head]` (kept for word timing).
    #[serde(default)]
    pub alignment_heads: Vec<[usize; 2]>,
    pub torch_dtype: String,
}

impl WhisperConfig {
    /// The subset candle's Whisper model takes.
    pub fn candle_config(&self) -> candle_transformers::models::whisper::Config {
        candle_transformers::models::whisper::Config {
            num_mel_bins: self.num_mel_bins,
            max_source_positions: self.max_source_positions,
            d_model: self.d_model,
            encoder_attention_heads: self.encoder_attention_heads,
            encoder_layers: self.encoder_layers,
            vocab_size: self.vocab_size,
            max_target_positions: self.max_target_positions,
            decoder_attention_heads: self.decoder_attention_heads,
            decoder_layers: self.decoder_layers,
            suppress_tokens: self.suppress_tokens.clone(),
        }
    }
}

#[derive(Deserialize)]
struct Ct2Config {
    suppress_ids: Vec<u32>,
    suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    alignment_heads: Vec<[usize; 2]>,
}

/// Converts the raw files in `dir` into `model.safetensors` and `config.json` (each written
/// to `NAME.partial`, then renamed) and returns the names written.
///
/// Idempotent: with the raw binary present the output is rebuilt byte for byte the same;
/// with it already deleted and the converted files present, nothing is written and their
/// names are returned.
pub fn convert(dir: &Path) -> Result<Vec<String>, Error> {
    let written = vec![WEIGHTS_FILE.to_string(), CONFIG_FILE.to_string()];
    let raw_model_path = dir.join(RAW_MODEL_FILE);
    require(dir, TOKENIZER_FILE)?;
    if !raw_model_path.exists() {
        require(dir, WEIGHTS_FILE)?;
        require(dir, CONFIG_FILE)?;
        return Ok(written);
    }
    let raw_config_path = require(dir, RAW_CONFIG_FILE)?;
    let raw_config: Ct2Config = serde_json::from_slice(
        &fs::read(&raw_config_path).map_err(|e| Error::io(&raw_config_path, e))?,
    )
    .map_err(|e| Error::invalid_model(&raw_config_path, e.to_string()))?;

    let size = fs::metadata(&raw_model_path)
        .map_err(|e| Error::io(&raw_model_path, e))?
        .len();
    if size > MAX_RAW_MODEL_BYTES {
        return Err(Error::invalid_model(
            &raw_model_path,
            format!("{size} bytes is larger than any Whisper export this crate expects"),
        ));
    }
    let bytes = fs::read(&raw_model_path).map_err(|e| Error::io(&raw_model_path, e))?;
    let model = ct2::parse(&bytes).map_err(|e| Error::invalid_model(&raw_model_path, e))?;
    let bad = |reason: String| Error::invalid_model(&raw_model_path, reason);
    tracing::debug!(
        spec = %model.spec,
        revision = model.spec_revision,
        variables = model.variables.len(),
        "parsed CTranslate2 model"
    );

    let (config, tensors) = map_whisper(&model, &bytes, raw_config).map_err(bad)?;

    // Serialised in memory and written with `fs::write`, so the file gets the usual
    // permissions (safetensors' own `serialize_to_file` leaves a 0600 temporary file).
    let weights = safetensors::serialize(&tensors, None)
        .map_err(|e| Error::invalid_model(&raw_model_path, e.to_string()))?;
    drop(tensors);
    let weights_path = dir.join(WEIGHTS_FILE);
    let weights_partial = partial_path(&weights_path);
    fs::write(&weights_partial, weights).map_err(|e| Error::io(&weights_partial, e))?;
    rename(&weights_partial, &weights_path)?;

    let config_path = dir.join(CONFIG_FILE);
    let config_partial = partial_path(&config_path);
    let json = serde_json::to_vec_pretty(&config).expect("config serialises");
    fs::write(&config_partial, json).map_err(|e| Error::io(&config_partial, e))?;
    rename(&config_partial, &config_path)?;
    Ok(written)
}

fn require(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::ModelMissing { path })
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(|e| Error::io(to, e))
}

/// Builds the Hugging Face named tensors and the config from a parsed `WhisperSpec`.
fn map_whisper(
    model: &Ct2Model,
    bytes: &[u8],
    raw_config: Ct2Config,
) -> Result<(WhisperConfig, HashMap<String, Tensor>), String> {
    if model.spec != "WhisperSpec" {
        return Err(format!(
            "expected a WhisperSpec export, found {}",
            model.spec
        ));
    }
    let load = |name: &str| -> Result<Tensor, String> {
        let var = model
            .get(name)
            .ok_or_else(|| format!("variable {name} is missing"))?;
        let dtype = match var.dtype {
            Ct2DType::F16 => DType::F16,
            Ct2DType::BF16 => DType::BF16,
            Ct2DType::F32 => DType::F32,
            other => {
                return Err(format!(
                    "variable {name} is {other:?}; quantized exports are not supported"
                ));
            }
        };
        // CTranslate2 writes little-endian data, which is the host order on every target
        // candle supports.
        Tensor::from_raw_buffer(&bytes[var.data.clone()], dtype, &var.shape, &Device::Cpu)
            .map_err(|e| format!("variable {name}: {e}"))
    };
    let int = |name: &str| -> Result<i64, String> {
        model
            .scalar_int(bytes, name)
            .ok_or_else(|| format!("scalar {name} is missing or not an integer"))
    };
    // The decoder options CTranslate2 records; the model code here assumes Whisper's values.
    for (name, expected) in [
        ("decoder/pre_norm", 1),
        ("decoder/activation", 3), // GELU (erf)
        ("decoder/scale_embeddings", 0),
        ("decoder/alibi", 0),
    ] {
        let value = int(name)?;
        if value != expected {
            return Err(format!("{name} is {value}; expected {expected}"));
        }
    }

    let embeddings = load("decoder/embeddings/weight")?;
    let (vocab_size, d_model) = embeddings.dims2().map_err(|e| e.to_string())?;
    let dim = |name: &str, axis: usize| -> Result<usize, String> {
        model
            .get(name)
            .and_then(|v| v.shape.get(axis).copied())
            .ok_or_else(|| format!("variable {name} is missing or has no axis {axis}"))
    };
    let head_count = |name: &str| -> Result<usize, String> {
        let heads = int(name)?;
        usize::try_from(heads)
            .ok()
            .filter(|&h| h > 0 && d_model.is_multiple_of(h))
            .ok_or_else(|| format!("{name} = {heads} does not divide d_model {d_model}"))
    };
    let config = WhisperConfig {
        model_type: "whisper".into(),
        num_mel_bins: dim("encoder/conv1/weight", 1)?,
        max_source_positions: dim("encoder/position_encodings/encodings", 0)?,
        d_model,
        encoder_attention_heads: head_count("encoder/num_heads")?,
        encoder_layers: count_layers(model, "encoder")?,
        decoder_attention_heads: head_count("decoder/num_heads")?,
        decoder_layers: count_layers(model, "decoder")?,
        vocab_size,
        max_target_positions: dim("decoder/position_encodings/encodings", 0)?,
        suppress_tokens: raw_config.suppress_ids,
        begin_suppress_tokens: raw_config.suppress_ids_begin,
        alignment_heads: raw_config.alignment_heads,
        torch_dtype: match embeddings.dtype() {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            _ => "float32",
        }
        .into(),
    };

    // candle computes the encoder's sinusoidal positions itself; make sure the export agrees.
    let positions = load("encoder/position_encodings/encodings")?;
    check_sinusoids(&positions)?;

    let mut out: HashMap<String, Tensor> = HashMap::new();
    let mut put = |name: String, tensor: Tensor| -> Result<(), String> {
        let tensor = tensor.contiguous().map_err(|e| e.to_string())?;
        out.insert(name, tensor);
        Ok(())
    };
    let d = d_model;
    let rows = |t: &Tensor, index: usize| -> Result<Tensor, String> {
        t.narrow(0, index * d, d).map_err(|e| e.to_string())
    };

    // Encoder.
    for conv in ["conv1", "conv2"] {
        for part in ["weight", "bias"] {
            put(
                format!("model.encoder.{conv}.{part}"),
                load(&format!("encoder/{conv}/{part}"))?,
            )?;
        }
    }
    put("model.encoder.embed_positions.weight".into(), positions)?;
    put_layer_norm(
        &mut put,
        &load,
        "encoder/layer_norm",
        "model.encoder.layer_norm",
    )?;
    for i in 0..config.encoder_layers {
        let src = format!("encoder/layer_{i}");
        let dst = format!("model.encoder.layers.{i}");
        put_self_attention(&mut put, &load, &rows, &src, &dst)?;
        put_ffn(&mut put, &load, &src, &dst)?;
    }

    // Decoder.
    put("model.decoder.embed_tokens.weight".into(), embeddings)?;
    put(
        "model.decoder.embed_positions.weight".into(),
        load("decoder/position_encodings/encodings")?,
    )?;
    put_layer_norm(
        &mut put,
        &load,
        "decoder/layer_norm",
        "model.decoder.layer_norm",
    )?;
    for i in 0..config.decoder_layers {
        let src = format!("decoder/layer_{i}");
        let dst = format!("model.decoder.layers.{i}");
        put_self_attention(&mut put, &load, &rows, &src, &dst)?;
        let cross = format!("{src}/attention");
        let cross_dst = format!("{dst}.encoder_attn");
        put_layer_norm(
            &mut put,
            &load,
            &format!("{cross}/layer_norm"),
            &format!("{dst}.encoder_attn_layer_norm"),
        )?;
        put_linear(
            &mut put,
            &load,
            &format!("{cross}/linear_0"),
            &format!("{cross_dst}.q_proj"),
        )?;
        let kv_weight = load(&format!("{cross}/linear_1/weight"))?;
        let kv_bias = load(&format!("{cross}/linear_1/bias"))?;
        check_zero(&rows(&kv_bias, 0)?, &format!("{cross}/linear_1 key bias"))?;
        put(format!("{cross_dst}.k_proj.weight"), rows(&kv_weight, 0)?)?;
        put(format!("{cross_dst}.v_proj.weight"), rows(&kv_weight, 1)?)?;
        put(format!("{cross_dst}.v_proj.bias"), rows(&kv_bias, 1)?)?;
        put_linear(
            &mut put,
            &load,
            &format!("{cross}/linear_2"),
            &format!("{cross_dst}.out_proj"),
        )?;
        put_ffn(&mut put, &load, &src, &dst)?;
    }
    match model.get("decoder/projection/weight") {
        Some(var) if var.name == "decoder/embeddings/weight" => {}
        _ => return Err("decoder/projection/weight is not tied to the embeddings".into()),
    }
    Ok((config, out))
}

type Put<'a> = dyn FnMut(String, Tensor) -> Result<(), String> + 'a;
type Load<'a> = dyn Fn(&str) -> Result<Tensor, String> + 'a;
type Rows<'a> = dyn Fn(&Tensor, usize) -> Result<Tensor, String> + 'a;

fn put_layer_norm(put: &mut Put, load: &Load, src: &str, dst: &str) -> Result<(), String> {
    put(format!("{dst}.weight"), load(&format!("{src}/gamma"))?)?;
    put(format!("{dst}.bias"), load(&format!("{src}/beta"))?)
}

fn put_linear(put: &mut Put, load: &Load, src: &str, dst: &str) -> Result<(), String> {
    put(format!("{dst}.weight"), load(&format!("{src}/weight"))?)?;
    put(format!("{dst}.bias"), load(&format!("{src}/bias"))?)
}

fn put_self_attention(
    put: &mut Put,
    load: &Load,
    rows: &Rows,
    layer_src: &str,
    layer_dst: &str,
) -> Result<(), String> {
    let src = format!("{layer_src}/self_attention");
    let dst = format!("{layer_dst}.self_attn");
    put_layer_norm(
        put,
        load,
        &format!("{src}/layer_norm"),
        &format!("{layer_dst}.self_attn_layer_norm"),
    )?;
    let qkv_weight = load(&format!("{src}/linear_0/weight"))?;
    let qkv_bias = load(&format!("{src}/linear_0/bias"))?;
    check_zero(&rows(&qkv_bias, 1)?, &format!("{src}/linear_0 key bias"))?;
    put(format!("{dst}.q_proj.weight"), rows(&qkv_weight, 0)?)?;
    put(format!("{dst}.q_proj.bias"), rows(&qkv_bias, 0)?)?;
    put(format!("{dst}.k_proj.weight"), rows(&qkv_weight, 1)?)?;
    put(format!("{dst}.v_proj.weight"), rows(&qkv_weight, 2)?)?;
    put(format!("{dst}.v_proj.bias"), rows(&qkv_bias, 2)?)?;
    put_linear(
        put,
        load,
        &format!("{src}/linear_1"),
        &format!("{dst}.out_proj"),
    )
}

fn put_ffn(put: &mut Put, load: &Load, layer_src: &str, layer_dst: &str) -> Result<(), String> {
    let src = format!("{layer_src}/ffn");
    put_layer_norm(
        put,
        load,
        &format!("{src}/layer_norm"),
        &format!("{layer_dst}.final_layer_norm"),
    )?;
    put_linear(
        put,
        load,
        &format!("{src}/linear_0"),
        &format!("{layer_dst}.fc1"),
    )?;
    put_linear(
        put,
        load,
        &format!("{src}/linear_1"),
        &format!("{layer_dst}.fc2"),
    )
}

/// Whisper's key projections have no bias: the fused CTranslate2 bias must be zero there.
fn check_zero(bias: &Tensor, what: &str) -> Result<(), String> {
    let max = bias
        .to_dtype(DType::F32)
        .and_then(|t| t.abs()?.max_all()?.to_scalar::<f32>())
        .map_err(|e| e.to_string())?;
    if max == 0.0 {
        Ok(())
    } else {
        Err(format!(
            "{what} is not zero (max |b| = {max}); the fused layout is not q, k, v"
        ))
    }
}

fn count_layers(model: &Ct2Model, stack: &str) -> Result<usize, String> {
    let prefix = format!("{stack}/layer_");
    let mut count = 0;
    for var in &model.variables {
        if let Some(rest) = var.name.strip_prefix(&prefix)
            && let Some(index) = rest.split('/').next().and_then(|i| i.parse::<usize>().ok())
        {
            count = count.max(index + 1);
        }
    }
    if count == 0 {
        return Err(format!("no {stack} layers found"));
    }
    Ok(count)
}

/// Compares the stored encoder positions with the sinusoids candle computes (the same formula
/// as openai-whisper's `sinusoids`), allowing for float16 rounding.
fn check_sinusoids(positions: &Tensor) -> Result<(), String> {
    let stored = positions
        .to_dtype(DType::F32)
        .and_then(|t| t.to_vec2::<f32>())
        .map_err(|e| e.to_string())?;
    let channels = stored.first().map_or(0, Vec::len);
    if channels < 4 || !channels.is_multiple_of(2) {
        return Err(format!("encoder positions have {channels} channels"));
    }
    let half = channels / 2;
    let step = 10000f64.ln() / (half - 1) as f64;
    let mut worst = 0f64;
    for (t, row) in stored.iter().enumerate() {
        for i in 0..half {
            let angle = t as f64 * (-(i as f64) * step).exp();
            worst = worst
                .max((angle.sin() - f64::from(row[i])).abs())
                .max((angle.cos() - f64::from(row[half + i])).abs());
        }
    }
    if worst > 2e-2 {
        return Err(format!(
            "encoder positions are not Whisper's sinusoids (max diff {worst})"
        ));
    }
    Ok(())
}
