//! Depthwise convolution (3×3 or 5×5, stride 1 or 2, TF "SAME" padding) with the folded batch
//! norm's bias and ReLU6 fused in, on NHWC activations.
//!
//! Why hand-written: candle lowers a grouped convolution to one convolution per channel, which for
//! up to 1152 channels of a few pixels each is all overhead. Here each output pixel's channels are
//! contiguous, so the tap loop is a run of vector multiply-adds over channel blocks held in
//! registers (each input and weight is loaded once per tap, each output stored once). Output rows
//! are split across rayon's threads. On x86-64 the loop is compiled a second time with AVX2+FMA,
//! chosen at run time, since the default target only has SSE2.

use std::ops::Range;

use rayon::prelude::*;

/// TF "SAME" padding along one axis: `(output length, padding before)`. The output is
/// `ceil(input / stride)`; the total padding is whatever that needs, the smaller half (for an odd
/// total) before the data — unlike PyTorch's symmetric padding.
pub(crate) fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let output = input.div_ceil(stride);
    let total = ((output.max(1) - 1) * stride + kernel).saturating_sub(input);
    (output, total / 2)
}

/// Shape of one depthwise convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub in_height: usize,
    pub in_width: usize,
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub out_height: usize,
    pub out_width: usize,
    pad_top: usize,
    pad_left: usize,
}

impl Geometry {
    pub fn same(
        in_height: usize,
        in_width: usize,
        channels: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        let (out_height, pad_top) = same_padding(in_height, kernel, stride);
        let (out_width, pad_left) = same_padding(in_width, kernel, stride);
        Geometry {
            in_height,
            in_width,
            channels,
            kernel,
            stride,
            out_height,
            out_width,
            pad_top,
            pad_left,
        }
    }

    /// For output coordinate `out` along an axis of `len` input samples padded by `pad`: the
    /// input coordinate of tap 0 (may be negative) and the taps that land inside the input.
    fn taps(&self, out: usize, len: usize, pad: usize) -> (isize, Range<usize>) {
        let start = (out * self.stride) as isize - pad as isize;
        let first = (-start).max(0) as usize;
        let end = (len as isize - start).clamp(0, self.kernel as isize) as usize;
        (start, first..end.max(first))
    }
}

/// `relu6(depthwise(input) + bias)`. `input` is `(in_height, in_width, channels)` row-major,
/// `weight` is `(kernel, kernel, channels)`, the result `(out_height, out_width, channels)`.
pub(crate) fn depthwise_bias_relu6(
    input: &[f32],
    geometry: &Geometry,
    weight: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let g = geometry;
    assert_eq!(input.len(), g.in_height * g.in_width * g.channels);
    assert_eq!(weight.len(), g.kernel * g.kernel * g.channels);
    assert_eq!(bias.len(), g.channels);
    let row_len = g.out_width * g.channels;
    let mut output = vec![0.0f32; g.out_height * row_len];
    if output.is_empty() {
        return output;
    }
    // A few tasks per thread evens out the cheaper (clipped) border rows.
    let tasks = rayon::current_num_threads() * 2;
    let rows_per_task = g.out_height.div_ceil(tasks).max(1);
    output
        .par_chunks_mut(rows_per_task * row_len)
        .enumerate()
        .for_each(|(task, rows)| {
            output_rows(input, g, weight, bias, task * rows_per_task, rows);
        });
    output
}

/// Computes the output rows starting at `first_row` into `out` (whole rows).
fn output_rows(
    input: &[f32],
    g: &Geometry,
    weight: &[f32],
    bias: &[f32],
    first_row: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, all that `output_rows_avx2_fma` requires.
        unsafe { output_rows_avx2_fma(input, g, weight, bias, first_row, out) };
        return;
    }
    output_rows_impl::<false>(input, g, weight, bias, first_row, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn output_rows_avx2_fma(
    input: &[f32],
    g: &Geometry,
    weight: &[f32],
    bias: &[f32],
    first_row: usize,
    out: &mut [f32],
) {
    output_rows_impl::<true>(input, g, weight, bias, first_row, out);
}

/// The taps of one output pixel that fall inside the input.
struct Window<'a> {
    input: &'a [f32],
    in_width: usize,
    channels: usize,
    kernel: usize,
    y0: isize,
    x0: isize,
    ky: Range<usize>,
    kx: Range<usize>,
}

/// `FMA` selects fused multiply-adds: only worth it (and only fast) where the target has them.
#[inline(always)]
fn output_rows_impl<const FMA: bool>(
    input: &[f32],
    g: &Geometry,
    weight: &[f32],
    bias: &[f32],
    first_row: usize,
    out: &mut [f32],
) {
    let c = g.channels;
    for (r, out_row) in out.chunks_exact_mut(g.out_width * c).enumerate() {
        let (y0, ky) = g.taps(first_row + r, g.in_height, g.pad_top);
        for (ox, out_pixel) in out_row.chunks_exact_mut(c).enumerate() {
            let (x0, kx) = g.taps(ox, g.in_width, g.pad_left);
            let window = Window {
                input,
                in_width: g.in_width,
                channels: c,
                kernel: g.kernel,
                y0,
                x0,
                ky: ky.clone(),
                kx,
            };
            // Wide blocks keep several independent accumulator registers in flight; the narrower
            // ones mop up channel counts that are not multiples of 64.
            let done = channel_blocks::<64, FMA>(&window, weight, bias, 0, out_pixel);
            let done = channel_blocks::<32, FMA>(&window, weight, bias, done, out_pixel);
            let done = channel_blocks::<16, FMA>(&window, weight, bias, done, out_pixel);
            let done = channel_blocks::<8, FMA>(&window, weight, bias, done, out_pixel);
            channel_blocks::<1, FMA>(&window, weight, bias, done, out_pixel);
        }
    }
}

/// Computes channels `from..` of one output pixel in blocks of `N` while a whole block fits;
/// returns the first channel not done.
#[inline(always)]
fn channel_blocks<const N: usize, const FMA: bool>(
    w: &Window<'_>,
    weight: &[f32],
    bias: &[f32],
    from: usize,
    out: &mut [f32],
) -> usize {
    let c = w.channels;
    let mut cb = from;
    while cb + N <= c {
        let mut acc: [f32; N] = *block::<N>(bias, cb);
        for ky in w.ky.clone() {
            let row = (w.y0 + ky as isize) as usize * w.in_width;
            for kx in w.kx.clone() {
                let pixel = row + (w.x0 + kx as isize) as usize;
                let x = block::<N>(w.input, pixel * c + cb);
                let k = block::<N>(weight, (ky * w.kernel + kx) * c + cb);
                for j in 0..N {
                    acc[j] = if FMA {
                        x[j].mul_add(k[j], acc[j])
                    } else {
                        acc[j] + x[j] * k[j]
                    };
                }
            }
        }
        for (o, a) in block_mut::<N>(out, cb).iter_mut().zip(acc) {
            *o = a.clamp(0.0, 6.0);
        }
        cb += N;
    }
    cb
}

#[inline(always)]
fn block<const N: usize>(data: &[f32], at: usize) -> &[f32; N] {
    data[at..]
        .first_chunk::<N>()
        .expect("channel block inside the tensor")
}

#[inline(always)]
fn block_mut<const N: usize>(data: &mut [f32], at: usize) -> &mut [f32; N] {
    data[at..]
        .first_chunk_mut::<N>()
        .expect("channel block inside the tensor")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain loops over (y, x, c, ky, kx) with explicit zero padding.
    fn reference(input: &[f32], g: &Geometry, weight: &[f32], bias: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        for oy in 0..g.out_height {
            for ox in 0..g.out_width {
                for ch in 0..g.channels {
                    let mut acc = f64::from(bias[ch]);
                    for ky in 0..g.kernel {
                        for kx in 0..g.kernel {
                            let iy = (oy * g.stride + ky) as isize - g.pad_top as isize;
                            let ix = (ox * g.stride + kx) as isize - g.pad_left as isize;
                            if iy < 0
                                || ix < 0
                                || iy >= g.in_height as isize
                                || ix >= g.in_width as isize
                            {
                                continue;
                            }
                            let v =
                                input[(iy as usize * g.in_width + ix as usize) * g.channels + ch];
                            acc += f64::from(v)
                                * f64::from(weight[(ky * g.kernel + kx) * g.channels + ch]);
                        }
                    }
                    out.push(acc.clamp(0.0, 6.0) as f32);
                }
            }
        }
        out
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        // 224 → 112 with a 3×3 stride-2 kernel: one row of padding, after the data.
        assert_eq!(same_padding(224, 3, 2), (112, 0));
        assert_eq!(same_padding(112, 5, 2), (56, 1));
        assert_eq!(same_padding(14, 5, 1), (14, 2));
        assert_eq!(same_padding(7, 3, 1), (7, 1));
        assert_eq!(same_padding(7, 3, 2), (4, 1));
    }

    #[test]
    fn matches_plain_loops_for_every_shape_used() {
        // Channel counts exercise every block width (64, 32, 16, 8, 1); odd sizes the padding.
        for (size, channels, kernel, stride) in [
            (9, 32, 3, 1),
            (10, 96, 3, 2),
            (9, 144, 5, 2),
            (7, 240, 5, 1),
            (6, 27, 3, 1),
            (5, 1152, 5, 1),
            (11, 40, 3, 2),
            (1, 8, 5, 1),
        ] {
            let g = Geometry::same(size, size + 1, channels, kernel, stride);
            let input: Vec<f32> = (0..size * (size + 1) * channels)
                .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 1.5)
                .collect();
            let weight: Vec<f32> = (0..kernel * kernel * channels)
                .map(|i| ((i * 104_729) % 997) as f32 / 500.0 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..channels).map(|i| (i % 5) as f32 * 0.3 - 0.5).collect();
            let got = depthwise_bias_relu6(&input, &g, &weight, &bias);
            let want = reference(&input, &g, &weight, &bias);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() < 1e-5,
                    "{size} {channels} {kernel} {stride} @{i}: {a} vs {b}"
                );
            }
        }
    }
}
