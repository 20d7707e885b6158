//! From untrusted image bytes to the network's input tensor.
//!
//! Decoding is bounded before any pixel buffer exists: the byte length is checked first, then the
//! format is sniffed from the bytes (PNG, JPEG, WebP; anything else is refused), then the decoder
//! reads only the header and the declared width × height is checked against `max_pixels` — so a
//! tiny file declaring 100000 × 100000 pixels is refused in microseconds. A JPEG cut short (no
//! end-of-image marker) is refused too, rather than classified with its missing part painted grey. The `image` crate's own
//! limits (width, height, allocation) are set as a second fence.
//!
//! Pixels: EXIF orientation is applied; greyscale becomes RGB; transparency is composited onto
//! white (a transparent background reads as paper, not as black). Preprocessing follows the
//! model's training: resize so the short side is 256 (bilinear, antialiased), take the centre
//! 224 × 224, and scale each channel as `(v − 127) / 128`.

use std::io::Cursor;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType as ResizeFilter, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use crate::error::Error;
use crate::net::INPUT_SIZE;

/// The short side, in pixels, an image is resized to before the centre crop.
const RESIZE_SHORT_SIDE: u32 = 256;
/// Bytes per pixel of the widest layout a decoder may produce (16-bit RGBA), for the allocation
/// limit handed to the `image` crate.
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Bounds on an image accepted for classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest encoded file, in bytes.
    pub max_bytes: usize,
    /// Largest decoded image, in pixels (width × height), checked from the header.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    /// 20 MiB and 40 megapixels.
    fn default() -> Self {
        ImageLimits {
            max_bytes: 20 * 1024 * 1024,
            max_pixels: 40_000_000,
        }
    }
}

/// A decoded image, oriented and flattened to 8-bit RGB.
#[derive(Clone, Debug)]
pub struct DecodedImage {
    pub image: RgbImage,
    /// `"png"`, `"jpeg"` or `"webp"`.
    pub format: &'static str,
}

/// Decodes PNG, JPEG or WebP bytes within `limits`; see the module docs for the checks.
pub fn decode_image(bytes: &[u8], limits: &ImageLimits) -> Result<DecodedImage, Error> {
    if bytes.is_empty() {
        return Err(Error::EmptyImage);
    }
    if bytes.len() > limits.max_bytes {
        return Err(Error::ImageTooLarge(format!(
            "{} bytes; the limit is {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let (format, name) = match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => (ImageFormat::Png, "png"),
        Ok(ImageFormat::Jpeg) => (ImageFormat::Jpeg, "jpeg"),
        Ok(ImageFormat::WebP) => (ImageFormat::WebP, "webp"),
        Ok(other) => {
            return Err(Error::UnsupportedFormat {
                detected: other.extensions_str().first().copied(),
            });
        }
        Err(_) => return Err(Error::UnsupportedFormat { detected: None }),
    };

    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Error::InvalidImage(
            "truncated JPEG: no end-of-image marker after the last scan".into(),
        ));
    }

    let side_limit = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(side_limit);
    decoder_limits.max_image_height = Some(side_limit);
    decoder_limits.max_alloc = Some(limits.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL));
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;

    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::InvalidImage(format!(
            "the image is {width}×{height} pixels"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::ImageTooLarge(format!(
            "{width}×{height} = {pixels} pixels; the limit is {}",
            limits.max_pixels
        )));
    }
    // A missing or unreadable EXIF orientation is no reason to refuse the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    Ok(DecodedImage {
        image: flatten_on_white(image),
        format: name,
    })
}

/// Whether the JPEG's last scan (`FF DA`) is followed by an end-of-image marker (`FF D9`). The
/// decoder is lenient, like browsers: it paints whatever a truncated file lacks grey. Neither
/// marker can occur inside entropy-coded data (an `FF` there is always followed by `00` or a
/// restart marker), so scanning back from the end for whichever comes first tells a complete file
/// (usually in two bytes) from a cut one; trailing bytes after the end marker are allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .rev()
        .find(|w| w[0] == 0xFF && (w[1] == 0xD9 || w[1] == 0xDA))
        .is_some_and(|w| w[1] == 0xD9)
}

fn decode_error(e: ImageError) -> Error {
    match e {
        ImageError::Limits(e) => Error::ImageTooLarge(e.to_string()),
        ImageError::Unsupported(e) => Error::InvalidImage(format!("unsupported variant: {e}")),
        other => Error::InvalidImage(other.to_string()),
    }
}

/// 8-bit RGB, compositing any alpha channel onto white.
fn flatten_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (width, height) = rgba.dimensions();
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    for pixel in rgba.pixels() {
        let alpha = u32::from(pixel[3]);
        for &channel in &pixel.0[..3] {
            let blended = (u32::from(channel) * alpha + 255 * (255 - alpha) + 127) / 255;
            rgb.push(blended as u8);
        }
    }
    RgbImage::from_raw(width, height, rgb).expect("3 bytes per pixel")
}

/// The network input for an image: `224 × 224 × 3` NHWC f32, as described in the module docs.
///
/// Only the centre square of the image can reach the crop, so that square (side = the short side)
/// is what gets resized: an image of extreme aspect ratio costs no more than its short side allows.
/// The resize is `fast_image_resize`'s SIMD convolution with a bilinear (triangle) filter widened
/// by the scale factor when shrinking, i.e. antialiased like PIL's `BILINEAR`.
pub fn preprocess(image: &RgbImage) -> Result<Vec<f32>, Error> {
    let (width, height) = image.dimensions();
    let side = width.min(height);
    if side == 0 {
        return Err(Error::InvalidImage("the image has no pixels".into()));
    }
    let resize_failed = |e: &dyn std::fmt::Display| Error::Inference(format!("resize failed: {e}"));
    let source = ImageRef::new(width, height, image.as_raw(), PixelType::U8x3)
        .map_err(|e| resize_failed(&e))?;
    let mut resized = Image::new(RESIZE_SHORT_SIDE, RESIZE_SHORT_SIDE, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(ResizeFilter::Bilinear))
        .crop(
            f64::from((width - side) / 2),
            f64::from((height - side) / 2),
            f64::from(side),
            f64::from(side),
        );
    Resizer::new()
        .resize(&source, &mut resized, &options)
        .map_err(|e| resize_failed(&e))?;

    let size = INPUT_SIZE;
    let offset = (RESIZE_SHORT_SIDE as usize - size) / 2;
    let row_bytes = RESIZE_SHORT_SIDE as usize * 3;
    let mut input = Vec::with_capacity(size * size * 3);
    for row in resized
        .buffer()
        .chunks_exact(row_bytes)
        .skip(offset)
        .take(size)
    {
        let crop = &row[offset * 3..(offset + size) * 3];
        input.extend(crop.iter().map(|&v| (f32::from(v) - 127.0) / 128.0));
    }
    Ok(input)
}
