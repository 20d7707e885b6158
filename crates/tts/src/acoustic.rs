//! The acoustic model (`acoustic.onnx`, see `convert`) in tract: phoneme ids and a speed in, the
//! five spectral planes and F0 per 12.5 ms frame out. The optimised plan is built once and shared;
//! each call runs its own state, so concurrent callers are fine.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::Error;
use crate::convert::TARGET;
use crate::dsp::BINS;

pub struct Acoustic {
    plan: Arc<TypedRunnableModel>,
}

/// One chunk's network outputs: `planes[k]` is `[BINS, frames]` row-major for lh, theta, ln, lr,
/// phi; `f0` has one value per frame.
pub struct Output {
    pub planes: [Vec<f32>; 5],
    pub f0: Vec<f32>,
}

impl Acoustic {
    pub fn load(dir: &Path) -> Result<Acoustic, Error> {
        let path = dir.join(TARGET);
        if !path.exists() {
            return Err(Error::ModelMissing { path });
        }
        let bytes = crate::assets::read_bytes(dir, TARGET)?;
        let plan = build(&bytes).map_err(|e| Error::invalid_model(TARGET, format!("{e:#}")))?;
        Ok(Acoustic { plan })
    }

    /// Runs the network on `ids` (with the 0 pads at both ends).
    pub fn run(&self, ids: &[i64], speed: f32) -> Result<Output, Error> {
        let ids = Tensor::from_shape(&[1, ids.len()], ids).map_err(Error::inference)?;
        let speed = Tensor::from_shape(&[1], &[speed]).map_err(Error::inference)?;
        let outputs = self
            .plan
            .run(tvec!(ids.into(), speed.into()))
            .map_err(Error::inference)?;
        if outputs.len() != 6 {
            return Err(Error::Inference(format!(
                "expected 6 outputs, got {}",
                outputs.len()
            )));
        }
        let f0 = plain(&outputs[5])?;
        let frames = f0.len();
        let mut planes: [Vec<f32>; 5] = Default::default();
        for (k, plane) in planes.iter_mut().enumerate() {
            *plane = plain(&outputs[k])?;
            if plane.len() != BINS * frames {
                return Err(Error::Inference(format!(
                    "output {k} has {} values, expected {BINS} x {frames}",
                    plane.len()
                )));
            }
        }
        Ok(Output { planes, f0 })
    }
}

fn plain(t: &TValue) -> Result<Vec<f32>, Error> {
    let view = t.to_plain_array_view::<f32>().map_err(Error::inference)?;
    Ok(view.iter().copied().collect())
}

fn build(bytes: &[u8]) -> TractResult<Arc<TypedRunnableModel>> {
    let mut model = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_read(&mut &bytes[..])?;
    let len = model.sym("L");
    model.set_input_fact(0, i64::fact([1.to_dim(), len.to_dim()]).into())?;
    model.set_input_fact(1, f32::fact([1]).into())?;
    model.into_optimized()?.into_runnable()
}
