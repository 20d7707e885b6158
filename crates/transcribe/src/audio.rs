//! WAV decoding and resampling to Whisper's 16 kHz mono.
//!
//! The RIFF/WAVE parser is written here rather than taken from `hound` because uploads are
//! hostile input: every size comes from the file and must be checked against the bytes that
//! are actually there, the duration limit has to be enforced from the header before any
//! sample is decoded, and 64-bit float data (which `hound` rejects) is accepted. Supported:
//! integer PCM of 8, 16, 24 and 32 bits, IEEE float of 32 and 64 bits, plain or
//! `WAVE_FORMAT_EXTENSIBLE`, 1 to 8 channels (averaged to mono).
//!
//! Resampling uses `rubato`'s synchronous FFT resampler, which band-limits (anti-aliases)
//! with a Blackman-Harris windowed filter and handles every integer rate pair.

use crate::Error;
use crate::mel::SAMPLE_RATE;

/// Limits applied to an upload before and while decoding it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioLimits {
    /// Largest accepted file, in bytes (OpenAI's endpoint takes 25 MB).
    pub max_bytes: usize,
    /// Longest accepted audio, in seconds, checked from the header before decoding.
    pub max_seconds: f64,
}

impl Default for AudioLimits {
    fn default() -> Self {
        Self {
            max_bytes: 25 * 1024 * 1024,
            max_seconds: 600.0,
        }
    }
}

/// Decoded audio: mono samples in `[-1, 1]` (float sources may exceed it) at `sample_rate`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Pcm {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Lowest and highest sample rates accepted (telephone audio to studio masters).
const MIN_SAMPLE_RATE: u32 = 1_000;
const MAX_SAMPLE_RATE: u32 = 768_000;
const MAX_CHANNELS: u16 = 8;

const FORMAT_PCM: u16 = 0x0001;
const FORMAT_IEEE_FLOAT: u16 = 0x0003;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes 2..16 of the KSDATAFORMAT_SUBTYPE_* GUIDs; bytes 0..2 hold the format code.
const SUBFORMAT_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleFormat {
    /// Unsigned 8-bit, or signed little-endian 16/24/32-bit integers.
    Int { bytes: usize },
    /// IEEE float, 4 or 8 bytes.
    Float { bytes: usize },
}

#[derive(Debug, Clone, Copy)]
struct Format {
    sample: SampleFormat,
    channels: usize,
    sample_rate: u32,
    block_align: usize,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidAudio(reason.into())
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_fmt(chunk: &[u8]) -> Result<Format, Error> {
    if chunk.len() < 16 {
        return Err(invalid(format!(
            "fmt chunk is {} bytes; at least 16 are needed",
            chunk.len()
        )));
    }
    let mut code = u16_at(chunk, 0);
    let channels = u16_at(chunk, 2);
    let sample_rate = u32_at(chunk, 4);
    let block_align = usize::from(u16_at(chunk, 12));
    let bits = u16_at(chunk, 14);
    if code == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) subFormat GUID(16) follow the basic 16 bytes.
        if chunk.len() < 40 {
            return Err(invalid(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk is shorter than 40 bytes",
            ));
        }
        if chunk[26..40] != SUBFORMAT_GUID_TAIL {
            return Err(invalid(
                "WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID",
            ));
        }
        code = u16_at(chunk, 24);
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(invalid(format!(
            "{channels} channels; 1 to {MAX_CHANNELS} are supported"
        )));
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(invalid(format!(
            "sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz"
        )));
    }
    let sample = match (code, bits) {
        (FORMAT_PCM, 8 | 16 | 24 | 32) => SampleFormat::Int {
            bytes: usize::from(bits / 8),
        },
        (FORMAT_IEEE_FLOAT, 32 | 64) => SampleFormat::Float {
            bytes: usize::from(bits / 8),
        },
        (FORMAT_PCM, _) => {
            return Err(invalid(format!("{bits}-bit integer PCM is not supported")));
        }
        (FORMAT_IEEE_FLOAT, _) => {
            return Err(invalid(format!("{bits}-bit float is not supported")));
        }
        (other, _) => {
            return Err(invalid(format!(
                "WAV encoding 0x{other:04x} is not supported (only PCM and IEEE float)"
            )));
        }
    };
    let sample_bytes = match sample {
        SampleFormat::Int { bytes } | SampleFormat::Float { bytes } => bytes,
    };
    let channels = usize::from(channels);
    if block_align != channels * sample_bytes {
        return Err(invalid(format!(
            "block align {block_align} does not match {channels} channels of {bits} bits"
        )));
    }
    Ok(Format {
        sample,
        channels,
        sample_rate,
        block_align,
    })
}

/// Decodes a RIFF/WAVE file into mono `f32` samples at the file's own rate.
///
/// Checks, in order: the byte limit, the RIFF structure, the format, then the duration
/// against `limits.max_seconds` (from the header, before decoding any sample).
pub fn decode_wav(bytes: &[u8], limits: &AudioLimits) -> Result<Pcm, Error> {
    if bytes.len() > limits.max_bytes {
        return Err(Error::AudioTooLarge {
            bytes: bytes.len(),
            limit_bytes: limits.max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(invalid("the file is empty"));
    }
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(invalid("not a WAV file (no RIFF/WAVE header)"));
    }
    let mut format = None;
    let mut data: Option<&[u8]> = None;
    let mut pos = 12;
    while pos < bytes.len() {
        if bytes.len() - pos < 8 {
            // Some writers leave a stray pad byte or two at the end; anything that cannot
            // hold a chunk header is ignored.
            break;
        }
        let id = &bytes[pos..pos + 4];
        let declared = u32_at(bytes, pos + 4);
        let body_start = pos + 8;
        let remaining = bytes.len() - body_start;
        let len = if declared as usize <= remaining {
            declared as usize
        } else if id == b"data" && declared == u32::MAX {
            // Streaming writers cannot seek back to fill the size in and leave this marker.
            remaining
        } else {
            return Err(invalid(format!(
                "truncated file: chunk '{}' declares {declared} bytes but {remaining} remain",
                String::from_utf8_lossy(id)
            )));
        };
        let body = &bytes[body_start..body_start + len];
        match id {
            b"fmt " if format.is_none() => format = Some(parse_fmt(body)?),
            b"data" if data.is_none() => data = Some(body),
            _ => {}
        }
        if format.is_some() && data.is_some() {
            break;
        }
        // Chunks are padded to an even length.
        pos = body_start + len + (len & 1);
    }
    let format = format.ok_or_else(|| invalid("no fmt chunk"))?;
    let data = data.ok_or_else(|| invalid("no data chunk"))?;
    let frames = data.len() / format.block_align;
    let seconds = frames as f64 / f64::from(format.sample_rate);
    if seconds > limits.max_seconds {
        return Err(Error::AudioTooLong {
            seconds,
            limit_seconds: limits.max_seconds,
        });
    }
    if frames == 0 {
        return Err(Error::EmptyAudio);
    }
    let scale = 1.0 / format.channels as f32;
    let samples = data
        .chunks_exact(format.block_align)
        .map(|frame| {
            let sum: f32 = match format.sample {
                SampleFormat::Int { bytes } => frame.chunks_exact(bytes).map(int_sample).sum(),
                SampleFormat::Float { bytes } => frame.chunks_exact(bytes).map(float_sample).sum(),
            };
            sum * scale
        })
        .collect();
    Ok(Pcm {
        samples,
        sample_rate: format.sample_rate,
    })
}

fn int_sample(b: &[u8]) -> f32 {
    match b.len() {
        1 => (f32::from(b[0]) - 128.0) / 128.0,
        2 => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0,
        // Sign-extend by placing the 24 bits at the top of an i32.
        3 => (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0,
        _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
    }
}

fn float_sample(b: &[u8]) -> f32 {
    let value = if b.len() == 8 {
        f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
    } else {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    // NaN or infinity would poison the whole spectrogram (its global maximum).
    if value.is_finite() { value } else { 0.0 }
}

/// Resamples mono audio from `from_rate` to `to_rate` with an anti-aliased (band-limited)
/// FFT resampler. The output has `ceil(len * to_rate / from_rate)` samples, aligned with the
/// input (the filter delay is removed).
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>, Error> {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{Fft, FixedSync, Resampler};

    if from_rate == 0 || to_rate == 0 {
        return Err(Error::Resample(format!(
            "cannot resample {from_rate} Hz to {to_rate} Hz"
        )));
    }
    if from_rate == to_rate || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut resampler = Fft::<f32>::new(
        from_rate as usize,
        to_rate as usize,
        1024,
        1,
        FixedSync::Input,
    )
    .map_err(|e| Error::Resample(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, samples.len())
        .map_err(|e| Error::Resample(e.to_string()))?;
    let output = resampler
        .process_all(&input, samples.len(), None)
        .map_err(|e| Error::Resample(e.to_string()))?;
    Ok(output.take_data())
}

/// Decodes a WAV upload and returns 16 kHz mono samples, ready for transcription.
pub fn decode_to_16k(bytes: &[u8], limits: &AudioLimits) -> Result<Vec<f32>, Error> {
    let pcm = decode_wav(bytes, limits)?;
    resample(&pcm.samples, pcm.sample_rate, SAMPLE_RATE)
}

/// Encodes interleaved samples as a 16-bit PCM WAV file; tests and examples use it to build
/// inputs (the service itself never writes audio).
pub fn encode_wav_i16(samples: &[f32], channels: u16, sample_rate: u32) -> Vec<u8> {
    let data_len = samples.len() * 2;
    let mut out = Vec::with_capacity(44 + data_len);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&FORMAT_PCM.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(channels) * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data_len as u32).to_le_bytes());
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32_767.0).round() as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a WAV with an arbitrary fmt chunk body, a LIST chunk of odd length, and data.
    fn wav(fmt: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&((4 + 8 + fmt.len() + 12 + 8 + data.len()) as u32).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        out.extend_from_slice(fmt);
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(b"abc\0"); // odd chunk + pad byte
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn fmt(code: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut f = Vec::new();
        f.extend_from_slice(&code.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        f.extend_from_slice(&align.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    fn extensible(code: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let mut f = fmt(FORMAT_EXTENSIBLE, channels, rate, bits);
        f.extend_from_slice(&22u16.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&code.to_le_bytes());
        f.extend_from_slice(&SUBFORMAT_GUID_TAIL);
        f
    }

    fn limits() -> AudioLimits {
        AudioLimits::default()
    }

    #[test]
    fn decodes_every_sample_format_to_the_same_values() {
        // Two stereo frames: (0.5, -0.5) -> 0.0 and (0.5, 0.25) -> 0.375.
        let values = [0.5f64, -0.5, 0.5, 0.25];
        let i16s: Vec<u8> = values
            .iter()
            .flat_map(|v| ((v * 32768.0) as i16).to_le_bytes())
            .collect();
        let u8s: Vec<u8> = values.iter().map(|v| (v * 128.0 + 128.0) as u8).collect();
        let i24s: Vec<u8> = values
            .iter()
            .flat_map(|v| ((v * 8_388_608.0) as i32).to_le_bytes()[0..3].to_vec())
            .collect();
        let i32s: Vec<u8> = values
            .iter()
            .flat_map(|v| ((v * 2_147_483_648.0) as i32).to_le_bytes())
            .collect();
        let f32s: Vec<u8> = values
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect();
        let f64s: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let cases = [
            (fmt(FORMAT_PCM, 2, 8000, 8), u8s),
            (fmt(FORMAT_PCM, 2, 8000, 16), i16s.clone()),
            (fmt(FORMAT_PCM, 2, 8000, 24), i24s.clone()),
            (fmt(FORMAT_PCM, 2, 8000, 32), i32s),
            (fmt(FORMAT_IEEE_FLOAT, 2, 8000, 32), f32s.clone()),
            (fmt(FORMAT_IEEE_FLOAT, 2, 8000, 64), f64s),
            (extensible(FORMAT_PCM, 2, 8000, 16), i16s),
            (extensible(FORMAT_PCM, 2, 8000, 24), i24s),
            (extensible(FORMAT_IEEE_FLOAT, 2, 8000, 32), f32s),
        ];
        for (f, d) in cases {
            let pcm = decode_wav(&wav(&f, &d), &limits()).unwrap();
            assert_eq!(pcm.sample_rate, 8000);
            assert_eq!(pcm.samples.len(), 2);
            assert!(pcm.samples[0].abs() < 1e-6, "{f:?}: {:?}", pcm.samples);
            assert!(
                (pcm.samples[1] - 0.375).abs() < 1e-6,
                "{f:?}: {:?}",
                pcm.samples
            );
        }
    }

    #[test]
    fn eight_channels_are_averaged_and_nine_rejected() {
        let data: Vec<u8> = (0..8)
            .flat_map(|c| ((c * 1000) as i16).to_le_bytes())
            .collect();
        let pcm = decode_wav(&wav(&fmt(FORMAT_PCM, 8, 16000, 16), &data), &limits()).unwrap();
        assert!((pcm.samples[0] - 3500.0 / 32768.0).abs() < 1e-6);
        let nine = wav(&fmt(FORMAT_PCM, 9, 16000, 16), &[0; 18]);
        assert_eq!(
            decode_wav(&nine, &limits()).unwrap_err().code(),
            "invalid_audio"
        );
    }

    #[test]
    fn non_finite_float_samples_become_silence() {
        let data: Vec<u8> = [f32::NAN, f32::INFINITY, 0.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let pcm = decode_wav(
            &wav(&fmt(FORMAT_IEEE_FLOAT, 1, 16000, 32), &data),
            &limits(),
        );
        assert_eq!(pcm.unwrap().samples, vec![0.0, 0.0, 0.5]);
    }

    #[test]
    fn hostile_and_broken_files_are_client_errors() {
        let good = encode_wav_i16(&[0.1; 1600], 1, 16000);
        for len in 0..44 {
            let err = decode_wav(&good[..len], &limits()).unwrap_err();
            assert_eq!(err.code(), "invalid_audio", "prefix {len}: {err}");
            assert!(err.is_client_error());
        }
        // Truncated data chunk.
        let err = decode_wav(&good[..good.len() - 10], &limits()).unwrap_err();
        assert_eq!(err.code(), "invalid_audio");
        assert!(err.to_string().contains("truncated"), "{err}");
        // Absurd chunk size ahead of the data.
        let mut absurd = good.clone();
        absurd[16..20].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
        assert_eq!(
            decode_wav(&absurd, &limits()).unwrap_err().code(),
            "invalid_audio"
        );
        // Not a WAV at all.
        let err = decode_wav(b"ID3\x03\x00\x00\x00\x00\x00\x00 this is an mp3", &limits());
        assert_eq!(err.unwrap_err().code(), "invalid_audio");
        assert_eq!(
            decode_wav(&[], &limits()).unwrap_err().code(),
            "invalid_audio"
        );
        // Zero-length data.
        let empty = encode_wav_i16(&[], 1, 16000);
        assert_eq!(
            decode_wav(&empty, &limits()).unwrap_err().code(),
            "empty_audio"
        );
        // Unsupported encodings and inconsistent headers.
        for f in [
            fmt(0x0055, 1, 16000, 16),                           // MP3 in WAV
            fmt(FORMAT_PCM, 1, 16000, 12),                       // 12-bit
            fmt(FORMAT_IEEE_FLOAT, 1, 16000, 16),                // 16-bit float
            fmt(FORMAT_PCM, 1, 0, 16),                           // 0 Hz
            fmt(FORMAT_PCM, 0, 16000, 16),                       // no channels
            fmt(FORMAT_PCM, 1, 16000, 16)[..14].to_vec(),        // short fmt
            extensible(FORMAT_PCM, 1, 16000, 16)[..30].to_vec(), // short extensible
        ] {
            let err = decode_wav(&wav(&f, &[0; 64]), &limits()).unwrap_err();
            assert_eq!(err.code(), "invalid_audio", "{f:?}: {err}");
        }
        let mut bad_align = fmt(FORMAT_PCM, 2, 16000, 16);
        bad_align[12] = 3;
        assert_eq!(
            decode_wav(&wav(&bad_align, &[0; 64]), &limits())
                .unwrap_err()
                .code(),
            "invalid_audio"
        );
    }

    #[test]
    fn streaming_size_marker_reads_to_the_end() {
        let mut streamed = encode_wav_i16(&[0.25; 100], 1, 16000);
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_wav(&streamed, &limits()).unwrap().samples.len(), 100);
    }

    #[test]
    fn limits_are_checked_before_decoding() {
        let small = AudioLimits {
            max_bytes: 1000,
            max_seconds: 600.0,
        };
        let big = encode_wav_i16(&[0.0; 1000], 1, 16000);
        let err = decode_wav(&big, &small).unwrap_err();
        assert_eq!(err.code(), "audio_too_large");
        // A 2 s file (1 kHz, 8-bit) against a 1 s limit.
        let short = AudioLimits {
            max_bytes: 1 << 20,
            max_seconds: 1.0,
        };
        let long = wav(&fmt(FORMAT_PCM, 1, 1000, 8), &[128; 2000]);
        let err = decode_wav(&long, &short).unwrap_err();
        assert_eq!(err.code(), "audio_too_long");
        assert!(err.is_client_error());
    }

    /// Power of `signal` at `hz` via a single-bin DFT.
    fn tone_power(signal: &[f32], rate: u32, hz: f64) -> f64 {
        let (mut re, mut im) = (0f64, 0f64);
        for (i, &s) in signal.iter().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate);
            re += f64::from(s) * phase.cos();
            im += f64::from(s) * phase.sin();
        }
        (re * re + im * im) / (signal.len() as f64).powi(2)
    }

    #[test]
    fn resampler_keeps_the_passband_and_removes_aliases() {
        for rate in [
            8_000u32, 11_025, 22_050, 24_000, 44_100, 48_000, 96_000, 44_101,
        ] {
            let n = rate as usize;
            // 440 Hz (kept) plus, where the source can hold it, 9 kHz (above 16 kHz Nyquist).
            let alias_hz = 9_000.0;
            let has_alias = f64::from(rate) / 2.0 > alias_hz;
            let input: Vec<f32> = (0..n)
                .map(|i| {
                    let t = i as f64 / f64::from(rate);
                    let mut v = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
                    if has_alias {
                        v += 0.4 * (2.0 * std::f64::consts::PI * alias_hz * t).sin();
                    }
                    v as f32
                })
                .collect();
            let out = resample(&input, rate, 16_000).unwrap();
            let expected = (n as f64 * 16_000.0 / f64::from(rate)).ceil() as usize;
            assert_eq!(out.len(), expected, "{rate} Hz");
            // Skip the edges, where the filter sees the signal start and stop.
            let offset = 1600;
            let mid = &out[offset..out.len() - offset];
            let kept = tone_power(mid, 16_000, 440.0);
            assert!(
                (kept - 0.0625).abs() < 0.003,
                "{rate} Hz: 440 Hz power {kept}"
            );
            // 9 kHz folds to 7 kHz at 16 kHz; it must be gone.
            let folded = tone_power(mid, 16_000, 7_000.0);
            assert!(folded < 1e-5, "{rate} Hz: alias power {folded}");
            // Aligned with the source: what is left is the 440 Hz tone at its original phase.
            // A filter delay left in (tens of samples) would leave about 0.35 RMS; the
            // fraction of a sample some ratios are off by leaves under 0.05.
            let mean_square: f64 = mid
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    let t = (i + offset) as f64 / 16_000.0;
                    let want = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
                    (f64::from(s) - want).powi(2)
                })
                .sum::<f64>()
                / mid.len() as f64;
            assert!(
                mean_square.sqrt() < 0.08,
                "{rate} Hz: misaligned, rms error {}",
                mean_square.sqrt()
            );
        }
    }
}
