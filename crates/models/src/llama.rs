//! A lean decoder for LLaMA-family GGUF models on CPU: the path every generated token takes.
//!
//! Why not candle's `quantized_llama` (which remains the fallback for what this does not cover,
//! and the reference the tests compare against): decoding one token of a small model is a few
//! hundred matrix–vector products over weights that do not fit in cache, so the speed of a
//! token is how fast the weights stream from memory. Profiled on SmolLM2-135M (BENCHMARKS.md),
//! candle spent its time in a per-row dot product that converts two f16 scales per 32 weights
//! through a function call, in a thread pool waiting between small ops, and in tensor
//! bookkeeping (a key/value cache concatenated anew every token) — 24 % of the bandwidth bound.
//!
//! Here:
//! - weights are re-laid at load as 8-bit blocks of 32 with an f16 scale (what GGUF's Q8_0
//!   holds), **four rows interleaved**, so each block of the activation is loaded once for four
//!   rows and the four scales convert in one instruction (AVX2 + F16C; a portable kernel
//!   otherwise); the activation is quantized to 8 bits per block of 32, as ggml does;
//! - a forward pass runs on a team of threads (one per core; concurrent passes share the cores)
//!   that claim pieces of each phase (rows of a product, heads of attention) from a counter and
//!   meet at a spin barrier between phases — five per layer — instead of a pool per op;
//! - the key/value cache is written in place, preallocated for the generation's length;
//! - a prompt is processed in chunks of tokens, each chunk reading every weight once (the
//!   kernel runs its four rows against every token of the chunk while they sit in L1).
//!
//! Covered: `general.architecture = "llama"` without experts, rotary embedding over the whole
//! head, dimensions in multiples of 32. [`Llama::from_gguf`] says `Unsupported` otherwise.

use std::io::{Read, Seek};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::Device;
use candle_core::quantized::gguf_file;
use half::f16;

/// Values per quantization block (ggml's Q8_0 block).
const QK: usize = 32;
/// Rows interleaved in the weight layout; the kernel computes this many at once.
const GROUP: usize = 4;
/// Prompt tokens processed together (each chunk reads every weight once).
const CHUNK: usize = 32;
/// Phases of a layer that threads claim work in: Q/K/V, attention, output, gate/up, down.
const PHASES_PER_LAYER: usize = 5;

pub use crate::EngineLoadError as LoadError;

/// A weight matrix in 8-bit blocks, rows interleaved by [`GROUP`].
///
/// For group `g` (rows `4g..4g+4`) and block `b` (columns `32b..32b+32`): `qs` holds the four
/// rows' 32 values one after the other at `(g * blocks + b) * 128`, and `scales` the four rows'
/// f16 scales at `(g * blocks + b) * 4`. Rows past the real ones are zero.
pub struct QMatrix {
    rows: usize,
    cols: usize,
    blocks: usize,
    qs: Vec<i8>,
    scales: Vec<u16>,
}

impl QMatrix {
    /// Quantizes a row-major `rows × cols` matrix (`cols` a multiple of 32).
    pub fn quantize(data: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols);
        assert_eq!(cols % QK, 0);
        let blocks = cols / QK;
        let groups = rows.div_ceil(GROUP);
        let mut qs = vec![0i8; groups * GROUP * cols];
        let mut scales = vec![0u16; groups * GROUP * blocks];
        for r in 0..rows {
            let (g, i) = (r / GROUP, r % GROUP);
            for b in 0..blocks {
                let src = &data[r * cols + b * QK..r * cols + (b + 1) * QK];
                let at = (g * blocks + b) * GROUP;
                let d = quantize_block(src, &mut qs[(at + i) * QK..(at + i + 1) * QK]);
                scales[at + i] = f16::from_f32(d).to_bits();
            }
        }
        QMatrix {
            rows,
            cols,
            blocks,
            qs,
            scales,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    fn groups(&self) -> usize {
        self.rows.div_ceil(GROUP)
    }

    /// Bytes read by one product with a vector.
    pub fn bytes(&self) -> usize {
        self.qs.len() + self.scales.len() * 2
    }

    /// Row `r` as f32 (embedding lookup).
    fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (g, i) = (r / GROUP, r % GROUP);
        for b in 0..self.blocks {
            let at = (g * self.blocks + b) * GROUP + i;
            let d = f16::from_bits(self.scales[at]).to_f32();
            for (o, &q) in out[b * QK..(b + 1) * QK]
                .iter_mut()
                .zip(&self.qs[at * QK..(at + 1) * QK])
            {
                *o = q as f32 * d;
            }
        }
    }
}

/// Quantizes 32 values symmetrically to `[-127, 127]`; returns the scale.
fn quantize_block(src: &[f32], dst: &mut [i8]) -> f32 {
    let amax = src.iter().fold(0f32, |m, x| m.max(x.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, &x) in dst.iter_mut().zip(src) {
        // Rounds half away from zero, like `f32::round`, without a libm call (the baseline
        // x86-64 target has no rounding instruction), so that the loop vectorizes.
        let v = x * id;
        *q = (v + 0.5f32.copysign(v)) as i8;
    }
    d
}

/// Activations of `n` tokens quantized per block of 32 (row-major, `blocks` per token).
struct QActs {
    qs: Vec<i8>,
    scales: Vec<f32>,
    blocks: usize,
    n: usize,
}

impl QActs {
    fn with_capacity(tokens: usize, cols: usize) -> Self {
        QActs {
            qs: vec![0; tokens * cols],
            scales: vec![0.0; tokens * cols / QK],
            blocks: 0,
            n: 0,
        }
    }

    /// Quantizes `n` rows of `cols` values from `src` (row stride `stride`).
    fn fill(&mut self, src: &[f32], n: usize, cols: usize, stride: usize) {
        self.blocks = cols / QK;
        self.n = n;
        for t in 0..n {
            let row = &src[t * stride..t * stride + cols];
            for b in 0..self.blocks {
                let at = t * self.blocks + b;
                let d = quantize_block(
                    &row[b * QK..(b + 1) * QK],
                    &mut self.qs[at * QK..(at + 1) * QK],
                );
                // The scale as ggml keeps it (f16), so that products match its Q8_0 ones.
                self.scales[at] = f16::from_f32(d).to_f32();
            }
        }
    }
}

/// Which matrix kernel this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            return Kernel::Avx2;
        }
        Kernel::Portable
    }
}

/// Where a product's results go: `out[t * stride + row]` for token `t`, overwritten or added to.
#[derive(Clone, Copy)]
struct Out {
    ptr: SharedPtr,
    stride: usize,
    accumulate: bool,
}

/// `W · a_t` for the rows of `groups` and every token of `acts`.
///
/// # Safety
/// `out` must be valid for `acts.n` rows of `stride` floats, and no other thread may touch the
/// entries of these groups' rows while this runs.
unsafe fn gemm(kernel: Kernel, w: &QMatrix, acts: &QActs, groups: Range<usize>, out: Out) {
    debug_assert_eq!(w.blocks, acts.blocks);
    match kernel {
        // SAFETY: the CPU has these features (checked by `Kernel::detect`); the caller's contract.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { gemm_avx2(w, acts, groups, out) },
        // SAFETY: the caller's contract.
        Kernel::Portable => unsafe { gemm_portable(w, acts, groups, out) },
    }
}

/// # Safety
/// As [`gemm`].
unsafe fn gemm_portable(w: &QMatrix, acts: &QActs, groups: Range<usize>, out: Out) {
    let nb = w.blocks;
    for g in groups {
        for t in 0..acts.n {
            let mut acc = [0f32; GROUP];
            for b in 0..nb {
                let a = &acts.qs[(t * nb + b) * QK..(t * nb + b + 1) * QK];
                let ad = acts.scales[t * nb + b];
                let at = (g * nb + b) * GROUP;
                for (i, acc) in acc.iter_mut().enumerate() {
                    let wq = &w.qs[(at + i) * QK..(at + i + 1) * QK];
                    let dot: i32 = wq.iter().zip(a).map(|(&x, &y)| x as i32 * y as i32).sum();
                    *acc += dot as f32 * f16::from_bits(w.scales[at + i]).to_f32() * ad;
                }
            }
            // SAFETY: the caller's contract.
            unsafe { store(out, t, g, acc) };
        }
    }
}

/// # Safety
/// As [`gemm`].
#[inline(always)]
unsafe fn store(out: Out, t: usize, g: usize, acc: [f32; GROUP]) {
    for (i, v) in acc.into_iter().enumerate() {
        // SAFETY: the caller's contract: this row of this token is ours and in bounds.
        let o = unsafe { &mut *out.ptr.0.add(t * out.stride + g * GROUP + i) };
        if out.accumulate {
            *o += v;
        } else {
            *o = v;
        }
    }
}

/// # Safety
/// As [`gemm`], and the CPU has AVX2, FMA and F16C.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_avx2(w: &QMatrix, acts: &QActs, groups: Range<usize>, out: Out) {
    use std::arch::x86_64::*;
    let nb = w.blocks;
    // SAFETY: every pointer below stays inside `w.qs`, `w.scales`, `acts.qs`, `acts.scales`
    // (group < groups of w, block < nb, token < acts.n); unaligned loads are used throughout.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        for g in groups {
            let wq = w.qs.as_ptr().add(g * nb * QK * GROUP);
            let ws = w.scales.as_ptr().add(g * nb * GROUP);
            for t in 0..acts.n {
                let aq = acts.qs.as_ptr().add(t * nb * QK);
                let ad = acts.scales.as_ptr().add(t * nb);
                let mut acc = _mm_setzero_ps();
                for b in 0..nb {
                    let x = _mm256_loadu_si256(aq.add(b * QK) as *const __m256i);
                    let ax = _mm256_sign_epi8(x, x);
                    let base = wq.add(b * QK * GROUP);
                    // |x| · (w · sign x) = x · w, as unsigned × signed pairs summed to i16,
                    // then pairs of those to i32: eight partial sums per row.
                    let y0 = _mm256_loadu_si256(base as *const __m256i);
                    let y1 = _mm256_loadu_si256(base.add(QK) as *const __m256i);
                    let y2 = _mm256_loadu_si256(base.add(2 * QK) as *const __m256i);
                    let y3 = _mm256_loadu_si256(base.add(3 * QK) as *const __m256i);
                    let p0 =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y0, x)), ones);
                    let p1 =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y1, x)), ones);
                    let p2 =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y2, x)), ones);
                    let p3 =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(y3, x)), ones);
                    // Reduce to one sum per row: [r0, r1, r2, r3] in each 128-bit half.
                    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(p0, p1), _mm256_hadd_epi32(p2, p3));
                    let s =
                        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
                    let d = _mm_cvtph_ps(_mm_loadl_epi64(ws.add(b * GROUP) as *const __m128i));
                    let d = _mm_mul_ps(d, _mm_set1_ps(*ad.add(b)));
                    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(s), d, acc);
                }
                let mut v = [0f32; GROUP];
                _mm_storeu_ps(v.as_mut_ptr(), acc);
                store(out, t, g, v);
            }
        }
    }
}

/// A raw pointer shared by the team; each thread writes only what its share of a phase owns.
#[derive(Clone, Copy)]
struct SharedPtr(*mut f32);
// SAFETY: used only under the phase discipline of `Llama::forward`: between two barriers every
// element is written by at most one thread and read by none but that thread.
unsafe impl Send for SharedPtr {}
// SAFETY: as above.
unsafe impl Sync for SharedPtr {}

impl SharedPtr {
    /// # Safety
    /// `len` floats from `at` are in bounds and, in this phase, written by no other thread.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice_mut(&self, at: usize, len: usize) -> &mut [f32] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }

    /// # Safety
    /// `len` floats from `at` are in bounds and, in this phase, written by no thread.
    unsafe fn slice(&self, at: usize, len: usize) -> &[f32] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(self.0.add(at), len) }
    }
}

/// A barrier that spins briefly (the other threads are normally microseconds away) and then
/// yields, so that more threads than cores still make progress.
struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    fn wait(&self) {
        if self.threads == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < 50_000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The part of `0..n` that thread `t` of `threads` takes.
fn share(n: usize, t: usize, threads: usize) -> Range<usize> {
    n * t / threads..n * (t + 1) / threads
}

/// Model dimensions, from the GGUF metadata.
#[derive(Clone, Debug)]
pub struct Config {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
}

struct Layer {
    attn_norm: Vec<f32>,
    /// Q, K and V projections stacked: `heads·d + 2·kv_heads·d` rows.
    qkv: QMatrix,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    /// Gate and up projections, groups alternating: group `2j` is gate rows `4j..4j+4`, group
    /// `2j+1` up rows `4j..4j+4`, so a thread that owns a pair of groups can apply the gated
    /// activation to its own rows.
    gate_up: QMatrix,
    down: QMatrix,
}

/// A loaded model (shared by all generations).
pub struct Llama {
    config: Config,
    embed: QMatrix,
    /// `None`: the output projection is tied to the embedding.
    output: Option<QMatrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    inv_freq: Vec<f32>,
    kernel: Kernel,
    /// Threads of a pass when it runs alone (one per core).
    threads: usize,
    /// Passes running now: concurrent generations share the cores instead of each spinning
    /// a full team on them.
    running: AtomicUsize,
}

/// One generation's key/value cache, written in place.
pub struct Cache {
    /// Per layer, `[position][kv_head][head_dim]`.
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
    capacity: usize,
}

impl Cache {
    /// Positions held so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Llama {
    /// Builds the model from a GGUF file's tensors (dequantized and re-laid as 8-bit blocks).
    pub fn from_gguf<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self, LoadError> {
        let unsupported = |why: String| Err(LoadError::Unsupported(why));
        let md = |key: &str| -> Result<&gguf_file::Value, LoadError> {
            content
                .metadata
                .get(key)
                .ok_or_else(|| LoadError::Unsupported(format!("no {key} in the metadata")))
        };
        let arch = md("general.architecture")?.to_string()?.clone();
        if arch != "llama" {
            return unsupported(format!("architecture {arch:?}"));
        }
        if content
            .metadata
            .get("llama.expert_count")
            .and_then(|v| v.to_u32().ok())
            .unwrap_or(0)
            > 1
        {
            return unsupported("mixture of experts".into());
        }
        let get = |key: &str| -> Result<usize, LoadError> { Ok(md(key)?.to_u32()? as usize) };
        let hidden = get("llama.embedding_length")?;
        let heads = get("llama.attention.head_count")?;
        let kv_heads = get("llama.attention.head_count_kv")?;
        let layers_n = get("llama.block_count")?;
        let rope_dim = get("llama.rope.dimension_count")?;
        let rms_eps = md("llama.attention.layer_norm_rms_epsilon")?.to_f32()?;
        let rope_theta = content
            .metadata
            .get("llama.rope.freq_base")
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(10000.0);
        if heads == 0 || kv_heads == 0 || hidden % heads != 0 || heads % kv_heads != 0 {
            return unsupported(format!("{heads} heads, {kv_heads} key/value heads"));
        }
        if hidden % QK != 0 {
            return unsupported(format!("hidden size {hidden}"));
        }
        let head_dim = hidden / heads;
        if rope_dim != head_dim || head_dim % GROUP != 0 {
            return unsupported(format!(
                "rotary dimension {rope_dim}, head dimension {head_dim}"
            ));
        }
        let dev = Device::Cpu;
        let mut load = |name: &str| -> Result<(Vec<f32>, Vec<usize>), LoadError> {
            let q = content.tensor(reader, name, &dev)?;
            let dims = q.shape().dims().to_vec();
            let data = q.dequantize(&dev)?.flatten_all()?.to_vec1::<f32>()?;
            Ok((data, dims))
        };
        let matrix = |(data, dims): (Vec<f32>, Vec<usize>)| -> Result<QMatrix, LoadError> {
            match dims[..] {
                [rows, cols] if cols % QK == 0 => Ok(QMatrix::quantize(&data, rows, cols)),
                _ => Err(LoadError::Unsupported(format!(
                    "a weight of shape {dims:?}"
                ))),
            }
        };
        let (embed_data, embed_dims) = load("token_embd.weight")?;
        let vocab = embed_dims[0];
        if embed_dims != [vocab, hidden] {
            return unsupported(format!("token embedding of shape {embed_dims:?}"));
        }
        let embed = QMatrix::quantize(&embed_data, vocab, hidden);
        drop(embed_data);
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(matrix(load("output.weight")?)?)
        } else {
            None
        };
        let norm = load("output_norm.weight")?.0;
        let kv_dim = kv_heads * head_dim;
        let mut layers = Vec::with_capacity(layers_n);
        let mut ffn = 0;
        for l in 0..layers_n {
            let name = |part: &str| format!("blk.{l}.{part}.weight");
            let (q, _) = load(&name("attn_q"))?;
            let (k, _) = load(&name("attn_k"))?;
            let (v, _) = load(&name("attn_v"))?;
            if q.len() != hidden * hidden || k.len() != kv_dim * hidden || v.len() != k.len() {
                return unsupported(format!("attention weights of layer {l}"));
            }
            let qkv: Vec<f32> = q.into_iter().chain(k).chain(v).collect();
            let qkv = QMatrix::quantize(&qkv, hidden + 2 * kv_dim, hidden);
            let wo = matrix(load(&name("attn_output"))?)?;
            let (gate, gate_dims) = load(&name("ffn_gate"))?;
            let (up, up_dims) = load(&name("ffn_up"))?;
            ffn = gate_dims[0];
            if gate_dims != [ffn, hidden] || up_dims != gate_dims || ffn % GROUP != 0 {
                return unsupported(format!("feed-forward weights of layer {l}"));
            }
            let mut gate_up = Vec::with_capacity(2 * ffn * hidden);
            for j in 0..ffn / GROUP {
                let rows = j * GROUP * hidden..(j + 1) * GROUP * hidden;
                gate_up.extend_from_slice(&gate[rows.clone()]);
                gate_up.extend_from_slice(&up[rows]);
            }
            let gate_up = QMatrix::quantize(&gate_up, 2 * ffn, hidden);
            let down = matrix(load(&name("ffn_down"))?)?;
            if wo.rows != hidden || down.rows != hidden || down.cols != ffn {
                return unsupported(format!("projection shapes of layer {l}"));
            }
            layers.push(Layer {
                attn_norm: load(&name("attn_norm"))?.0,
                qkv,
                wo,
                ffn_norm: load(&name("ffn_norm"))?.0,
                gate_up,
                down,
            });
        }
        if ffn % QK != 0 {
            return unsupported(format!("feed-forward width {ffn}"));
        }
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / rope_theta.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let threads = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
        Ok(Llama {
            config: Config {
                hidden,
                layers: layers_n,
                heads,
                kv_heads,
                head_dim,
                ffn,
                vocab,
                rms_eps,
                rope_theta,
            },
            embed,
            output,
            norm,
            layers,
            inv_freq,
            kernel: Kernel::detect(),
            threads,
            running: AtomicUsize::new(0),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes of weights one decoding step reads.
    pub fn weight_bytes(&self) -> u64 {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.qkv.bytes()
                    + l.wo.bytes()
                    + l.gate_up.bytes()
                    + l.down.bytes()
                    + 4 * (l.attn_norm.len() + l.ffn_norm.len())
            })
            .sum();
        let output = self.output.as_ref().unwrap_or(&self.embed).bytes();
        (layers + output + 4 * self.norm.len()) as u64
    }

    /// An empty cache with room for `positions` tokens.
    pub fn new_cache(&self, positions: usize) -> Cache {
        let kv = positions * self.config.kv_heads * self.config.head_dim;
        Cache {
            k: (0..self.config.layers).map(|_| vec![0.0; kv]).collect(),
            v: (0..self.config.layers).map(|_| vec![0.0; kv]).collect(),
            len: 0,
            capacity: positions,
        }
    }

    /// Runs `tokens` through the model after what `cache` holds, appends them to it and writes
    /// the next-token logits of the last one into `logits` (`vocab` long). Refuses, touching
    /// nothing, no tokens, a token outside the vocabulary, or more tokens than the cache has
    /// room for.
    pub fn forward(
        &self,
        cache: &mut Cache,
        tokens: &[u32],
        logits: &mut [f32],
    ) -> Result<(), String> {
        let c = &self.config;
        if tokens.is_empty() {
            return Err("no tokens".into());
        }
        if cache.len + tokens.len() > cache.capacity {
            return Err(format!(
                "{} tokens after {} do not fit a cache of {}",
                tokens.len(),
                cache.len,
                cache.capacity
            ));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(format!("token {bad} is outside the vocabulary"));
        }
        assert_eq!(logits.len(), c.vocab);
        let chunk = tokens.len().min(CHUNK);
        let q_dim = c.heads * c.head_dim;
        let kv_dim = c.kv_heads * c.head_dim;
        let qkv_dim = q_dim + 2 * kv_dim;
        // Shared buffers of the pass (see `SharedPtr` for the discipline).
        let mut x = vec![0f32; chunk * c.hidden];
        let mut qkv = vec![0f32; chunk * qkv_dim];
        let mut att = vec![0f32; chunk * q_dim];
        let mut gu = vec![0f32; chunk * 2 * c.ffn];
        let mut h = vec![0f32; chunk * c.ffn];
        let xs = SharedPtr(x.as_mut_ptr());
        let qkvs = SharedPtr(qkv.as_mut_ptr());
        let atts = SharedPtr(att.as_mut_ptr());
        let gus = SharedPtr(gu.as_mut_ptr());
        let hs = SharedPtr(h.as_mut_ptr());
        let ks: Vec<SharedPtr> = cache
            .k
            .iter_mut()
            .map(|k| SharedPtr(k.as_mut_ptr()))
            .collect();
        let vs: Vec<SharedPtr> = cache
            .v
            .iter_mut()
            .map(|v| SharedPtr(v.as_mut_ptr()))
            .collect();
        let out_w = self.output.as_ref().unwrap_or(&self.embed);
        // Room for the padding rows of the last group.
        let mut padded = vec![0f32; out_w.groups() * GROUP];
        let logit_ptr = SharedPtr(padded.as_mut_ptr());
        let padded_len = padded.len();
        let start = cache.len;
        let running = self.running.fetch_add(1, Ordering::AcqRel) + 1;
        let threads = (self.threads / running).max(1);
        let barrier = SpinBarrier::new(threads);
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (c.head_dim as f32).sqrt();

        // One work counter per phase of the pass: threads claim pieces of a phase from it, so
        // a thread that is ahead takes more and nobody idles at the barrier (static halves
        // left a fifth of the time spinning).
        let phases = tokens.len().div_ceil(CHUNK) * (c.layers * PHASES_PER_LAYER + 1);
        let counters: Vec<AtomicUsize> = (0..phases).map(|_| AtomicUsize::new(0)).collect();
        let head_groups = c.head_dim / GROUP;

        let work = |tid: usize| {
            let mut acts = QActs::with_capacity(chunk, c.hidden.max(c.ffn).max(q_dim));
            let mut normed = vec![0f32; chunk * c.hidden];
            let mut scores = vec![0f32; start + tokens.len()];
            let mut cos = vec![0f32; chunk * c.head_dim / 2];
            let mut sin = vec![0f32; chunk * c.head_dim / 2];
            // The pieces of phase `phase` this thread claims, `step` units at a time.
            let claims = |phase: usize, total: usize, step: usize| {
                let counter = &counters[phase];
                std::iter::from_fn(move || {
                    let at = counter.fetch_add(step, Ordering::Relaxed);
                    (at < total).then(|| at..(at + step).min(total))
                })
            };
            let step_for = |total: usize| (total / (threads * 8)).max(8);
            let product = |w: &QMatrix,
                           acts: &QActs,
                           groups: Range<usize>,
                           out: SharedPtr,
                           stride,
                           accumulate| {
                // SAFETY: `out` has `acts.n` rows of `stride` ≥ `w.rows` floats, and these
                // groups were claimed by this thread alone for this phase.
                unsafe {
                    gemm(
                        self.kernel,
                        w,
                        acts,
                        groups,
                        Out {
                            ptr: out,
                            stride,
                            accumulate,
                        },
                    )
                };
            };
            for (ci, toks) in tokens.chunks(CHUNK).enumerate() {
                let n = toks.len();
                let pos0 = start + ci * CHUNK;
                // Embeddings: each thread its tokens.
                for t in share(n, tid, threads) {
                    // SAFETY: token rows of this thread's share.
                    let row = unsafe { xs.slice_mut(t * c.hidden, c.hidden) };
                    self.embed.dequantize_row(toks[t] as usize, row);
                }
                for t in 0..n {
                    for (i, &f) in self.inv_freq.iter().enumerate() {
                        let angle = (pos0 + t) as f32 * f;
                        cos[t * c.head_dim / 2 + i] = angle.cos();
                        sin[t * c.head_dim / 2 + i] = angle.sin();
                    }
                }
                barrier.wait();
                let chunk_phases = ci * (c.layers * PHASES_PER_LAYER + 1);
                for (l, layer) in self.layers.iter().enumerate() {
                    let phase = chunk_phases + l * PHASES_PER_LAYER;
                    // Attention: norm; Q, K, V one head at a time, each head finished by the
                    // thread that computed it (rotary embedding; keys and values into the cache).
                    // SAFETY: `x` is only read in this phase.
                    let xr = unsafe { xs.slice(0, n * c.hidden) };
                    rms_norm_rows(xr, &layer.attn_norm, c.rms_eps, &mut normed[..n * c.hidden]);
                    acts.fill(&normed, n, c.hidden, c.hidden);
                    for heads in claims(phase, c.heads + 2 * c.kv_heads, 1) {
                        let head = heads.start;
                        let groups = head * head_groups..(head + 1) * head_groups;
                        product(&layer.qkv, &acts, groups, qkvs, qkv_dim, false);
                        for t in 0..n {
                            let (cs, sn) = (
                                &cos[t * c.head_dim / 2..(t + 1) * c.head_dim / 2],
                                &sin[t * c.head_dim / 2..(t + 1) * c.head_dim / 2],
                            );
                            let p = pos0 + t;
                            // SAFETY: this head's rows of this token were claimed by this thread;
                            // position `p` < capacity (checked above), and each cache slot is
                            // written by the one thread that claimed its head.
                            unsafe {
                                let row =
                                    qkvs.slice_mut(t * qkv_dim + head * c.head_dim, c.head_dim);
                                if head < c.heads {
                                    rope_interleaved(row, cs, sn);
                                } else if head < c.heads + c.kv_heads {
                                    let kh = head - c.heads;
                                    let kd =
                                        ks[l].slice_mut(p * kv_dim + kh * c.head_dim, c.head_dim);
                                    kd.copy_from_slice(row);
                                    rope_interleaved(kd, cs, sn);
                                } else {
                                    let vh = head - c.heads - c.kv_heads;
                                    vs[l]
                                        .slice_mut(p * kv_dim + vh * c.head_dim, c.head_dim)
                                        .copy_from_slice(row);
                                }
                            }
                        }
                    }
                    barrier.wait();
                    // Attention of each query head over the positions up to its own.
                    for units in claims(phase + 1, n * c.heads, 1) {
                        let u = units.start;
                        let (t, head) = (u / c.heads, u % c.heads);
                        let p = pos0 + t;
                        let kh = head / group;
                        // SAFETY: queries and the cache up to `p` are only read in this phase;
                        // this head's output of this token was claimed by this thread.
                        let (q, kc, vc, o) = unsafe {
                            (
                                qkvs.slice(t * qkv_dim + head * c.head_dim, c.head_dim),
                                ks[l].slice(0, (p + 1) * kv_dim),
                                vs[l].slice(0, (p + 1) * kv_dim),
                                atts.slice_mut(t * q_dim + head * c.head_dim, c.head_dim),
                            )
                        };
                        attend(
                            q,
                            kc,
                            vc,
                            kh * c.head_dim,
                            kv_dim,
                            scale,
                            &mut scores[..p + 1],
                            o,
                        );
                    }
                    barrier.wait();
                    // Output projection, added to the residual.
                    // SAFETY: `att` is only read in this phase.
                    let ar = unsafe { atts.slice(0, n * q_dim) };
                    acts.fill(ar, n, q_dim, q_dim);
                    let total = layer.wo.groups();
                    for groups in claims(phase + 2, total, step_for(total)) {
                        product(&layer.wo, &acts, groups, xs, c.hidden, true);
                    }
                    barrier.wait();
                    // Feed-forward: norm; gate and up in pairs of groups, gated by the thread
                    // that computed the pair; down, added to the residual.
                    // SAFETY: `x` is only read in this phase.
                    let xr = unsafe { xs.slice(0, n * c.hidden) };
                    rms_norm_rows(xr, &layer.ffn_norm, c.rms_eps, &mut normed[..n * c.hidden]);
                    acts.fill(&normed, n, c.hidden, c.hidden);
                    let total = layer.gate_up.groups() / 2;
                    for pairs in claims(phase + 3, total, step_for(total)) {
                        product(
                            &layer.gate_up,
                            &acts,
                            2 * pairs.start..2 * pairs.end,
                            gus,
                            2 * c.ffn,
                            false,
                        );
                        for t in 0..n {
                            for j in pairs.clone() {
                                // SAFETY: rows of the pairs this thread claimed, this token.
                                let (g, o) = unsafe {
                                    (
                                        gus.slice(t * 2 * c.ffn + 2 * j * GROUP, 2 * GROUP),
                                        hs.slice_mut(t * c.ffn + j * GROUP, GROUP),
                                    )
                                };
                                for i in 0..GROUP {
                                    o[i] = silu(g[i]) * g[GROUP + i];
                                }
                            }
                        }
                    }
                    barrier.wait();
                    // SAFETY: `h` is only read in this phase.
                    let hr = unsafe { hs.slice(0, n * c.ffn) };
                    acts.fill(hr, n, c.ffn, c.ffn);
                    let total = layer.down.groups();
                    for groups in claims(phase + 4, total, step_for(total)) {
                        product(&layer.down, &acts, groups, xs, c.hidden, true);
                    }
                    barrier.wait();
                }
                if ci * CHUNK + n == tokens.len() {
                    // The next-token logits of the last token.
                    // SAFETY: `x` is only read in this phase.
                    let last = unsafe { xs.slice((n - 1) * c.hidden, c.hidden) };
                    rms_norm_rows(last, &self.norm, c.rms_eps, &mut normed[..c.hidden]);
                    acts.fill(&normed, 1, c.hidden, c.hidden);
                    let total = out_w.groups();
                    let phase = chunk_phases + c.layers * PHASES_PER_LAYER;
                    for groups in claims(phase, total, step_for(total)) {
                        product(out_w, &acts, groups, logit_ptr, padded_len, false);
                    }
                }
                barrier.wait();
            }
        };
        std::thread::scope(|s| {
            for tid in 1..threads {
                let work = &work;
                s.spawn(move || work(tid));
            }
            work(0);
        });
        self.running.fetch_sub(1, Ordering::AcqRel);
        cache.len += tokens.len();
        logits.copy_from_slice(&padded[..c.vocab]);
        Ok(())
    }
}

/// One query head's attention over the cached positions `0..scores.len()`: keys and values of
/// its key/value head start at `offset` in rows of `stride`; the result goes to `out`.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    offset: usize,
    stride: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let d = q.len();
    let mut max = f32::NEG_INFINITY;
    for (j, s) in scores.iter_mut().enumerate() {
        *s = dot(q, &keys[j * stride + offset..][..d]) * scale;
        max = max.max(*s);
    }
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    out.fill(0.0);
    for (j, &s) in scores.iter().enumerate() {
        axpy(s / sum, &values[j * stride + offset..][..d], out);
    }
}

fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let ms = row.iter().map(|v| v * v).sum::<f32>() / d as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for ((o, &v), &w) in o.iter_mut().zip(row).zip(weight) {
            *o = v * r * w;
        }
    }
}

/// Rotary embedding, pairs `(2i, 2i+1)` (GGUF's LLaMA layout).
fn rope_interleaved(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    for (pair, (&c, &s)) in x.chunks_exact_mut(2).zip(cos.iter().zip(sin)) {
        let (a, b) = (pair[0], pair[1]);
        pair[0] = a * c - b * s;
        pair[1] = a * s + b * c;
    }
}

fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Dot product with eight running sums (vectorizes; the order is fixed, so results repeat).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn product_with(kernel: Kernel, w: &QMatrix, x: &[f32], n: usize) -> Vec<f32> {
        let mut acts = QActs::with_capacity(n, w.cols);
        acts.fill(x, n, w.cols, w.cols);
        let stride = w.groups() * GROUP;
        let mut out = vec![0f32; n * stride];
        // SAFETY: `out` holds n rows of `stride` ≥ all groups' rows; one thread.
        unsafe {
            gemm(
                kernel,
                w,
                &acts,
                0..w.groups(),
                Out {
                    ptr: SharedPtr(out.as_mut_ptr()),
                    stride,
                    accumulate: false,
                },
            )
        };
        out
    }

    #[test]
    fn quantized_products_match_f32_and_each_kernel_agrees() {
        let (rows, cols, n) = (10, 96, 3); // 10 rows: the last group is half padding
        let w = values(rows * cols, 1);
        let x = values(n * cols, 2);
        let q = QMatrix::quantize(&w, rows, cols);
        let portable = product_with(Kernel::Portable, &q, &x, n);
        let stride = q.groups() * GROUP;
        for t in 0..n {
            for r in 0..rows {
                let exact: f32 = (0..cols).map(|i| w[r * cols + i] * x[t * cols + i]).sum();
                let got = portable[t * stride + r];
                // 8-bit blocks: errors of a few per mille of the operands' scale.
                assert!(
                    (got - exact).abs() < 0.05,
                    "row {r} token {t}: {got} vs {exact}"
                );
            }
            for r in rows..stride {
                assert_eq!(portable[t * stride + r], 0.0, "padding row {r}");
            }
        }
        #[cfg(target_arch = "x86_64")]
        if Kernel::detect() == Kernel::Avx2 {
            let simd = product_with(Kernel::Avx2, &q, &x, n);
            for (a, b) in simd.iter().zip(&portable) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn a_q8_0_row_survives_the_relayout_exactly() {
        // Values already on a Q8_0 grid (q · d, |q| ≤ 127 with one at 127) come back unchanged.
        let d = f16::from_f32(0.01).to_f32();
        let row: Vec<f32> = (0..64)
            .map(|i| ((i * 37) % 255) as f32 - 127.0)
            .map(|q| q * d)
            .collect();
        let m = QMatrix::quantize(&row, 1, 64);
        let mut back = vec![0f32; 64];
        m.dequantize_row(0, &mut back);
        assert_eq!(back, row);
    }

    #[test]
    fn the_barrier_holds_every_thread_until_all_arrive() {
        let threads = 3;
        let barrier = SpinBarrier::new(threads);
        let counter = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for round in 1..=100 {
                        counter.fetch_add(1, Ordering::SeqCst);
                        barrier.wait();
                        assert!(counter.load(Ordering::SeqCst) >= round * threads);
                        barrier.wait();
                    }
                });
            }
        });
        assert_eq!(counter.load(Ordering::SeqCst), 300);
    }

    #[test]
    fn shares_cover_the_range_once() {
        for n in [0, 1, 5, 18, 49152] {
            for threads in 1..5 {
                let mut next = 0;
                for t in 0..threads {
                    let r = share(n, t, threads);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }
}
