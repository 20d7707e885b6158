//! Transcription results and their subtitle renderings (SRT, WebVTT).
//!
//! Field names follow OpenAI's `verbose_json` response, so the server can serialise a
//! [`Transcript`] directly.

use std::fmt::Write;

use serde::Serialize;

/// The result of transcribing one recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// The whole text, segments joined, without leading or trailing whitespace.
    pub text: String,
    /// Spoken language (always `"en"` for the English-only model).
    pub language: String,
    /// Length of the input audio, in seconds.
    pub duration: f64,
    /// Timed segments, in order.
    pub segments: Vec<Segment>,
}

/// A stretch of speech with its time span, as delimited by Whisper's timestamp tokens.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Position in [`Transcript::segments`].
    pub id: usize,
    /// Mel frame (10 ms units) at which the 30 s window that produced it started.
    pub seek: usize,
    /// Start time, seconds.
    pub start: f64,
    /// End time, seconds.
    pub end: f64,
    /// Text as decoded (Whisper puts a space before each segment's first word).
    pub text: String,
    /// Token ids, timestamp tokens included.
    pub tokens: Vec<u32>,
    /// Sampling temperature the window was finally decoded at.
    pub temperature: f32,
    /// Mean log-probability of the window's tokens.
    pub avg_logprob: f64,
    /// Text bytes over zlib-compressed bytes; high values mean repetitive output.
    pub compression_ratio: f64,
    /// Probability the model gave to "no speech" for the window.
    pub no_speech_prob: f64,
}

impl Transcript {
    /// SubRip subtitles: numbered cues, `HH:MM:SS,mmm` times, a blank line after each.
    pub fn to_srt(&self) -> String {
        let mut out = String::new();
        for (index, segment) in self.cues().enumerate() {
            let _ = write!(
                out,
                "{}\n{} --> {}\n{}\n\n",
                index + 1,
                timestamp(segment.0, ','),
                timestamp(segment.1, ','),
                segment.2
            );
        }
        out
    }

    /// WebVTT subtitles: the `WEBVTT` header, then `HH:MM:SS.mmm` cues with escaped text.
    pub fn to_vtt(&self) -> String {
        let mut out = String::from("WEBVTT\n\n");
        for (start, end, text) in self.cues() {
            let text = text
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            let _ = write!(
                out,
                "{} --> {}\n{}\n\n",
                timestamp(start, '.'),
                timestamp(end, '.'),
                text
            );
        }
        out
    }

    /// Non-empty segments as `(start, end, single-line text)`.
    fn cues(&self) -> impl Iterator<Item = (f64, f64, String)> + '_ {
        self.segments.iter().filter_map(|s| {
            let text = s.text.split_whitespace().collect::<Vec<_>>().join(" ");
            (!text.is_empty()).then_some((s.start, s.end.max(s.start), text))
        })
    }
}

/// `HH:MM:SS<sep>mmm`, rounded to the millisecond; hours grow past 99 if they must.
fn timestamp(seconds: f64, separator: char) -> String {
    let millis = if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    };
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (secs, millis) = (rest / 1000, rest % 1000);
    format!("{hours:02}:{minutes:02}:{secs:02}{separator}{millis:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(id: usize, start: f64, end: f64, text: &str) -> Segment {
        Segment {
            id,
            seek: 0,
            start,
            end,
            text: text.into(),
            tokens: vec![],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.0,
            no_speech_prob: 0.01,
        }
    }

    fn transcript() -> Transcript {
        Transcript {
            text: "Hello there. <b>Fish</b> & chips --> now".into(),
            language: "en".into(),
            duration: 3725.0,
            segments: vec![
                segment(0, 0.0, 2.5, " Hello there."),
                segment(1, 2.5, 2.5, " "),
                segment(2, 3.0004, 3661.9996, " <b>Fish</b> &\n chips"),
            ],
        }
    }

    #[test]
    fn srt_numbers_cues_and_uses_commas() {
        assert_eq!(
            transcript().to_srt(),
            "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n\
             2\n00:00:03,000 --> 01:01:02,000\n<b>Fish</b> & chips\n\n"
        );
    }

    #[test]
    fn vtt_has_header_dots_and_escapes() {
        assert_eq!(
            transcript().to_vtt(),
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n\
             00:00:03.000 --> 01:01:02.000\n&lt;b&gt;Fish&lt;/b&gt; &amp; chips\n\n"
        );
    }

    #[test]
    fn empty_transcript_renders_headers_only() {
        let empty = Transcript {
            text: String::new(),
            language: "en".into(),
            duration: 1.0,
            segments: vec![],
        };
        assert_eq!(empty.to_srt(), "");
        assert_eq!(empty.to_vtt(), "WEBVTT\n\n");
    }

    #[test]
    fn timestamps_round_and_clamp() {
        assert_eq!(timestamp(59.9996, ','), "00:01:00,000");
        assert_eq!(timestamp(-1.0, '.'), "00:00:00.000");
        assert_eq!(timestamp(f64::NAN, '.'), "00:00:00.000");
        assert_eq!(timestamp(360_000.0, '.'), "100:00:00.000");
    }

    #[test]
    fn serialises_like_openai_verbose_json() {
        let json = serde_json::to_value(transcript()).unwrap();
        assert_eq!(json["language"], "en");
        assert_eq!(json["segments"][0]["start"], 0.0);
        assert_eq!(json["segments"][0]["text"], " Hello there.");
        assert!(json["segments"][0]["avg_logprob"].is_number());
    }
}
