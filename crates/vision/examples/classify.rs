//! Classifies image files and times each stage (decode, resize, network) over several runs.
//!
//! ```text
//! cargo run --release -p marquee-vision --example classify -- \
//!     [--runs N] [--model-dir DIR] [--convert] [--dump-input DIR] IMAGE...
//! ```
//!
//! The model directory defaults to `$MARQUEE_MODELS_DIR/efficientnet-lite0`, else
//! `${XDG_DATA_HOME:-$HOME/.local/share}/marquee/models/efficientnet-lite0`. `--convert` runs the
//! conversion there first. `--dump-input DIR` writes each preprocessed input (224 × 224 × 3, NHWC)
//! and its 1000 logits as raw little-endian f32 to `DIR/<file name>.f32` and
//! `DIR/<file name>.logits.f32`, for checking against a reference implementation.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use marquee_vision::{ImageClassifier, ImageLimits, convert, decode_image, preprocess};

fn default_model_dir() -> PathBuf {
    let base = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
                })
                .join("marquee/models")
        });
    base.join("efficientnet-lite0")
}

struct Args {
    runs: usize,
    model_dir: PathBuf,
    convert: bool,
    dump_input: Option<PathBuf>,
    images: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runs: 20,
        model_dir: default_model_dir(),
        convert: false,
        dump_input: None,
        images: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--runs" => {
                args.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?
            }
            "--model-dir" => args.model_dir = value("--model-dir")?.into(),
            "--convert" => args.convert = true,
            "--dump-input" => args.dump_input = Some(value("--dump-input")?.into()),
            "-h" | "--help" => return Err(String::new()),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}")),
            _ => args.images.push(arg.into()),
        }
    }
    if args.images.is_empty() || args.runs == 0 {
        return Err("give at least one image and --runs ≥ 1".into());
    }
    Ok(args)
}

/// (min, median) in milliseconds.
fn stats(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(times[0]), ms(times[times.len() / 2]))
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.convert {
        let started = Instant::now();
        let written = convert(&args.model_dir)?;
        println!(
            "converted {} → {written:?} in {:.0} ms",
            args.model_dir.display(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    let started = Instant::now();
    let classifier = ImageClassifier::load(&args.model_dir)?;
    println!(
        "loaded in {:.0} ms; {} rayon threads",
        started.elapsed().as_secs_f64() * 1e3,
        rayon::current_num_threads()
    );
    let limits = ImageLimits::default();
    for path in &args.images {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let result = classifier.classify(&bytes, 5, &limits)?;
        println!(
            "\n{}: {} {}×{}",
            path.display(),
            result.format,
            result.width,
            result.height
        );
        for label in &result.labels {
            println!(
                "  {:>4} {:<30} {:.4}",
                label.index, label.label, label.score
            );
        }
        if let Some(dir) = &args.dump_input {
            let input = preprocess(&decode_image(&bytes, &limits)?.image)?;
            let logits = classifier.logits(&input)?;
            dump(dir, path, "f32", &input)?;
            dump(dir, path, "logits.f32", &logits)?;
        }

        let (mut decode, mut resize, mut network, mut total) = (vec![], vec![], vec![], vec![]);
        for _ in 0..args.runs {
            let t0 = Instant::now();
            let decoded = decode_image(&bytes, &limits)?;
            let t1 = Instant::now();
            let input = preprocess(&decoded.image)?;
            let t2 = Instant::now();
            let logits = classifier.logits(&input)?;
            let t3 = Instant::now();
            std::hint::black_box(logits);
            decode.push(t1 - t0);
            resize.push(t2 - t1);
            network.push(t3 - t2);
            total.push(t3 - t0);
        }
        println!("  ms over {} runs (min / median):", args.runs);
        for (stage, times) in [
            ("decode", &mut decode),
            ("resize", &mut resize),
            ("network", &mut network),
            ("total", &mut total),
        ] {
            let (min, median) = stats(times);
            println!("    {stage:<8} {min:7.2} / {median:7.2}");
        }
    }
    Ok(())
}

/// Writes `values` as raw little-endian f32 to `dir/<image file name>.<extension>`.
fn dump(dir: &Path, image: &Path, extension: &str, values: &[f32]) -> std::io::Result<()> {
    let name = image.file_name().unwrap_or_default().to_string_lossy();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.{extension}")), bytes)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!(
                "usage: classify [--runs N] [--model-dir DIR] [--convert] [--dump-input DIR] IMAGE..."
            );
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
