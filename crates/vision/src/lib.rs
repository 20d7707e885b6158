//! Image recognition for Marquee: ImageNet classification with EfficientNet-Lite0, in pure Rust.
//!
//! - [`convert`] turns the upstream PyTorch checkpoint (`efficientnet-lite0.pth`) into
//!   `model.safetensors` with the batch norms folded in; [`ImageClassifier::load`] needs only that
//!   file.
//! - [`ImageClassifier::classify`] takes untrusted PNG, JPEG or WebP bytes, decodes them within
//!   [`ImageLimits`] (refusing decompression bombs from the header), and returns the top-k ImageNet
//!   labels with softmax probabilities.
//!
//! The network runs on the CPU: candle (gemm) for the 1×1 convolutions, stem and classifier, and
//! a hand-written depthwise convolution (see `depthwise`), with rayon's global pool providing the
//! threads. A classifier is immutable after loading, so one instance serves concurrent calls.
//! This crate knows nothing of HTTP; errors carry stable codes via [`Error::code`].

mod convert;
mod depthwise;
mod error;
mod input;
mod net;
mod pth;

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

pub use convert::{MODEL_FILE, RAW_FILE, convert};
pub use error::Error;
pub use image::RgbImage;
pub use input::{DecodedImage, ImageLimits, decode_image, preprocess};
pub use net::{INPUT_SIZE, NUM_CLASSES};

use net::Network;

/// The ImageNet class names, one line per class in class order, synonyms separated by ", ".
const IMAGENET_LABELS: &str = include_str!("../imagenet_labels.txt");

/// The result of classifying one image.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Classification {
    /// The most likely classes, most likely first.
    pub labels: Vec<Label>,
    /// Size of the decoded image (after EXIF orientation), in pixels.
    pub width: u32,
    pub height: u32,
    /// `"png"`, `"jpeg"` or `"webp"`.
    pub format: &'static str,
}

/// One ImageNet class and its probability.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Label {
    /// Class index, 0..1000.
    pub index: usize,
    /// The class's first name, e.g. `"tabby"`.
    pub label: String,
    /// All of the class's names, e.g. `["tabby", "tabby cat"]`.
    pub names: Vec<String>,
    /// Softmax probability over the 1000 classes.
    pub score: f32,
}

/// A loaded EfficientNet-Lite0 ImageNet classifier. `Send + Sync`; calls may run concurrently.
pub struct ImageClassifier {
    network: Network,
    /// Per class: its names, first one first.
    class_names: Vec<Vec<String>>,
}

impl ImageClassifier {
    /// Loads `dir/model.safetensors` (written by [`convert`]).
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(MODEL_FILE);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::MissingModelFile { path: path.clone() },
            _ => Error::io(&path, e),
        })?;
        let network =
            Network::from_safetensors(&bytes).map_err(|m| Error::invalid_model(&path, m))?;
        let class_names: Vec<Vec<String>> = IMAGENET_LABELS
            .lines()
            .map(|line| line.split(", ").map(str::to_owned).collect())
            .collect();
        debug_assert_eq!(class_names.len(), NUM_CLASSES);
        Ok(ImageClassifier {
            network,
            class_names,
        })
    }

    /// Classifies PNG, JPEG or WebP bytes: the `top_k` most likely classes (at most
    /// [`NUM_CLASSES`]; larger values are clamped), most likely first.
    ///
    /// Errors: `top_k == 0` → [`Error::InvalidTopK`]; bad input → [`Error::EmptyImage`],
    /// [`Error::ImageTooLarge`], [`Error::UnsupportedFormat`] or [`Error::InvalidImage`] (all
    /// client errors).
    pub fn classify(
        &self,
        bytes: &[u8],
        top_k: usize,
        limits: &ImageLimits,
    ) -> Result<Classification, Error> {
        if top_k == 0 {
            return Err(Error::InvalidTopK);
        }
        let decoded = decode_image(bytes, limits)?;
        let labels = self.classify_rgb(&decoded.image, top_k)?;
        Ok(Classification {
            labels,
            width: decoded.image.width(),
            height: decoded.image.height(),
            format: decoded.format,
        })
    }

    /// Classifies an already decoded image; `top_k` as for [`ImageClassifier::classify`].
    pub fn classify_rgb(&self, image: &RgbImage, top_k: usize) -> Result<Vec<Label>, Error> {
        if top_k == 0 {
            return Err(Error::InvalidTopK);
        }
        let logits = self.logits(&preprocess(image)?)?;
        Ok(self.top_labels(&logits, top_k))
    }

    /// The 1000 class logits for a preprocessed input (see [`preprocess`]).
    pub fn logits(&self, input: &[f32]) -> Result<Vec<f32>, Error> {
        Ok(self.network.forward(input)?)
    }

    fn top_labels(&self, logits: &[f32], top_k: usize) -> Vec<Label> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
        let total: f64 = exp.iter().sum();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(top_k.min(NUM_CLASSES))
            .map(|index| {
                let names = self.class_names.get(index).cloned().unwrap_or_default();
                Label {
                    index,
                    label: names.first().cloned().unwrap_or_default(),
                    names,
                    score: (exp[index] / total) as f32,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_file_has_one_line_per_class() {
        let lines: Vec<&str> = IMAGENET_LABELS.lines().collect();
        assert_eq!(lines.len(), NUM_CLASSES);
        assert_eq!(lines[281].split(", ").next(), Some("tabby"));
        assert!(lines.iter().all(|l| !l.trim().is_empty()));
    }

    #[test]
    fn classifier_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ImageClassifier>();
    }
}
