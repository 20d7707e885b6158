//! Host-side signal processing (hibari `dsp.py`): the network predicts a spectrum per 12.5 ms frame
//! in five parts; this turns it into a waveform. A band-limited pulse train from F0 is filtered by
//! the harmonic branch, shaped noise and a free-phase branch are added, then one inverse STFT
//! (n_fft 1200, hop 300, periodic Hann, 24 kHz):
//!
//! `S = exp(lh) e^{i pi tanh(theta)} STFT(pulses(f0)) + exp(ln) Z + exp(lr) e^{i phi}`
//!
//! The arithmetic follows the numpy code (float32 throughout, float64 only for the phase
//! accumulator), so the audio matches the reference up to rounding.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

pub const N_FFT: usize = 1200;
pub const HOP: usize = 300;
pub const BINS: usize = N_FFT / 2 + 1;
pub const SR: f64 = 24_000.0;
const K: usize = N_FFT / HOP;

/// The network's outputs for one chunk: five `[BINS, frames]` row-major planes and `f0[frames]`.
pub struct Frames<'a> {
    pub lh: &'a [f32],
    pub theta: &'a [f32],
    pub ln: &'a [f32],
    pub lr: &'a [f32],
    pub phi: &'a [f32],
    pub f0: &'a [f32],
}

/// Where the noise component comes from.
pub enum Noise {
    /// Standard normal noise from a generator seeded with this value.
    Seeded(u64),
    /// No noise (reference comparisons: numpy's generator cannot be reproduced).
    #[cfg_attr(not(test), allow(dead_code))]
    Silent,
}

/// FFT plans and windows, shared by all calls.
pub struct Dsp {
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    win: Vec<f32>,
    win_src: Vec<f32>,
    /// `(u, 1 - u)` interpolation weights per sample of a hop
    interp: Vec<(f32, f32)>,
}

fn ex(x: f32) -> f32 {
    x.min(7.0).exp()
}

impl Dsp {
    pub fn new() -> Dsp {
        let mut planner = RealFftPlanner::<f32>::new();
        let win: Vec<f32> = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let win_src = win.iter().map(|w| w / (N_FFT / 4) as f32).collect();
        let interp = (0..HOP)
            .map(|j| {
                let u = (((j as f64 + 0.5) / HOP as f64 - 0.5).rem_euclid(1.0)) as f32;
                (u, 1.0 - u)
            })
            .collect();
        Dsp {
            forward: planner.plan_fft_forward(N_FFT),
            inverse: planner.plan_fft_inverse(N_FFT),
            win,
            win_src,
            interp,
        }
    }

    /// Band-limited pulse train from the per-frame F0 curve: every harmonic below `fmax` at unit
    /// amplitude, `sin((H+1/2) t) / (2 sin(t/2)) - 1/2`; 0 where unvoiced (f0 < 40 Hz).
    fn pulses(&self, f0: &[f32]) -> Vec<f32> {
        const VTHRESH: f32 = 40.0;
        const FMAX: f32 = 11_000.0;
        let frames = f0.len();
        let at = |i: isize| f0[i.clamp(0, frames as isize - 1) as usize];
        let h2 = HOP / 2;
        let mut out = Vec::with_capacity(frames * HOP);
        let mut phase = 0.0f64;
        for k in 0..frames {
            let (prev, cur, next) = (at(k as isize - 1), at(k as isize), at(k as isize + 1));
            for (j, &(u, v)) in self.interp.iter().enumerate() {
                let f = if j < h2 {
                    prev * v + cur * u
                } else {
                    cur * v + next * u
                };
                let voiced = f > VTHRESH;
                let f = f.max(VTHRESH);
                phase += f as f64;
                let mut t = phase * (1.0 / SR);
                t -= t.trunc();
                let t = (t * (2.0 * std::f64::consts::PI)) as f32;
                let h = (FMAX / f).floor() + 0.5;
                let s = (t * 0.5).sin() * 2.0;
                let e = if s.abs() <= 2e-3 {
                    h
                } else {
                    (h * t).sin() / s
                };
                out.push(if voiced { e - 0.5 } else { 0.0 });
            }
        }
        out
    }

    /// The waveform of one chunk (`frames * HOP` samples).
    pub fn synth(&self, x: &Frames<'_>, noise: Noise) -> Vec<f32> {
        let frames = x.f0.len();
        if frames == 0 {
            return Vec::new();
        }
        let pulses = self.pulses(x.f0);
        // reflect-padded signal for the centred STFT
        let half = N_FFT / 2;
        let len = pulses.len();
        let reflect = |i: isize| -> f32 {
            let n = len as isize;
            let mut i = i - half as isize;
            if n == 1 {
                return pulses[0];
            }
            let period = 2 * (n - 1);
            i = i.rem_euclid(period);
            if i >= n {
                i = period - i;
            }
            pulses[i as usize]
        };
        let mut rng = match noise {
            Noise::Seeded(seed) => Some(rand::rngs::SmallRng::seed_from_u64(seed)),
            Noise::Silent => None,
        };
        let mut frame_in = self.forward.make_input_vec();
        let mut spec = self.forward.make_output_vec();
        let mut scratch_f = self.forward.make_scratch_vec();
        let mut scratch_i = self.inverse.make_scratch_vec();
        let mut frame_out = self.inverse.make_output_vec();
        // windowed inverse transforms of all frames, overlap-added below in numpy's order
        let mut windowed = vec![0.0f32; frames * N_FFT];
        for f in 0..frames {
            let start = (f * HOP) as isize;
            for (n, v) in frame_in.iter_mut().enumerate() {
                *v = reflect(start + n as isize) * self.win_src[n];
            }
            // lengths are the planned ones, so the transforms cannot fail
            let _ = self
                .forward
                .process_with_scratch(&mut frame_in, &mut spec, &mut scratch_f);
            for (b, s) in spec.iter_mut().enumerate() {
                let i = b * frames + f;
                let c = x.theta[i].tanh() * std::f32::consts::PI;
                let mag = ex(x.lh[i]);
                let rot = Complex32::new(c.cos() * mag, c.sin() * mag);
                let mut v = *s * rot;
                if let Some(rng) = rng.as_mut() {
                    let (re, im): (f32, f32) =
                        (rng.sample(StandardNormal), rng.sample(StandardNormal));
                    v += Complex32::new(re, im) * ex(x.ln[i]);
                }
                let mag = ex(x.lr[i]);
                v += Complex32::new(x.phi[i].cos() * mag, x.phi[i].sin() * mag);
                *s = v;
            }
            // irfft ignores the imaginary parts of the DC and Nyquist bins
            spec[0].im = 0.0;
            spec[BINS - 1].im = 0.0;
            let _ = self
                .inverse
                .process_with_scratch(&mut spec, &mut frame_out, &mut scratch_i);
            let dst = &mut windowed[f * N_FFT..(f + 1) * N_FFT];
            for ((d, v), w) in dst.iter_mut().zip(&frame_out).zip(&self.win) {
                *d = v * (1.0 / N_FFT as f32) * w;
            }
        }
        let mut y = vec![0.0f32; (frames + K - 1) * HOP];
        for k in 0..K {
            for f in 0..frames {
                let src = &windowed[f * N_FFT + k * HOP..f * N_FFT + (k + 1) * HOP];
                for (d, v) in y[(f + k) * HOP..(f + k + 1) * HOP].iter_mut().zip(src) {
                    *d += v;
                }
            }
        }
        // normalise by the summed squared window, as torch.istft does
        let mut wsum = vec![0.0f32; (frames + K - 1) * HOP];
        for k in 0..K {
            for f in 0..frames {
                for j in 0..HOP {
                    let w = self.win[k * HOP + j];
                    wsum[(f + k) * HOP + j] += w * w;
                }
            }
        }
        y.iter()
            .zip(&wsum)
            .skip(half)
            .take(frames * HOP)
            .map(|(v, w)| v * (1.0 / w.max(1e-11)))
            .collect()
    }
}
