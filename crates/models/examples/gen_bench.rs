//! Text-generation speed against the memory-bandwidth bound, measured in one run.
//!
//! Decoding one token reads every weight once, so tokens/s can be at most
//! `bandwidth ÷ weight bytes`. This measures the machine's read bandwidth (two threads summing a
//! 1 GiB buffer, best of five), then greedy decode speed, time to first token for a 200-token
//! prompt, and whether greedy output repeats exactly — for Marquee's decoder (`llama.rs`) and
//! for candle's `quantized_llama` on the same file (its Q4_1 tensors converted to Q8_0, which
//! has candle's fast kernel).
//!
//! `cargo run --release -p marquee-models --example gen_bench -- [MODELS_DIR] [--json]`
//! (`bench/generation.sh` runs it).

use std::path::Path;
use std::time::Instant;

use marquee_models::chat::{ChatModel, ChatTemplate, Decoder, GenerationParams, Message};

fn bandwidth_gb_s() -> f64 {
    let words = (1usize << 30) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let started = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let chunk = words.div_ceil(threads);
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().fold(0u64, |a, &x| a.wrapping_add(x))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(total);
        let gb = (words * 8) as f64 / 1e9;
        best = best.max(gb / started.elapsed().as_secs_f64());
    }
    best
}

struct Figures {
    weight_bytes: u64,
    decode_tok_s: f64,
    ttft_200: f64,
    prompt_tokens: usize,
    deterministic: bool,
    text: String,
    concurrent_tok_s: f64,
}

fn measure(path: &Path, decoder: Decoder) -> Figures {
    let model = ChatModel::load_with(
        path,
        ChatTemplate::ChatMl,
        2048,
        &["<|im_end|>".to_string()],
        Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()),
        decoder,
    )
    .expect("the model loads");
    let ask = |content: String| {
        let messages = vec![Message {
            role: "user".into(),
            content,
        }];
        model.tokenize(&model.render(&messages)).expect("tokenizes")
    };
    let greedy = |max| GenerationParams {
        max_tokens: Some(max),
        temperature: 0.0,
        ..Default::default()
    };
    // Decode: a long answer, greedy; tokens after the first over the time after the first.
    let prompt = ask("Tell me a long story about a dragon who learns to fly.".into());
    let mut rates = Vec::new();
    let mut texts = Vec::new();
    for _ in 0..3 {
        let g = model
            .generate(&prompt, &greedy(128), |_| true)
            .expect("generates");
        rates.push(
            (g.completion_tokens.saturating_sub(1)) as f64 / (g.seconds - g.time_to_first_token),
        );
        texts.push(g.text);
    }
    rates.sort_by(f64::total_cmp);
    // Two generations at once (the server runs up to two per model by default): tokens of
    // both over the wall time.
    let started = Instant::now();
    let tokens: usize = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|_| s.spawn(|| model.generate(&prompt, &greedy(128), |_| true).unwrap()))
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap().completion_tokens)
            .sum()
    });
    let concurrent_tok_s = tokens as f64 / started.elapsed().as_secs_f64();
    // Time to first token for a prompt of 200 tokens.
    let mut filler = String::new();
    let mut long = ask(filler.clone());
    let words = [
        "the", "film", "follows", "a", "young", "pilot", "across", "stormy", "skies",
    ];
    let mut i = 0;
    while long.len() < 200 {
        filler.push_str(words[i % words.len()]);
        filler.push(' ');
        i += 1;
        long = ask(filler.clone());
    }
    let mut ttfts: Vec<f64> = (0..3)
        .map(|_| {
            model
                .generate(&long, &greedy(1), |_| true)
                .unwrap()
                .time_to_first_token
        })
        .collect();
    ttfts.sort_by(f64::total_cmp);
    Figures {
        weight_bytes: model.weight_bytes(),
        decode_tok_s: rates[1],
        ttft_200: ttfts[1],
        prompt_tokens: long.len(),
        deterministic: texts.windows(2).all(|w| w[0] == w[1]),
        text: texts.swap_remove(0),
        concurrent_tok_s,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .filter(|a| !a.starts_with("--"))
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("MARQUEE_MODELS_DIR").map(Into::into))
        .unwrap_or_else(marquee_models::pull::default_models_dir);
    let path = dir.join("smollm2-135m-instruct/model.gguf");
    let json = args.iter().any(|a| a == "--json");
    let bw = bandwidth_gb_s();
    let mut rows = Vec::new();
    let mut texts = Vec::new();
    for (label, decoder) in [
        ("Marquee's decoder (as served)", Decoder::Marquee),
        (
            "candle quantized_llama (Q4_1 → Q8_0 at load)",
            Decoder::Candle,
        ),
    ] {
        let f = measure(&path, decoder);
        texts.push(f.text.clone());
        let bound = bw * 1e9 / f.weight_bytes as f64;
        rows.push(serde_json::json!({
            "variant": label,
            "weight_mb": f.weight_bytes as f64 / 1e6,
            "decode_tokens_per_s": f.decode_tok_s,
            "bound_tokens_per_s": bound,
            "fraction_of_bound": f.decode_tok_s / bound,
            "ttft_s": f.ttft_200,
            "ttft_prompt_tokens": f.prompt_tokens,
            "greedy_deterministic": f.deterministic,
            "two_at_once_tokens_per_s": f.concurrent_tok_s,
        }));
    }
    // Greedy texts of the two decoders: 8-bit activations round differently, so a long text
    // may part ways; how far they agree says the arithmetic is the same model.
    let common = texts[0]
        .chars()
        .zip(texts[1].chars())
        .take_while(|(a, b)| a == b)
        .count();
    let out = serde_json::json!({
        "bandwidth_gb_s": bw,
        "runs": rows,
        "greedy_texts_agree_chars": common,
        "greedy_text_chars": texts[0].chars().count(),
        "greedy_text": texts[0],
    });
    if json {
        println!("{out}");
        return;
    }
    println!("memory read bandwidth: {bw:.1} GB/s (2 threads, 1 GiB, best of 5)");
    println!(
        "| variant | weights read per token | decode tok/s | bound tok/s | of bound | two generations at once, tok/s in all | TTFT (200-token prompt) | greedy repeats |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in out["runs"].as_array().unwrap() {
        println!(
            "| {} | {:.1} MB | {:.1} | {:.1} | {:.0} % | {:.1} | {:.2} s ({} tokens) | {} |",
            r["variant"].as_str().unwrap(),
            r["weight_mb"].as_f64().unwrap(),
            r["decode_tokens_per_s"].as_f64().unwrap(),
            r["bound_tokens_per_s"].as_f64().unwrap(),
            100.0 * r["fraction_of_bound"].as_f64().unwrap(),
            r["two_at_once_tokens_per_s"].as_f64().unwrap(),
            r["ttft_s"].as_f64().unwrap(),
            r["ttft_prompt_tokens"],
            r["greedy_deterministic"],
        );
    }
    println!(
        "greedy 128-token texts of the two decoders agree on the first {common} of {} characters",
        texts[0].chars().count()
    );
    println!("Marquee's text: {:?}", texts[0]);
}
