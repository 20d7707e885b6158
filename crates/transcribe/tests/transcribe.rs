//! End-to-end tests on the real Whisper tiny.en weights (see `common` for where they are
//! found; the tests fail, naming `marquee models pull`, when they are missing).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use marquee_transcribe::audio::{AudioLimits, decode_to_16k, decode_wav, encode_wav_i16, resample};
use marquee_transcribe::{
    CONFIG_FILE, Error, RAW_MODEL_FILE, TranscribeOptions, Transcript, WEIGHTS_FILE, WhisperConfig,
    convert,
};

fn pcm_16k(name: &str) -> Vec<f32> {
    decode_to_16k(&sample(name), &AudioLimits::default()).expect("decode sample")
}

fn transcribe(pcm: &[f32]) -> Transcript {
    transcriber()
        .transcribe(pcm, &TranscribeOptions::default())
        .expect("transcribe")
}

#[test]
fn converts_the_ctranslate2_export_idempotently() {
    let dir = require_model();
    if !has_raw(&dir) {
        // `marquee models pull` converted the model and removed the raw binary: converting
        // again must be a no-op that names the converted files.
        eprintln!("{RAW_MODEL_FILE} is gone; checking only that convert() is a no-op");
        let before = std::fs::metadata(dir.join(WEIGHTS_FILE))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(convert(&dir).unwrap(), [WEIGHTS_FILE, CONFIG_FILE]);
        let after = std::fs::metadata(dir.join(WEIGHTS_FILE))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
        return;
    }
    let tmp = raw_copy();
    let started = Instant::now();
    let written = convert(tmp.path()).expect("convert");
    eprintln!("conversion took {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(written, [WEIGHTS_FILE, CONFIG_FILE]);
    let config: WhisperConfig =
        serde_json::from_slice(&std::fs::read(tmp.path().join(CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(
        (config.d_model, config.encoder_layers, config.decoder_layers),
        (384, 4, 4)
    );
    assert_eq!(
        (
            config.encoder_attention_heads,
            config.decoder_attention_heads
        ),
        (6, 6)
    );
    assert_eq!((config.vocab_size, config.num_mel_bins), (51864, 80));
    assert_eq!(
        (config.max_source_positions, config.max_target_positions),
        (1500, 448)
    );
    assert!(config.suppress_tokens.contains(&50361)); // <|nocaptions|>
    assert_eq!(config.begin_suppress_tokens, [220, 50256]);

    let tensors =
        candle_core::safetensors::load(tmp.path().join(WEIGHTS_FILE), &candle_core::Device::Cpu)
            .expect("read safetensors");
    let q = &tensors["model.decoder.layers.3.self_attn.q_proj.weight"];
    assert_eq!(q.dims(), [384, 384]);
    assert_eq!(q.dtype(), candle_core::DType::F16);
    assert_eq!(
        tensors["model.decoder.layers.0.encoder_attn.v_proj.bias"].dims(),
        [384]
    );
    assert!(!tensors.contains_key("model.encoder.layers.0.self_attn.k_proj.bias"));
    assert_eq!(
        tensors["model.decoder.embed_tokens.weight"].dims(),
        [51864, 384]
    );
    // 4 + 4 layers: encoder 15 tensors each, decoder 24 each, plus 11 outside the layers.
    assert_eq!(tensors.len(), 4 * 15 + 4 * 24 + 11);

    // Converting again rewrites the same bytes.
    let first = std::fs::read(tmp.path().join(WEIGHTS_FILE)).unwrap();
    convert(tmp.path()).expect("convert again");
    assert!(first == std::fs::read(tmp.path().join(WEIGHTS_FILE)).unwrap());
    assert!(!tmp.path().join("model.safetensors.partial").exists());
}

#[test]
fn transcribes_both_samples_concurrently() {
    let model = transcriber();
    let hibari = pcm_16k(HIBARI);
    let flite = pcm_16k(FLITE);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| model.transcribe(&hibari, &TranscribeOptions::default()));
        let b = s.spawn(|| model.transcribe(&flite, &TranscribeOptions::default()));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_eq!(normalise(&a.text), normalise(HIBARI_TEXT), "{}", a.text);
    assert_eq!(normalise(&b.text), normalise(FLITE_TEXT), "{}", b.text);
    assert_eq!(a.language, "en");
    assert!((a.duration - 119_600.0 / 16_000.0).abs() < 1e-9);
    assert!(a.segments.len() >= 2, "{:?}", a.segments);
    for t in [&a, &b] {
        let last = t.segments.last().unwrap();
        assert!(last.end <= t.duration + 1e-9 && last.end > t.duration - 1.5);
        assert!(
            t.segments
                .iter()
                .all(|s| s.avg_logprob > -1.0 && s.no_speech_prob < 0.5)
        );
        assert!(t.to_srt().starts_with("1\n00:00:00,"));
    }
}

#[test]
fn resampled_inputs_transcribe_the_same() {
    // 44.1 kHz stereo (channels at different gains) and 8 kHz mono, built from the samples.
    let hibari = pcm_16k(HIBARI);
    let up = resample(&hibari, 16_000, 44_100).unwrap();
    let stereo: Vec<f32> = up.iter().flat_map(|&s| [s, 0.6 * s]).collect();
    let wav = encode_wav_i16(&stereo, 2, 44_100);
    let pcm = decode_wav(&wav, &AudioLimits::default()).unwrap();
    assert_eq!(pcm.sample_rate, 44_100);
    let text = transcribe(&decode_to_16k(&wav, &AudioLimits::default()).unwrap()).text;
    assert_eq!(normalise(&text), normalise(HIBARI_TEXT), "44.1 kHz: {text}");

    let flite = pcm_16k(FLITE);
    let wav = encode_wav_i16(&resample(&flite, 16_000, 8_000).unwrap(), 1, 8_000);
    let text = transcribe(&decode_to_16k(&wav, &AudioLimits::default()).unwrap()).text;
    assert_eq!(normalise(&text), normalise(FLITE_TEXT), "8 kHz: {text}");
}

/// Speech regions (seconds) of the long test input and their text.
fn long_input() -> (Vec<f32>, Vec<(f64, f64, &'static str)>) {
    let hibari = pcm_16k(HIBARI);
    let flite = pcm_16k(FLITE);
    let mut pcm = Vec::new();
    let mut regions = Vec::new();
    let silence = |pcm: &mut Vec<f32>, seconds: f64| {
        pcm.extend(std::iter::repeat_n(0.0, (seconds * 16_000.0) as usize));
    };
    let mut speech = |pcm: &mut Vec<f32>, clip: &[f32], text: &'static str| {
        // Where the clip is audible (the TTS clips begin and end with some silence).
        let first = clip.iter().position(|s| s.abs() > 1e-3).unwrap();
        let last = clip.iter().rposition(|s| s.abs() > 1e-3).unwrap();
        let at = pcm.len();
        regions.push((
            (at + first) as f64 / 16_000.0,
            (at + last) as f64 / 16_000.0,
            text,
        ));
        pcm.extend_from_slice(clip);
    };
    silence(&mut pcm, 2.0);
    speech(&mut pcm, &hibari, HIBARI_TEXT);
    silence(&mut pcm, 20.0);
    speech(&mut pcm, &flite, FLITE_TEXT);
    silence(&mut pcm, 25.0);
    speech(&mut pcm, &hibari, HIBARI_TEXT);
    silence(&mut pcm, 3.0);
    (pcm, regions)
}

#[test]
fn long_input_has_ordered_segments_where_the_speech_is() {
    let (pcm, regions) = long_input();
    let duration = pcm.len() as f64 / 16_000.0;
    assert!(duration > 60.0);
    let started = Instant::now();
    let transcript = transcribe(&pcm);
    eprintln!(
        "{duration:.1} s of audio in {:.2} s:\n{}",
        started.elapsed().as_secs_f64(),
        transcript.to_srt()
    );
    let segments = &transcript.segments;
    for pair in segments.windows(2) {
        assert!(pair[0].start <= pair[1].start && pair[0].end <= pair[1].start + 1e-9);
    }
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s.id, i);
        assert!(s.start < s.end, "{s:?}");
    }
    // Every segment lies in a speech region (nothing was invented in the silences), and each
    // region's segments start and end within a second of its speech.
    let mut all_text = String::new();
    for &(start, end, text) in &regions {
        let inside: Vec<_> = segments
            .iter()
            .filter(|s| s.end > start - 1.0 && s.start < end + 1.0)
            .collect();
        assert!(!inside.is_empty(), "no segment for {start:.2}..{end:.2}");
        let first = inside.first().unwrap();
        let last = inside.last().unwrap();
        assert!(
            (first.start - start).abs() <= 1.0,
            "starts at {} for {start}",
            first.start
        );
        assert!(
            (last.end - end).abs() <= 1.0,
            "ends at {} for {end}",
            last.end
        );
        let said: String = inside.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(normalise(&said), normalise(text), "{start:.2}..{end:.2}");
        all_text.push_str(text);
        all_text.push(' ');
    }
    let outside: Vec<_> = segments
        .iter()
        .filter(|s| {
            !regions
                .iter()
                .any(|&(start, end, _)| s.end > start - 1.0 && s.start < end + 1.0)
        })
        .collect();
    assert!(outside.is_empty(), "segments in silence: {outside:?}");
    assert_eq!(normalise(&transcript.text), normalise(&all_text));
}

#[test]
fn speech_after_a_noisy_pause_is_dated_where_it_starts() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut noise =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-0.005f32..0.005)).collect() };
    let hibari = pcm_16k(HIBARI);
    let flite = pcm_16k(FLITE);
    let onset = flite.iter().position(|s| s.abs() > 0.01).unwrap();
    let mut pcm: Vec<f32> = hibari
        .iter()
        .zip(noise(hibari.len()))
        .map(|(s, n)| s + n)
        .collect();
    pcm.extend(noise(25 * 16_000));
    let flite_start = (pcm.len() + onset) as f64 / 16_000.0;
    pcm.extend(flite.iter().zip(noise(flite.len())).map(|(s, n)| s + n));
    let transcript = transcribe(&pcm);
    assert_eq!(
        normalise(&transcript.text),
        normalise(&format!("{HIBARI_TEXT} {FLITE_TEXT}")),
        "{}",
        transcript.text
    );
    let last = transcript.segments.last().unwrap();
    assert!(normalise(&last.text).contains("popcorn"), "{last:?}");
    assert!(
        (last.start - flite_start).abs() <= 1.0,
        "starts at {} for {flite_start}",
        last.start
    );
}

#[test]
fn silence_produces_no_text() {
    let transcript = transcribe(&vec![0.0; 40 * 16_000]);
    assert_eq!(transcript.text, "");
    assert!(transcript.segments.is_empty());
    assert_eq!(transcript.duration, 40.0);
}

#[test]
fn cancellation_stops_the_work() {
    let model = transcriber();
    let (pcm, _) = long_input();
    // Raised before the start.
    let cancel = Arc::new(AtomicBool::new(true));
    let opts = TranscribeOptions {
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    assert!(matches!(
        model.transcribe(&pcm, &opts),
        Err(Error::Cancelled)
    ));
    // Raised while decoding: the long input has several windows, so a transcription that only
    // looked at the flag before starting would finish with text instead of stopping.
    cancel.store(false, Ordering::SeqCst);
    let result = std::thread::scope(|s| {
        let worker = s.spawn(|| model.transcribe(&pcm, &opts));
        std::thread::sleep(Duration::from_millis(300));
        cancel.store(true, Ordering::SeqCst);
        worker.join().unwrap()
    });
    let err = result.expect_err("cancelled");
    assert_eq!(err.code(), "cancelled");
    assert!(!err.is_client_error());
}

#[test]
fn options_and_inputs_are_validated() {
    let model = transcriber();
    for temperature in [-0.1, 1.5, f32::NAN] {
        let opts = TranscribeOptions {
            temperature,
            ..Default::default()
        };
        let err = model.transcribe(&[0.0; 16_000], &opts).unwrap_err();
        assert_eq!(err.code(), "invalid_option");
        assert!(err.is_client_error());
    }
    let err = model
        .transcribe(&[], &TranscribeOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), "empty_audio");
}

#[test]
fn prompt_steers_the_spelling() {
    let flite = pcm_16k(FLITE);
    let opts = TranscribeOptions {
        prompt: Some("The show begins at nine o'clock, the film at eleven o'clock.".into()),
        ..Default::default()
    };
    let text = transcriber().transcribe(&flite, &opts).unwrap().text;
    assert_eq!(normalise(&text), normalise(FLITE_TEXT), "{text}");
    assert!(text.to_lowercase().contains("eight"), "{text}");
}

#[test]
fn real_samples_broken_or_too_long_are_client_errors() {
    let wav = sample(HIBARI);
    let limits = AudioLimits::default();
    let truncated = decode_to_16k(&wav[..wav.len() - 1000], &limits).unwrap_err();
    assert_eq!(truncated.code(), "invalid_audio");
    let short_limit = AudioLimits {
        max_seconds: 5.0,
        ..limits
    };
    let err = decode_to_16k(&wav, &short_limit).unwrap_err();
    assert_eq!(err.code(), "audio_too_long");
    assert!(err.to_string().contains("7.5 s"), "{err}");
    let tiny_limit = AudioLimits {
        max_bytes: 1000,
        ..limits
    };
    assert_eq!(
        decode_to_16k(&wav, &tiny_limit).unwrap_err().code(),
        "audio_too_large"
    );
    let mut header_only = wav[..44].to_vec();
    header_only[40..44].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(
        decode_to_16k(&header_only, &limits).unwrap_err().code(),
        "empty_audio"
    );
}
