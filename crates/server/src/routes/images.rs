//! Image recognition: `POST /v1/images/classify` and `POST /v1/items/{item_id}/image`.
//!
//! An image arrives as a multipart upload (`file`), as JSON with base64 data (`image`, plain or
//! a `data:` URL), or as a raw body with an `image/*` content type. Marquee never fetches a URL
//! on a caller's behalf (that would let callers make the server reach into its own network).
//! The body is read within the model's size limit (413 beyond it, without reading the rest);
//! the image's declared size is checked before it is decoded.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine;
use marquee_core::{ImageClassification, ImageInfo, ImageLabel, ImageUsage};
use marquee_models::vision::{Classification, VisionService};
use marquee_platform::Capability;
use serde::Deserialize;
use serde_json::{Value, json};

use super::models::{check_form_fields, invalid_param, openai_parse};
use crate::AppState;
use crate::billing::billed;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, is_multipart, parse_json, read_bytes, read_form};
use marquee_platform::{Unit, Units};

/// Labels returned when the caller does not say.
const DEFAULT_TOP_K: usize = 5;

/// An image and the options that came with it, whatever the body's shape.
struct ImageInput {
    data: Vec<u8>,
    model: Option<String>,
    top_k: Option<usize>,
    min_score: Option<f32>,
}

/// An image as JSON.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = ImageRequest)]
#[serde(deny_unknown_fields)]
struct ImageJson {
    #[serde(default)]
    model: Option<String>,
    /// Base64 bytes, or a `data:image/…;base64,…` URL.
    #[serde(default)]
    image: Option<String>,
    /// Refused with an explanation: Marquee does not fetch URLs.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    min_score: Option<f32>,
}

/// The vision model the request names, or the first loaded one.
fn vision_service(state: &AppState, model: Option<&str>) -> ApiResult<Arc<VisionService>> {
    let runtime = state.service.models();
    match model {
        Some(name) => Ok(runtime.vision(name)?),
        None => runtime.first_vision().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
                "no vision model is loaded: run `marquee models pull` and restart",
            )
        }),
    }
}

/// Reads the image from any of the accepted body shapes, within the largest vision model's
/// limit.
async fn read_image(state: &AppState, req: Request) -> ApiResult<ImageInput> {
    let runtime = state.service.models();
    let limit = runtime
        .models()
        .iter()
        .filter_map(|m| runtime.vision(&m.name).ok())
        .map(|s| s.max_bytes())
        .max()
        .unwrap_or(state.config.body_limit);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if is_multipart(req.headers()) {
        let mut form = read_form(req, limit + 64 * 1024).await?;
        check_form_fields(&form, &["model", "top_k", "min_score"])?;
        let file = form.take_file("file").ok_or_else(|| {
            invalid_param("file", "`file` is required (a PNG, JPEG or WebP image)")
        })?;
        return Ok(ImageInput {
            data: file.data.to_vec(),
            model: form.field("model").map(str::to_string),
            top_k: parse_field(form.field("top_k"), "top_k")?,
            min_score: parse_field(form.field("min_score"), "min_score")?,
        });
    }
    if content_type.starts_with("image/") || content_type == "application/octet-stream" {
        return Ok(ImageInput {
            data: read_bytes(req, limit).await?.to_vec(),
            model: None,
            top_k: None,
            min_score: None,
        });
    }
    if content_type == "application/json" || content_type.is_empty() {
        // Base64 takes 4/3 the bytes.
        let bytes = read_bytes(req, limit / 3 * 4 + 64 * 1024).await?;
        let value: Value = parse_json(&bytes)?;
        let body: ImageJson = openai_parse(value)?;
        if body.url.is_some() {
            return Err(invalid_param(
                "url",
                "Marquee does not fetch images from URLs; send the image's bytes as base64 in \
                 `image`, or upload it as multipart `file`",
            ));
        }
        let encoded = body
            .image
            .ok_or_else(|| invalid_param("image", "`image` (base64) is required"))?;
        let encoded = match encoded.strip_prefix("data:") {
            Some(rest) => rest
                .split_once(";base64,")
                .map(|(_, data)| data.to_string())
                .ok_or_else(|| {
                    invalid_param("image", "a data URL must be `data:<type>;base64,<data>`")
                })?,
            None => encoded,
        };
        let data = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| {
                let mut err = invalid_param("image", format!("`image` is not valid base64: {e}"));
                err.code = "invalid_image";
                err
            })?;
        return Ok(ImageInput {
            data,
            model: body.model,
            top_k: body.top_k,
            min_score: body.min_score,
        });
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "send the image as multipart/form-data, as JSON with base64 `image`, or as an image/* \
             body; got {content_type:?}"
        ),
    ))
}

fn parse_field<T: std::str::FromStr>(value: Option<&str>, name: &str) -> ApiResult<Option<T>> {
    value
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| invalid_param(name, format!("`{name}` is not a valid number: {v:?}")))
        })
        .transpose()
}

fn check_min_score(min_score: Option<f32>) -> ApiResult<f32> {
    let s = min_score.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&s) {
        return Err(invalid_param(
            "min_score",
            "`min_score` must be between 0 and 1",
        ));
    }
    Ok(s)
}

fn labels(c: &Classification, min_score: f32) -> Vec<ImageLabel> {
    c.labels
        .iter()
        .filter(|l| l.score >= min_score)
        .map(|l| ImageLabel {
            index: l.index as u64,
            label: l.label.clone(),
            score: l.score as f64,
        })
        .collect()
}

/// `POST /v1/images/classify`: the most likely ImageNet labels of an image.
#[utoipa::path(
    post,
    path = "/v1/images/classify",
    tag = "models",
    operation_id = "classifyImage",
    summary = "Classify an image",
    description = "The most likely ImageNet labels of an image, sent as a multipart upload (`file`), as JSON with base64 data (`image`, plain or a `data:` URL), or as a raw `image/*` body. Marquee never fetches a URL. Billed by the image.",
    request_body(
        content(
            (crate::openapi::ImageForm = "multipart/form-data"),
            (ImageJson = "application/json"),
            (Vec<u8> = "image/*"),
        ),
    ),
    responses(
        (status = 200, description = "The labels", body = crate::openapi::ImageClassification),
        (status = 404),
        (status = 503),
    ),
    extensions(("x-required-scope" = json!("models:vision"))),
)]
pub async fn classify(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    req: Request,
) -> ApiResult<Response> {
    caller.require(Capability::ModelsVision)?;
    let input = read_image(&state, req).await?;
    let min_score = check_min_score(input.min_score)?;
    let service = vision_service(&state, input.model.as_deref())?;
    caller.require_model(service.name())?;
    let one = Units::one(Unit::Images, 1);
    let charge = state.service.charge(&caller, Some(service.name()), one)?;
    let result = service
        .classify(input.data, input.top_k.unwrap_or(DEFAULT_TOP_K))
        .await?;
    let answer = Json(ImageClassification {
        image: ImageInfo {
            format: result.format.into(),
            height: result.height,
            width: result.width,
        },
        labels: labels(&result, min_score),
        model: service.name().into(),
        object: std::borrow::Cow::Borrowed(ImageClassification::OBJECT),
        usage: ImageUsage { images: 1 },
    });
    billed(charge, one, answer).await
}

/// `POST /v1/items/{item_id}/image`: labels an item's image and stores the labels on the item
/// (`metadata.image_labels`), where they feed semantic search and content-based
/// recommendations. The image itself is not kept.
#[utoipa::path(
    post,
    path = "/v1/items/{item_id}/image",
    tag = "catalogue",
    operation_id = "labelItemImage",
    summary = "Label an item's image",
    description = "Classifies the image and stores the labels on the item (`metadata.image_labels`), where they feed semantic search and content-based recommendations. The image itself is not kept. Same bodies as `/v1/images/classify`.",
    params(("item_id" = String, Path, description = "The item's id.")),
    request_body(
        content(
            (crate::openapi::ImageForm = "multipart/form-data"),
            (ImageJson = "application/json"),
            (Vec<u8> = "image/*"),
        ),
    ),
    responses(
        (status = 200, description = "The labels stored", body = crate::openapi::ItemImageLabels),
        (status = 404),
        (status = 503),
    ),
    extensions(("x-required-scope" = json!("catalog:write models:vision"))),
)]
pub async fn item_image(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    axum::extract::Path(item_id): axum::extract::Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let tenant = caller.tenant_for(Capability::CatalogWrite)?;
    caller.require(Capability::ModelsVision)?;
    // Fail before the (slow) model runs when the item does not exist.
    state.service.get_item(tenant, &item_id).await?;
    let input = read_image(&state, req).await?;
    let min_score = match input.min_score {
        Some(_) => check_min_score(input.min_score)?,
        None => marquee_core::image_labels::DEFAULT_MIN_SCORE,
    };
    let service = vision_service(&state, input.model.as_deref())?;
    caller.require_model(service.name())?;
    let one = Units::one(Unit::Images, 1);
    let charge = state.service.charge(&caller, Some(service.name()), one)?;
    let result = service
        .classify(input.data, input.top_k.unwrap_or(DEFAULT_TOP_K))
        .await?;
    let labels: Vec<(String, f32)> = result
        .labels
        .iter()
        .enumerate()
        // The most likely label is always kept, however unsure.
        .filter(|(i, l)| *i == 0 || l.score >= min_score)
        .map(|(_, l)| (l.label.clone(), l.score))
        .collect();
    let item = state
        .service
        .set_image_labels(tenant, &item_id, &labels)
        .await?;
    let answer = Json(json!({
        "item_id": item.id,
        "model": service.name(),
        "labels": labels.iter().map(|(l, s)| json!({"label": l, "score": s})).collect::<Vec<_>>(),
        "image": {"width": result.width, "height": result.height, "format": result.format},
    }));
    billed(charge, one, answer).await
}
