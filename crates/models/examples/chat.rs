//! Generates a reply from the command line: `cargo run --release -p marquee-models --example chat -- MODEL.gguf "prompt" [max_tokens]`.
use marquee_models::chat::{ChatModel, ChatTemplate, GenerationParams, Message};
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = ChatModel::load(
        std::path::Path::new(&args[1]),
        ChatTemplate::ChatMl,
        2048,
        &["<|im_end|>".to_string()],
        Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()),
    )
    .expect("model loads");
    let messages = vec![Message {
        role: "user".into(),
        content: args[2].clone(),
    }];
    let prompt = model.render(&messages);
    let ids = model.tokenize(&prompt).expect("tokenizes");
    eprintln!(
        "prompt tokens: {} first: {:?}",
        ids.len(),
        &ids[..ids.len().min(12)]
    );
    let max = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let params = GenerationParams {
        max_tokens: Some(max),
        temperature: 0.0,
        ..Default::default()
    };
    let g = model
        .generate(&ids, &params, |t| {
            print!("{t}");
            let _ = std::io::stdout().flush();
            true
        })
        .expect("generates");
    println!();
    eprintln!(
        "{} tokens, {:?}, ttft {:.3}s, {:.1} tok/s decode",
        g.completion_tokens,
        g.finish_reason,
        g.time_to_first_token,
        (g.completion_tokens.saturating_sub(1)) as f64
            / (g.seconds - g.time_to_first_token).max(1e-9)
    );
}
