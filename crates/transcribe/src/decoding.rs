//! openai-whisper's decoding rules, as pure functions over logits and token ids.
//!
//! These are what make Whisper's output usable beyond the raw model: suppressed symbol
//! tokens, paired and non-decreasing timestamp tokens, forcing a timestamp when timestamps
//! are jointly more likely than any word, the compression-ratio test for repetition loops,
//! and the cutting of a window's tokens into timed segments. Each mirrors the reference
//! (`decoding.py`: `SuppressBlank`, `SuppressTokens`, `ApplyTimestampRules`; `transcribe.py`:
//! the segment slicing and the seek update).

use rand::Rng;

/// Token ids and lists the rules need.
#[derive(Debug, Clone)]
pub struct LogitRules {
    pub eot: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
    /// Never sampled.
    pub suppress: Vec<u32>,
    /// Not sampled as the first token.
    pub suppress_begin: Vec<u32>,
    /// Latest timestamp allowed as the first token, in 20 ms steps (openai: 1.0 s = 50).
    pub max_initial_timestamp_index: u32,
}

fn mask(logits: &mut [f32], range: std::ops::Range<usize>) {
    let end = range.end.min(logits.len());
    let start = range.start.min(end);
    logits[start..end].fill(f32::NEG_INFINITY);
}

impl LogitRules {
    /// Applies the rules in openai's order to the next-token `logits`, given the tokens
    /// sampled so far in this window (`sampled`, prompt excluded).
    pub fn apply(&self, logits: &mut [f32], sampled: &[u32]) {
        let tb = self.timestamp_begin as usize;
        let eot = self.eot as usize;
        let first = sampled.is_empty();
        // SuppressBlank and SuppressTokens.
        if first {
            for &t in &self.suppress_begin {
                mask(logits, t as usize..t as usize + 1);
            }
        }
        for &t in &self.suppress {
            mask(logits, t as usize..t as usize + 1);
        }
        // ApplyTimestampRules.
        let nt = self.no_timestamps as usize;
        mask(logits, nt..nt + 1);
        let is_ts = |t: u32| t >= self.timestamp_begin;
        let last_was_timestamp = sampled.last().is_some_and(|&t| is_ts(t));
        let penultimate_was_timestamp = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_was_timestamp {
            if penultimate_was_timestamp {
                // A pair is complete: text (or end of text) must follow.
                mask(logits, tb..logits.len());
            } else {
                // A segment just ended: another timestamp (or end of text) must follow.
                mask(logits, 0..eot);
            }
        }
        if let Some(&last_ts) = sampled.iter().rev().find(|&&t| is_ts(t)) {
            // Timestamps never decrease, and a segment has non-zero length.
            let limit = if last_was_timestamp && !penultimate_was_timestamp {
                last_ts
            } else {
                last_ts + 1
            };
            mask(logits, tb..limit as usize);
        }
        if first {
            // A window starts with a timestamp, no later than the initial limit.
            mask(logits, 0..tb);
            let last_allowed = tb + self.max_initial_timestamp_index as usize;
            mask(logits, last_allowed + 1..logits.len());
        }
        // If the timestamps together outweigh every single text token, take a timestamp.
        if tb < logits.len() {
            let logprobs = log_softmax(logits);
            let timestamp_logprob = log_sum_exp(&logprobs[tb..]);
            let max_text = logprobs[..tb]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            if timestamp_logprob > max_text {
                mask(logits, 0..tb);
            }
        }
    }
}

fn log_sum_exp(values: &[f32]) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    let sum: f64 = values.iter().map(|&v| f64::from(v - max).exp()).sum();
    max + sum.ln() as f32
}

/// Numerically stable log-softmax.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|&v| v - lse).collect()
}

/// Probability of `token` under softmax(`logits`).
pub fn probability(logits: &[f32], token: u32) -> f32 {
    let lse = log_sum_exp(logits);
    logits.get(token as usize).map_or(0.0, |&v| (v - lse).exp())
}

/// Index of the largest logit (the first on ties): greedy decoding.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// Samples from softmax(`logits / temperature`); `temperature` > 0.
pub fn sample(logits: &[f32], temperature: f32, rng: &mut impl Rng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&v| (f64::from(v - max) / f64::from(temperature)).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    if !total.is_finite() || total <= 0.0 {
        return argmax(logits);
    }
    let mut target = rng.random::<f64>() * total;
    for (i, &w) in weights.iter().enumerate() {
        if target < w {
            return i as u32;
        }
        target -= w;
    }
    argmax(logits)
}

/// Text bytes over zlib-compressed bytes (openai's `compression_ratio`); repetition loops
/// compress well and score high.
pub fn compression_ratio(text: &str) -> f64 {
    let bytes = text.as_bytes();
    let compressed = miniz_oxide::deflate::compress_to_vec_zlib(bytes, 6);
    bytes.len() as f64 / compressed.len().max(1) as f64
}

/// Longest phrase (in tokens) the loop guard looks for.
const MAX_LOOP_PERIOD: usize = 48;
/// Back-to-back copies of a phrase that make a loop...
const MIN_LOOP_REPEATS: usize = 4;
/// ...and the fewest tokens they must cover (so "no, no, no, no" is still speech).
const MIN_LOOP_TOKENS: usize = 16;

/// If `tokens` ends with one phrase repeated back to back (at least 4 copies, covering at
/// least 16 tokens), the length of `tokens` that keeps only the first of those copies.
pub fn repetition_loop(tokens: &[u32]) -> Option<usize> {
    let n = tokens.len();
    for period in 1..=MAX_LOOP_PERIOD.min(n / 2) {
        let needed = MIN_LOOP_REPEATS.max(MIN_LOOP_TOKENS.div_ceil(period));
        if period * needed > n {
            continue;
        }
        let block = &tokens[n - period..];
        let copies = (1..needed)
            .take_while(|&k| &tokens[n - (k + 1) * period..n - k * period] == block)
            .count()
            + 1;
        if copies >= needed {
            return Some(n - (needed - 1) * period);
        }
    }
    None
}

/// One timed piece of a window: `tokens[range]`, from `start` to `end` in 20 ms steps
/// relative to the window start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub range: std::ops::Range<usize>,
    pub start: u32,
    pub end: u32,
}

/// How a window's tokens divide into segments and how far to move the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub pieces: Vec<Piece>,
    /// Mel frames to advance: the last complete timestamp (so an unfinished sentence is
    /// decoded again from its start in the next window), or the whole window.
    pub advance_frames: usize,
}

/// openai's slicing of a window's sampled tokens (end-of-text excluded) at pairs of
/// consecutive timestamp tokens. `segment_frames` is the window's length in mel frames;
/// `frames_per_step` the mel frames per timestamp step (2).
pub fn split_segments(
    tokens: &[u32],
    timestamp_begin: u32,
    segment_frames: usize,
    frames_per_step: usize,
) -> Split {
    let is_ts: Vec<bool> = tokens.iter().map(|&t| t >= timestamp_begin).collect();
    let pos = |t: u32| t - timestamp_begin;
    let n = tokens.len();
    let single_timestamp_ending = n >= 2 && !is_ts[n - 2] && is_ts[n - 1];
    let mut slices: Vec<usize> = (1..n).filter(|&i| is_ts[i - 1] && is_ts[i]).collect();
    if slices.is_empty() {
        // No complete pair boundary: one piece over the whole window; its end is the last
        // timestamp when there is one (other than 0), else the window end. (openai starts it
        // at the window start; the first timestamp is used here, as it is more accurate when
        // a window opens on silence.)
        let last_ts = tokens.iter().rev().find(|&&t| t >= timestamp_begin);
        let end = match last_ts {
            Some(&t) if t != timestamp_begin => pos(t),
            _ => (segment_frames / frames_per_step) as u32,
        };
        let start = match tokens.first() {
            Some(&t) if t >= timestamp_begin => pos(t).min(end),
            _ => 0,
        };
        return Split {
            pieces: vec![Piece {
                range: 0..n,
                start,
                end,
            }],
            advance_frames: segment_frames,
        };
    }
    if single_timestamp_ending {
        slices.push(n);
    }
    let mut pieces = Vec::with_capacity(slices.len());
    let mut last = 0;
    for &cut in &slices {
        let piece = &tokens[last..cut];
        pieces.push(Piece {
            range: last..cut,
            start: pos(piece[0].max(timestamp_begin)),
            end: pos(piece[piece.len() - 1].max(timestamp_begin)),
        });
        last = cut;
    }
    let advance_frames = if single_timestamp_ending {
        segment_frames
    } else {
        pos(tokens[last - 1]) as usize * frames_per_step
    };
    Split {
        pieces,
        advance_frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TB: u32 = 100;
    const EOT: u32 = 50;

    fn rules() -> LogitRules {
        LogitRules {
            eot: EOT,
            no_timestamps: 99,
            timestamp_begin: TB,
            suppress: vec![3],
            suppress_begin: vec![7, EOT],
            max_initial_timestamp_index: 5,
        }
    }

    fn allowed(logits: &[f32]) -> Vec<usize> {
        (0..logits.len())
            .filter(|&i| logits[i] > f32::NEG_INFINITY)
            .collect()
    }

    #[test]
    fn first_token_is_an_early_timestamp() {
        let mut logits = vec![0.0f32; 200];
        rules().apply(&mut logits, &[]);
        assert_eq!(allowed(&logits), (100..=105).collect::<Vec<_>>());
    }

    /// Logits that favour text: each word e^5, each timestamp e^0.
    fn text_favoured() -> Vec<f32> {
        (0..200)
            .map(|t| if t < TB as usize { 5.0 } else { 0.0 })
            .collect()
    }

    #[test]
    fn timestamps_pair_and_never_decrease() {
        // After <|ts 4|> alone: text must follow (the pair's opening timestamp).
        let mut logits = text_favoured();
        rules().apply(&mut logits, &[104]);
        let ok = allowed(&logits);
        assert!(ok.contains(&10) && !ok.contains(&3) && !ok.contains(&99));
        assert!(ok.iter().all(|&t| t < 100));
        // After text: text, end of text, or a timestamp later than 4.
        let mut logits = text_favoured();
        rules().apply(&mut logits, &[104, 10]);
        let ok = allowed(&logits);
        assert!(ok.contains(&10) && ok.contains(&(EOT as usize)));
        assert!(!ok.contains(&104) && ok.contains(&105));
        // After text + closing timestamp: no text, only end of text (or the special tokens
        // after it, as in openai) and timestamps >= the closing one.
        let mut logits = text_favoured();
        rules().apply(&mut logits, &[104, 10, 108]);
        let ok = allowed(&logits);
        assert_eq!(ok[0], EOT as usize);
        let timestamps: Vec<_> = ok.iter().copied().filter(|&t| t >= 100).collect();
        assert_eq!(timestamps, (108..200).collect::<Vec<_>>());
        // After a consecutive pair: text.
        let mut logits = text_favoured();
        rules().apply(&mut logits, &[104, 10, 108, 108]);
        assert!(allowed(&logits).iter().all(|&t| t < 100));
    }

    #[test]
    fn timestamp_mass_beats_the_best_word() {
        let mut logits = vec![-10.0f32; 200];
        logits[10] = 1.0;
        // 90 timestamps at e^0 outweigh one word at e^1.
        logits[110..200].fill(0.0);
        rules().apply(&mut logits, &[104, 10]);
        assert!(allowed(&logits).iter().all(|&t| t >= 100));
    }

    #[test]
    fn sampling_follows_temperature() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let logits = [0.0f32, 2.0, f32::NEG_INFINITY];
        assert_eq!(argmax(&logits), 1);
        let ones = (0..2000)
            .filter(|_| sample(&logits, 1.0, &mut rng) == 1)
            .count();
        // p(1) = e^2 / (1 + e^2) = 0.88
        assert!((1650..1870).contains(&ones), "{ones}");
        assert!((0..100).all(|_| sample(&logits, 1.0, &mut rng) != 2));
        assert!((probability(&logits, 1) - 0.8808).abs() < 1e-3);
    }

    #[test]
    fn loops_are_found_and_cut_to_one_copy() {
        // "Thank you." = [1, 2, 3]: six copies (18 tokens) after some speech.
        let mut tokens = vec![7, 8, 9];
        for _ in 0..5 {
            tokens.extend([1, 2, 3]);
        }
        assert_eq!(repetition_loop(&tokens), None);
        tokens.extend([1, 2, 3]);
        assert_eq!(repetition_loop(&tokens), Some(6));
        // A long sentence said four times.
        let sentence: Vec<u32> = (10..30).collect();
        let four: Vec<u32> = sentence.iter().cycle().take(80).copied().collect();
        assert_eq!(repetition_loop(&four), Some(20));
        assert_eq!(repetition_loop(&four[..60]), None);
        // Short repetitions in speech are not loops.
        assert_eq!(repetition_loop(&[5, 5, 5, 5, 5, 5]), None);
        assert_eq!(repetition_loop(&[4, 6, 4, 6, 4, 6, 4, 6]), None);
        assert_eq!(repetition_loop(&[]), None);
    }

    #[test]
    fn repetition_compresses() {
        assert!(compression_ratio("The popcorn is ready and the movie starts at eight.") < 1.5);
        assert!(compression_ratio(&"Thank you. ".repeat(20)) > 2.4);
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn splits_at_consecutive_timestamps_and_seeks_to_the_last_complete_one() {
        // <0> a b <150><150> c <300><300> d   (the last segment is unfinished)
        let tokens = [100, 1, 2, 250, 250, 3, 400, 400, 4];
        let split = split_segments(&tokens, TB, 3000, 2);
        assert_eq!(
            split.pieces,
            vec![
                Piece {
                    range: 0..4,
                    start: 0,
                    end: 150
                },
                Piece {
                    range: 4..7,
                    start: 150,
                    end: 300
                },
            ]
        );
        assert_eq!(split.advance_frames, 600);
        // Ending with a single timestamp: everything is complete, take the whole window.
        let tokens = [100, 1, 250, 250, 3, 400];
        let split = split_segments(&tokens, TB, 3000, 2);
        assert_eq!(split.pieces.len(), 2);
        assert_eq!(
            split.pieces[1],
            Piece {
                range: 3..6,
                start: 150,
                end: 300
            }
        );
        assert_eq!(split.advance_frames, 3000);
    }

    #[test]
    fn one_pair_is_one_segment_over_the_window() {
        let split = split_segments(&[100, 1, 2, 350], TB, 2000, 2);
        assert_eq!(
            split.pieces,
            vec![Piece {
                range: 0..4,
                start: 0,
                end: 250
            }]
        );
        assert_eq!(split.advance_frames, 2000);
        // No timestamps at all: the window's length.
        let split = split_segments(&[1, 2], TB, 2000, 2);
        assert_eq!(
            split.pieces,
            vec![Piece {
                range: 0..2,
                start: 0,
                end: 1000
            }]
        );
        assert_eq!(split_segments(&[], TB, 2000, 2).advance_frames, 2000);
    }
}
