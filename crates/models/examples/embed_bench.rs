//! Embedding benchmark, Marquee's side of `bench/embeddings.sh`.
//!
//! ```text
//! embed_bench MODEL_DIR TEXTS.txt OUT.json [SECONDS]    # measures by itself, prints a JSON summary
//! embed_bench MODEL_DIR TEXTS.txt OUT.json --serve      # passes on request (the bench script)
//! ```
//!
//! Loads the embedding model from `MODEL_DIR` (`config.json`, `tokenizer.json`,
//! `model.safetensors`: the layout `marquee models pull all-minilm-l6-v2` writes), reads one text
//! per line from `TEXTS.txt`, embeds them all in one call (over-long texts truncated to 256 tokens,
//! as catalogue text is) and writes `{"vectors", "tokens"}` to `OUT.json`.
//!
//! Throughput is measured in passes: the texts are cut, in file order, into calls of `batch` texts
//! (32, 32, 32, 4 for 100 texts at batch 32), and one pass over all of them gives one figure in
//! texts/second. Modes of a pass:
//! - `1`, `32` (any number): calls of that many texts to `Embedder::embed`.
//! - `32b`: the same calls, but each cut further into groups of similar token length (padding
//!   waste at most 20 %) before it reaches `embed`. A diagnostic: it shows what `embed` would
//!   gain by cutting its sub-batches by length rather than by count (a call of 32 texts is now
//!   one forward pass padded to its longest text).
//!
//! Standalone, it runs a warm-up pass and then passes of each mode until at least SECONDS
//! (default 10) have passed and at least 5 were taken, and prints median and mean. With
//! `--serve`, after the summary line it reads one mode per line on stdin and answers each with the
//! seconds of one pass, so the bench script can alternate passes with the reference's (both sides
//! then see the same load on a shared machine).
//! Threads: the encoder and the tokenizer use rayon's pool, sized by `RAYON_NUM_THREADS` (default: all
//! cores).
use std::io::BufRead;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use marquee_models::embed::{Embedder, Encoder, Overflow};
use serde_json::json;

/// Most padding a length group may carry: padded tokens ≤ SLACK × real tokens.
const SLACK: f64 = 1.2;

struct Bench<'a> {
    embedder: &'a Embedder,
    texts: Vec<&'a str>,
    tokens: Vec<usize>,
}

impl Bench<'_> {
    /// Seconds for one pass over all texts in calls of `batch`, optionally length-grouped.
    fn pass(&self, batch: usize, grouped: bool) -> f64 {
        let start = Instant::now();
        let indices: Vec<usize> = (0..self.texts.len()).collect();
        for call in indices.chunks(batch) {
            if grouped {
                for group in length_groups(call, &self.tokens) {
                    self.embed(&group);
                }
            } else {
                self.embed(call);
            }
        }
        start.elapsed().as_secs_f64()
    }

    fn embed(&self, indices: &[usize]) {
        let chunk: Vec<&str> = indices.iter().map(|&i| self.texts[i]).collect();
        let out = self
            .embedder
            .embed(&chunk, Overflow::Truncate)
            .expect("embeds");
        assert_eq!(out.vectors.len(), chunk.len());
    }

    fn run_mode(&self, mode: &str) -> f64 {
        let (batch, grouped) = parse_mode(mode);
        self.pass(batch, grouped)
    }
}

fn parse_mode(mode: &str) -> (usize, bool) {
    let grouped = mode.ends_with('b');
    let batch = mode
        .trim_end_matches('b')
        .parse()
        .unwrap_or_else(|_| panic!("mode {mode:?}: a batch size, optionally followed by b"));
    (batch, grouped)
}

/// Cuts one call's texts into groups of similar token length, longest first, so that each group's
/// padded size (count × longest) stays within `SLACK` × its real tokens.
fn length_groups(call: &[usize], tokens: &[usize]) -> Vec<Vec<usize>> {
    let mut sorted = call.to_vec();
    sorted.sort_by_key(|&i| std::cmp::Reverse(tokens[i]));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut real = 0usize;
    for i in sorted {
        if let Some(&first) = current.first() {
            let padded = (current.len() + 1) * tokens[first];
            if padded as f64 > SLACK * (real + tokens[i]) as f64 {
                groups.push(std::mem::take(&mut current));
                real = 0;
            }
        }
        real += tokens[i];
        current.push(i);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn stats(mode: &str, texts: usize, seconds: &[f64]) -> serde_json::Value {
    let mut rates: Vec<f64> = seconds.iter().map(|s| texts as f64 / s).collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    rates.sort_by(|a, b| a.total_cmp(b));
    json!({
        "mode": mode,
        "passes": rates.len(),
        "texts_per_s_median": rates[rates.len() / 2],
        "texts_per_s_mean": mean,
        "texts_per_s_min": rates[0],
        "texts_per_s_max": rates[rates.len() - 1],
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: embed_bench MODEL_DIR TEXTS.txt OUT.json [SECONDS | --serve]");
        std::process::exit(2);
    }
    let model_dir = PathBuf::from(&args[1]);
    let text = std::fs::read_to_string(&args[2]).expect("the texts file is readable");
    let texts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let serve = args.get(4).is_some_and(|a| a == "--serve");
    let seconds: f64 = match args.get(4) {
        Some(s) if !serve => s.parse().expect("SECONDS is a number"),
        _ => 10.0,
    };

    let start = Instant::now();
    let embedder = Embedder::load(&model_dir, 256).expect("the model loads");
    let load_s = start.elapsed().as_secs_f64();

    // The vectors the reference is compared against: all texts in one call.
    let start = Instant::now();
    let all = embedder.embed(&texts, Overflow::Truncate).expect("embeds");
    let first_call_s = start.elapsed().as_secs_f64();
    std::fs::write(
        &args[3],
        serde_json::to_string(&json!({ "vectors": all.vectors, "tokens": all.tokens }))
            .expect("serialises"),
    )
    .expect("OUT.json is writable");

    // Tokenizer alone (the part of a call that is not the model), per pass over the texts.
    let start = Instant::now();
    let reps = 20;
    for _ in 0..reps {
        embedder.count_tokens(&texts).expect("tokenizes");
    }
    let tokenize_s = start.elapsed().as_secs_f64() / reps as f64;

    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bench = Bench {
        embedder: &embedder,
        texts: texts.clone(),
        tokens: all.tokens.clone(),
    };
    let mut summary = json!({
        "side": match embedder.encoder() {
            Encoder::Marquee => "Marquee's encoder (crates/models/src/bert.rs)",
            Encoder::Candle => "candle's bert",
        },
        "texts": texts.len(),
        "tokens_total": all.tokens.iter().sum::<usize>(),
        "tokens_max": all.tokens.iter().max(),
        "threads": threads,
        "load_s": load_s,
        "first_call_s": first_call_s,
        "tokenize_pass_s": tokenize_s,
    });

    if serve {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        writeln!(out, "{summary}").expect("stdout");
        out.flush().expect("stdout");
        for line in std::io::stdin().lock().lines() {
            let line = line.expect("stdin");
            let mode = line.trim();
            if mode.is_empty() {
                continue;
            }
            writeln!(out, "{}", bench.run_mode(mode)).expect("stdout");
            out.flush().expect("stdout");
        }
        return;
    }

    for mode in ["1", "32", "32b"] {
        bench.run_mode(mode); // warm-up: page in the weights, grow the allocator's pools
        let mut passes = Vec::new();
        let begin = Instant::now();
        while passes.len() < 5 || begin.elapsed().as_secs_f64() < seconds {
            passes.push(bench.run_mode(mode));
        }
        summary[format!("batch{mode}")] = stats(mode, texts.len(), &passes);
    }
    println!("{summary}");
}
