//! Image recognition as a service: EfficientNet-Lite0 (see `marquee-vision`) behind admission
//! control.
//!
//! Images are decoded on the worker thread, with their declared size checked against the limits
//! before any pixel is allocated, so a decompression bomb costs nothing.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::manifest::ModelSpec;
use crate::runtime::{Admission, ModelError, RuntimeConfig, run_admitted};
use crate::speech::model_error;

pub use marquee_vision::{Classification, Label};

/// Most labels one request may ask for.
pub const MAX_TOP_K: usize = 100;

/// A loaded image classifier.
pub struct VisionService {
    name: String,
    classifier: Arc<marquee_vision::ImageClassifier>,
    limits: marquee_vision::ImageLimits,
    admission: Admission,
}

impl VisionService {
    pub fn load(spec: &ModelSpec, dir: &Path, config: &RuntimeConfig) -> Result<Self, ModelError> {
        let classifier = marquee_vision::ImageClassifier::load(dir)
            .map_err(|e| ModelError::Load(e.to_string()))?;
        Ok(VisionService {
            name: spec.name.clone(),
            classifier: Arc::new(classifier),
            limits: marquee_vision::ImageLimits {
                max_bytes: config.max_image_bytes,
                max_pixels: config.max_image_pixels,
            },
            admission: Admission::new(
                config.vision_concurrency,
                config.vision_queue,
                config.retry_after_secs,
            ),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest file accepted, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.limits.max_bytes
    }

    /// The `top_k` most likely labels of an image (PNG, JPEG or WebP bytes).
    pub async fn classify(
        &self,
        image: Vec<u8>,
        top_k: usize,
    ) -> Result<Classification, ModelError> {
        if !(1..=MAX_TOP_K).contains(&top_k) {
            return Err(ModelError::invalid(
                "invalid_top_k",
                "top_k",
                format!("`top_k` must be between 1 and {MAX_TOP_K}"),
            ));
        }
        let classifier = Arc::clone(&self.classifier);
        let limits = self.limits.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        run_admitted(&self.admission, cancel, move || {
            classifier
                .classify(&image, top_k, &limits)
                .map_err(|e| model_error(e.code(), e.is_client_error(), e.to_string()))
        })
        .await
    }
}
