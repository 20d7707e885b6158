//! Out-of-vocabulary words: hibari's 0.65M-parameter character transformer (`oov.onnx`, trained on
//! espeak-ng's readings of 225k words), run in tract. One call per word; the output is CTC-style
//! (collapse repeats, drop blanks).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tract_onnx::prelude::*;

use crate::Error;
use crate::assets::read_json;

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "in")]
    input: Vec<String>,
    out: Vec<String>,
    maxlen: usize,
}

type Plan = Arc<TypedRunnableModel>;

pub struct Oov {
    input_ids: HashMap<char, i64>,
    /// output id - 1 -> phoneme text
    output: Vec<String>,
    maxlen: usize,
    plan: Plan,
}

impl Oov {
    pub fn load(dir: &Path) -> Result<Oov, Error> {
        let meta: Meta = read_json(dir, "oov.json")?;
        let mut input_ids = HashMap::new();
        for (i, s) in meta.input.iter().enumerate() {
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                input_ids.insert(c, i as i64 + 1);
            }
        }
        let bytes = crate::assets::read_bytes(dir, "oov.onnx")?;
        let plan =
            build_plan(&bytes).map_err(|e| Error::invalid_model("oov.onnx", format!("{e:#}")))?;
        Ok(Oov {
            input_ids,
            output: meta.out,
            maxlen: meta.maxlen,
            plan,
        })
    }

    /// The phonemes the network reads for a word; `None` when it has no character the network knows.
    pub fn read(&self, word: &str) -> Result<Option<String>, Error> {
        let ids: Vec<i64> = word
            .chars()
            .filter_map(|c| self.input_ids.get(&c).copied())
            .take(self.maxlen)
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let input = Tensor::from_shape(&[1, ids.len()], &ids).map_err(Error::inference)?;
        let out = self
            .plan
            .run(tvec!(input.into()))
            .map_err(Error::inference)?;
        let out = out[0].cast_to::<i64>().map_err(Error::inference)?;
        let view = out.to_plain_array_view::<i64>().map_err(Error::inference)?;
        let mut ps = String::new();
        let mut prev = 0;
        for &i in view.iter() {
            if i != prev && i != 0 {
                let text = usize::try_from(i - 1).ok().and_then(|k| self.output.get(k));
                ps.push_str(text.map_or("", String::as_str));
            }
            prev = i;
        }
        Ok(Some(ps))
    }
}

fn build_plan(bytes: &[u8]) -> TractResult<Plan> {
    let mut model = tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .model_for_read(&mut &bytes[..])?;
    let len = model.sym("L");
    model.set_input_fact(0, i64::fact([1.to_dim(), len.to_dim()]).into())?;
    model.into_optimized()?.into_runnable()
}
