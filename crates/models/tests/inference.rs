//! The runtime on the real weights (pulled by `marquee models pull`; `scripts/test` does it).

use std::path::PathBuf;

use marquee_models::chat::{
    ChatModel, ChatTemplate, Decoder, FinishReason, GenerationParams, Message,
};
use marquee_models::embed::{Embedder, Encoder, Overflow};
use marquee_models::llama::Llama;
use marquee_models::runtime::ModelError;

fn models_dir() -> PathBuf {
    let dir = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(marquee_models::pull::default_models_dir);
    assert!(
        dir.join("all-minilm-l6-v2/model.safetensors").is_file()
            && dir.join("smollm2-135m-instruct/model.gguf").is_file(),
        "the test models are not in {}: run `marquee models pull` (scripts/test does)",
        dir.display()
    );
    dir
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn embeddings_are_unit_vectors_that_rank_meaning() {
    let e = Embedder::load(&models_dir().join("all-minilm-l6-v2"), 256).unwrap();
    assert_eq!(e.encoder(), Encoder::Marquee);
    assert_eq!(e.dimensions(), 384);
    let texts = [
        "A cat sits on the mat.",
        "A kitten is resting on a rug.",
        "Stock markets fell sharply on Monday.",
    ];
    let out = e.embed(&texts, Overflow::Reject).unwrap();
    assert_eq!(out.vectors.len(), 3);
    for v in &out.vectors {
        assert_eq!(v.len(), 384);
        assert!((dot(v, v) - 1.0).abs() < 1e-4);
    }
    let close = dot(&out.vectors[0], &out.vectors[1]);
    let far = dot(&out.vectors[0], &out.vectors[2]);
    assert!(close > 0.5 && far < 0.2, "close {close}, far {far}");
    // [CLS] a cat sits on the mat . [SEP]
    assert_eq!(out.tokens[0], 9);

    // Batching gives the same vectors as one at a time.
    for (i, t) in texts.iter().enumerate() {
        let single = e.embed(&[t], Overflow::Reject).unwrap();
        assert!(dot(&single.vectors[0], &out.vectors[i]) > 0.99999);
    }
}

/// Marquee's encoder (`bert.rs`, no padding, own GELU/softmax) computes what candle's `bert`
/// computes (which matched sentence-transformers to 1 − 10⁻¹² in `bench/embeddings.sh`), for
/// texts of very different lengths in one call, a 256-token one included.
#[test]
fn marquees_encoder_agrees_with_candles_reference() {
    let dir = models_dir().join("all-minilm-l6-v2");
    let ours = Embedder::load_with(&dir, 256, Encoder::Marquee).unwrap();
    let reference = Embedder::load_with(&dir, 256, Encoder::Candle).unwrap();
    assert_eq!(reference.encoder(), Encoder::Candle);
    let long =
        "The crew of a deep-space freighter wakes early to answer a distress call. ".repeat(30);
    let texts = [
        "WALL·E",
        "A robot left alone on Earth falls in love.",
        "Toy Story (1995). A cowboy doll is profoundly threatened and jealous when a new \
         spaceman figure supplants him as top toy in a boy's room.",
        long.as_str(),
        "Naïve café owners — 東京 — meet at dawn!",
    ];
    let a = ours.embed(&texts, Overflow::Truncate).unwrap();
    let b = reference.embed(&texts, Overflow::Truncate).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.tokens[3], 256);
    for (i, (x, y)) in a.vectors.iter().zip(&b.vectors).enumerate() {
        let cos = dot(x, y);
        assert!(cos > 0.99999, "text {i}: cosine {cos}");
        let worst = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "text {i}: largest difference {worst}");
    }
}

#[test]
fn overlong_input_is_refused_or_truncated() {
    let e = Embedder::load(&models_dir().join("all-minilm-l6-v2"), 256).unwrap();
    let long = "word ".repeat(400);
    match e.embed(&["short", &long], Overflow::Reject) {
        Err(ModelError::InputTooLong {
            index: 1,
            limit: 256,
            tokens,
        }) => assert!(tokens > 256),
        other => panic!("expected InputTooLong, got {other:?}"),
    }
    let out = e.embed(&[&long], Overflow::Truncate).unwrap();
    assert_eq!(out.tokens[0], 256);
}

fn smol() -> ChatModel {
    smol_on(Decoder::Marquee)
}

fn smol_on(decoder: Decoder) -> ChatModel {
    let m = ChatModel::load_with(
        &models_dir().join("smollm2-135m-instruct/model.gguf"),
        ChatTemplate::ChatMl,
        2048,
        &["<|im_end|>".to_string()],
        Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()),
        decoder,
    )
    .unwrap();
    assert_eq!(m.decoder(), decoder);
    m
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap()
}

/// Marquee's decoder (`llama.rs`) computes the same model as candle's `quantized_llama`: the
/// same next-token distribution for a prompt longer than one chunk, the same greedy reply; and
/// its chunked prompt pass gives exactly what feeding the tokens one by one gives.
#[test]
fn marquees_decoder_agrees_with_candles_reference() {
    let ours = smol_on(Decoder::Marquee);
    let reference = smol_on(Decoder::Candle);
    let messages = vec![Message {
        role: "user".into(),
        content: "Write a one-sentence synopsis of a film about a lighthouse keeper who \
                  befriends a stranded whale during the winter storms of 1953."
            .into(),
    }];
    let prompt = ours.tokenize(&ours.render(&messages)).unwrap();
    assert!(
        prompt.len() > 40,
        "{} tokens: the prompt spans two chunks",
        prompt.len()
    );
    let a = ours.logits(&prompt).unwrap();
    let b = reference.logits(&prompt).unwrap();
    assert_eq!(a.len(), b.len());
    let cos = cosine(&a, &b);
    assert!(cos > 0.999, "cosine of the logits {cos}");
    assert_eq!(argmax(&a), argmax(&b));

    let greedy = GenerationParams {
        max_tokens: Some(24),
        temperature: 0.0,
        ..Default::default()
    };
    let ta = ours.generate(&prompt, &greedy, |_| true).unwrap();
    let tb = reference.generate(&prompt, &greedy, |_| true).unwrap();
    assert_eq!(ta.text, tb.text);
    assert!(!ta.text.is_empty());

    // The decoder itself: the prompt in one call (chunks of 32 tokens), in two calls, and one
    // token per call through the same cache give the same logits, exactly — every token's
    // arithmetic is the same whichever call or chunk carries it.
    let path = models_dir().join("smollm2-135m-instruct/model.gguf");
    let mut file = std::fs::File::open(&path).unwrap();
    let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let model = Llama::from_gguf(&content, &mut file).unwrap();
    let vocab = model.config().vocab;
    let run = |pieces: &[&[u32]]| {
        let mut cache = model.new_cache(prompt.len());
        let mut logits = vec![0f32; vocab];
        for piece in pieces {
            model.forward(&mut cache, piece, &mut logits).unwrap();
        }
        assert_eq!(cache.len(), prompt.len());
        logits
    };
    let whole = run(&[&prompt]);
    assert_eq!(whole, a);
    assert_eq!(run(&[&prompt[..33], &prompt[33..]]), whole);
    let singles: Vec<&[u32]> = prompt.chunks(1).collect();
    assert_eq!(run(&singles), whole);
    // Refused, and the cache untouched: no tokens, more than it holds, outside the vocabulary.
    let mut cache = model.new_cache(2);
    let mut logits = vec![0f32; vocab];
    assert!(model.forward(&mut cache, &[], &mut logits).is_err());
    assert!(
        model
            .forward(&mut cache, &prompt[..3], &mut logits)
            .is_err()
    );
    assert!(
        model
            .forward(&mut cache, &[vocab as u32], &mut logits)
            .is_err()
    );
    assert!(cache.is_empty());
}

#[test]
fn greedy_generation_is_deterministic_and_streams_what_it_returns() {
    let m = smol();
    let messages = vec![Message {
        role: "user".into(),
        content: "What is the capital of France?".into(),
    }];
    let prompt = m.tokenize(&m.render(&messages)).unwrap();
    let params = GenerationParams {
        max_tokens: Some(24),
        temperature: 0.0,
        ..Default::default()
    };
    let mut streamed = String::new();
    let a = m
        .generate(&prompt, &params, |t| {
            streamed.push_str(t);
            true
        })
        .unwrap();
    let b = m.generate(&prompt, &params, |_| true).unwrap();
    assert_eq!(a.text, b.text);
    assert_eq!(a.text, streamed);
    assert!(a.text.contains("Paris"), "{:?}", a.text);
    assert!(a.completion_tokens >= 1 && a.completion_tokens <= 24);
    assert_eq!(a.prompt_tokens, prompt.len());
    eprintln!(
        "{:?} {:?} {:.1} tok/s",
        a.text,
        a.finish_reason,
        a.completion_tokens as f64 / a.seconds
    );
}

#[test]
fn stop_strings_length_and_cancellation() {
    let m = smol();
    let messages = vec![Message {
        role: "user".into(),
        content: "Count from 1 to 20, separated by commas.".into(),
    }];
    let prompt = m.tokenize(&m.render(&messages)).unwrap();
    let greedy = |max, stop: Vec<String>| GenerationParams {
        max_tokens: Some(max),
        temperature: 0.0,
        stop,
        ..Default::default()
    };
    let full = m.generate(&prompt, &greedy(60, vec![]), |_| true).unwrap();
    assert!(full.text.contains('5'), "{:?}", full.text);
    let stopped = m
        .generate(&prompt, &greedy(60, vec!["5".into()]), |_| true)
        .unwrap();
    assert_eq!(stopped.finish_reason, FinishReason::Stop);
    assert!(!stopped.text.contains('5'));
    assert!(full.text.starts_with(&stopped.text));
    let short = m.generate(&prompt, &greedy(3, vec![]), |_| true).unwrap();
    assert_eq!(short.finish_reason, FinishReason::Length);
    assert_eq!(short.completion_tokens, 3);
    let mut pieces = 0;
    let cancelled = m
        .generate(&prompt, &greedy(60, vec![]), |_| {
            pieces += 1;
            pieces < 2
        })
        .unwrap();
    assert_eq!(cancelled.finish_reason, FinishReason::Cancelled);
    assert!(cancelled.completion_tokens < 10);
    // Prompt plus max_tokens beyond the context is refused before any work.
    assert!(matches!(
        m.generate(&prompt, &greedy(5000, vec![]), |_| true),
        Err(ModelError::ContextTooLong { .. })
    ));
}
