//! Bounded decoding of hostile and unusual images (no model needed).

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::{ImageFormat, Rgba, RgbaImage};
use marquee_vision::{Error, ImageLimits, decode_image};

fn sample(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/samples/").to_owned() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG signature and a valid IHDR declaring `width × height` 8-bit RGB, then one small IDAT.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    // zlib stream of a few zero bytes: far too little data for the declared size.
    chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    chunk(b"IEND", &[]);
    png
}

fn encode(image: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// Decodes and returns the error code; the call must be quick and must fail.
fn refused(bytes: &[u8], limits: &ImageLimits) -> &'static str {
    let started = Instant::now();
    let result = decode_image(bytes, limits);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    match result {
        Ok(d) => panic!(
            "accepted a bad image as {} {:?}",
            d.format,
            d.image.dimensions()
        ),
        Err(e) => {
            assert!(e.is_client_error(), "{e}");
            e.code()
        }
    }
}

#[test]
fn samples_decode_with_their_format_and_size() {
    let limits = ImageLimits::default();
    for (name, format, size) in [
        ("chelsea.png", "png", (451, 300)),
        ("coffee.png", "png", (600, 400)),
        ("rocket.jpg", "jpeg", (640, 427)),
    ] {
        let decoded = decode_image(&sample(name), &limits).unwrap();
        assert_eq!(decoded.format, format, "{name}");
        assert_eq!(decoded.image.dimensions(), size, "{name}");
    }
}

#[test]
fn bad_bytes_get_the_right_codes() {
    let limits = ImageLimits::default();
    assert_eq!(refused(b"", &limits), "empty_image");

    // Deterministic noise that matches no image signature.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    assert_eq!(refused(&noise, &limits), "unsupported_image_format");

    let png = sample("chelsea.png");
    assert_eq!(refused(&png[..png.len() / 2], &limits), "invalid_image");
    assert_eq!(refused(&png[..40], &limits), "invalid_image");
    let mut corrupt = png.clone();
    for b in &mut corrupt[200..4000] {
        *b = !*b;
    }
    assert_eq!(refused(&corrupt, &limits), "invalid_image");

    let jpeg = sample("rocket.jpg");
    assert_eq!(refused(&jpeg[..300], &limits), "invalid_image");
    assert_eq!(refused(&jpeg[..4], &limits), "invalid_image");

    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    let err = decode_image(gif, &limits).unwrap_err();
    assert_eq!(err.code(), "unsupported_image_format");
    assert!(err.to_string().contains("gif"), "{err}");
    // A BMP file header and the start of its info header (1×1, 24-bit).
    let mut bmp =
        b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\x18\0".to_vec();
    bmp.resize(0x3a, 0);
    let err = decode_image(&bmp, &limits).unwrap_err();
    assert_eq!(err.code(), "unsupported_image_format");
    assert!(err.to_string().contains("bmp"), "{err}");
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let limits = ImageLimits::default();
    let bomb = png_declaring(100_000, 100_000);
    assert!(bomb.len() < 100);
    assert_eq!(refused(&bomb, &limits), "image_too_large");
    // Within each side's limit but not the pixel count.
    assert_eq!(
        refused(&png_declaring(40_000, 40_000), &limits),
        "image_too_large"
    );
    // A real JPEG whose frame header is patched to declare 60000 × 60000 pixels.
    let mut jpeg = sample("rocket.jpg");
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline frame header");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    assert_eq!(refused(&jpeg, &limits), "image_too_large");
    // Larger than a caller's lower limits.
    let small = ImageLimits {
        max_bytes: 1 << 20,
        max_pixels: 100_000,
    };
    assert_eq!(refused(&sample("chelsea.png"), &small), "image_too_large");
    let tiny = ImageLimits {
        max_bytes: 1000,
        max_pixels: 40_000_000,
    };
    assert_eq!(refused(&sample("rocket.jpg"), &tiny), "image_too_large");
}

#[test]
fn transparency_is_composited_on_white_and_grey_becomes_rgb() {
    let limits = ImageLimits::default();
    let mut rgba = RgbaImage::from_pixel(3, 2, Rgba([0, 0, 0, 0]));
    rgba.put_pixel(1, 0, Rgba([200, 10, 20, 255]));
    rgba.put_pixel(2, 0, Rgba([0, 0, 0, 128]));
    let png = encode(
        &image::DynamicImage::ImageRgba8(rgba.clone()),
        ImageFormat::Png,
    );
    let decoded = decode_image(&png, &limits).unwrap().image;
    assert_eq!(decoded.get_pixel(0, 0).0, [255, 255, 255]);
    assert_eq!(decoded.get_pixel(1, 0).0, [200, 10, 20]);
    assert_eq!(decoded.get_pixel(2, 0).0, [127, 127, 127]);

    let webp = encode(&image::DynamicImage::ImageRgba8(rgba), ImageFormat::WebP);
    let decoded = decode_image(&webp, &limits).unwrap();
    assert_eq!(decoded.format, "webp");
    assert_eq!(decoded.image.get_pixel(0, 1).0, [255, 255, 255]);

    let grey = image::GrayImage::from_fn(4, 4, |x, y| image::Luma([(x * 40 + y) as u8]));
    let png = encode(&image::DynamicImage::ImageLuma8(grey), ImageFormat::Png);
    let decoded = decode_image(&png, &limits).unwrap().image;
    assert_eq!(decoded.get_pixel(3, 2).0, [122, 122, 122]);
}

#[test]
fn error_codes_are_stable() {
    assert_eq!(Error::EmptyImage.code(), "empty_image");
    assert_eq!(Error::InvalidTopK.code(), "invalid_top_k");
    assert!(Error::InvalidTopK.is_client_error());
    let missing = Error::MissingModelFile {
        path: "/nowhere/model.safetensors".into(),
    };
    assert_eq!(missing.code(), "model_files_missing");
    assert!(!missing.is_client_error());
    assert!(missing.to_string().contains("marquee models pull"));
}

/// Random byte flips, truncations and splices of the samples: every outcome is either an image
/// or a client error, never a panic, and each call stays quick.
#[test]
fn mutated_samples_never_panic() {
    let limits = ImageLimits::default();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for name in ["chelsea.png", "rocket.jpg"] {
        let original = sample(name);
        for round in 0..40 {
            let mut bytes = original.clone();
            match round % 3 {
                0 => {
                    for _ in 0..1 + next() % 8 {
                        let at = (next() % bytes.len() as u64) as usize;
                        bytes[at] = next() as u8;
                    }
                }
                1 => bytes.truncate((next() % bytes.len() as u64) as usize),
                _ => {
                    let at = (next() % bytes.len() as u64) as usize;
                    let len = (next() % 64) as usize;
                    let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    bytes.splice(at..at, junk);
                }
            }
            let started = Instant::now();
            match decode_image(&bytes, &limits) {
                Ok(decoded) => {
                    marquee_vision::preprocess(&decoded.image).unwrap();
                }
                Err(e) => assert!(e.is_client_error(), "{name} round {round}: {e}"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{name} round {round}"
            );
        }
    }
}

#[test]
fn truncated_files_are_invalid() {
    let limits = ImageLimits::default();
    let jpeg = sample("rocket.jpg");
    for len in [jpeg.len() / 2, jpeg.len() - 100, jpeg.len() - 2] {
        assert_eq!(
            refused(&jpeg[..len], &limits),
            "invalid_image",
            "JPEG cut to {len}"
        );
    }
    // Trailing bytes after the end-of-image marker are fine.
    let mut padded = jpeg.clone();
    padded.extend([0u8; 16]);
    assert!(decode_image(&padded, &limits).is_ok());

    let image = image::load_from_memory(&sample("chelsea.png")).unwrap();
    let webp = encode(&image, ImageFormat::WebP);
    assert!(decode_image(&webp, &limits).is_ok());
    for len in [webp.len() / 2, webp.len() - 10] {
        assert_eq!(
            refused(&webp[..len], &limits),
            "invalid_image",
            "WebP cut to {len}"
        );
    }
    let png = sample("coffee.png");
    assert_eq!(refused(&png[..png.len() - 20], &limits), "invalid_image");
}
