//! OpenAI-compatible audio routes: `/v1/audio/speech` (text to speech) and
//! `/v1/audio/transcriptions` (speech to text).
//!
//! Shapes follow OpenAI's API so that the official clients work unchanged. Speech is streamed
//! as it is made, sentence by sentence: as a WAV whose header says "length unknown" (what
//! OpenAI sends) when there is more than one sentence, or as raw 16-bit PCM. Transcription
//! takes a multipart upload; the file is read within the configured limit (413 beyond it,
//! without reading the rest) and decoded on a model worker, never on the async runtime.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use marquee_core::{
    AudioUsage, ModelError, TranscriptSegment, Transcription, VerboseTranscription,
};
use marquee_models::speech::{SpeechEvent, to_pcm16le, wav_header};
use marquee_models::transcription::{Transcript, TranscriptionParams};
use marquee_platform::Capability;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::models::{check_form_fields, invalid_param, openai_parse};
use crate::AppState;
use crate::billing::{StreamCharge, billed, settlement_headers, units_only};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, read_form};
use marquee_platform::{Unit, Units};

// ---------------------------------------------------------------------------------------------
// Speech

/// `wav` (the default here) or `pcm`; OpenAI's other formats are refused with 422.
#[derive(
    Deserialize, serde::Serialize, Clone, Copy, Default, PartialEq, Debug, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
enum SpeechFormat {
    /// 16-bit mono WAV at the model's rate. OpenAI's default is mp3, which Marquee does not
    /// encode; wav is the default here.
    #[default]
    Wav,
    /// Raw 16-bit little-endian mono samples at the model's rate (24 kHz: what OpenAI sends).
    Pcm,
    Mp3,
    Opus,
    Aac,
    Flac,
}

/// OpenAI's speech request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SpeechRequest {
    model: String,
    /// The text to speak.
    input: String,
    /// One of the model's voices (see `GET /v1/models/{model}`).
    voice: String,
    #[serde(default)]
    response_format: SpeechFormat,
    #[serde(default)]
    speed: Option<f32>,
    /// gpt-4o-mini-tts's style instructions: not supported by these voices.
    #[serde(default)]
    instructions: Option<String>,
    /// `audio` (a byte stream) is the only one supported.
    #[serde(default)]
    stream_format: Option<String>,
}

/// `POST /v1/audio/speech`.
#[utoipa::path(
    post,
    path = "/v1/audio/speech",
    tag = "models",
    operation_id = "createSpeech",
    summary = "Text to speech",
    description = "Audio of the text in the voice asked for, streamed sentence by sentence as it is made: a WAV (whose header says \"length unknown\" when there is more than one sentence, as OpenAI's) or raw 16-bit PCM. The `x-sample-rate` header gives the rate. OpenAI-compatible; billed by the character.",
    request_body = SpeechRequest,
    responses(
        (
            status = 200,
            description = "The audio",
            content(
                (Vec<u8> = "audio/wav"),
                (Vec<u8> = "audio/pcm"),
            ),
        ),
        (status = 404),
        (status = 503),
    ),
    extensions(("x-required-scope" = json!("models:speech"))),
)]
pub async fn speech(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    caller.require(Capability::ModelsSpeech)?;
    let request: SpeechRequest = openai_parse(body)?;
    let format = request.response_format;
    if !matches!(format, SpeechFormat::Wav | SpeechFormat::Pcm) {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_response_format",
            format!(
                "response_format `{}` is not supported; use `wav` or `pcm`",
                serde_json::to_value(format)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        );
        e.param = Some("response_format".into());
        return Err(e);
    }
    if request
        .instructions
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty())
    {
        return Err(invalid_param(
            "instructions",
            "`instructions` is not supported by this model",
        ));
    }
    if request
        .stream_format
        .as_deref()
        .is_some_and(|s| s != "audio")
    {
        return Err(invalid_param(
            "stream_format",
            "only `stream_format: audio` is supported",
        ));
    }
    let service = state.service.models().speech(&request.model)?;
    caller.require_model(service.name())?;
    let characters = request.input.chars().count();
    let units = Units::one(Unit::TtsCharacters, characters as u64);
    let charge = state.service.charge(&caller, Some(service.name()), units)?;
    // Held (paid for) before synthesis starts, because longer text streams. Nothing is counted
    // until audio goes out: an error before that costs nothing.
    let mut billing = StreamCharge::hold(charge, Units::default()).await?;
    let rate = service.sample_rate();
    let mut rx = service
        .start(request.input, request.voice, request.speed.unwrap_or(1.0))
        .await?;

    // An error before any audio is still a JSON error. Text of one sentence is waited for and
    // sent as a WAV with exact sizes (what plain WAV readers need); longer text streams chunk by
    // chunk as it is made, under a header that says "length unknown" (what OpenAI sends).
    let chunks = match rx.recv().await {
        Some(SpeechEvent::Chunks(n)) => n,
        Some(SpeechEvent::Done(Err(e))) => return Err(e.into()),
        _ => return Err(ModelError::Inference("the synthesis stopped unexpectedly".into()).into()),
    };
    let mut first = Vec::new();
    loop {
        match rx.recv().await {
            Some(SpeechEvent::Audio(samples)) if chunks > 1 => {
                billing.units = units;
                return Ok(stream_speech(format, rate, units, samples, rx, billing));
            }
            Some(SpeechEvent::Audio(samples)) => first.extend_from_slice(&samples),
            Some(SpeechEvent::Done(Ok(_))) => break,
            Some(SpeechEvent::Done(Err(e))) => return Err(e.into()),
            Some(SpeechEvent::Chunks(_)) => {}
            None => {
                return Err(
                    ModelError::Inference("the synthesis stopped unexpectedly".into()).into(),
                );
            }
        }
    }
    if first.is_empty() {
        return Err(ModelError::Inference("the synthesis produced no audio".into()).into());
    }
    let pcm = to_pcm16le(&first);
    let mut bytes = Vec::with_capacity(pcm.len() + 44);
    if format == SpeechFormat::Wav {
        bytes.extend_from_slice(&wav_header(rate, Some(pcm.len() as u32)));
    }
    bytes.extend_from_slice(&pcm);
    let mut response = audio_response(format, rate, Body::from(bytes));
    match billing.finish(units, 200) {
        Some(s) => settlement_headers(&mut response, &s),
        None => units_only(&mut response, &units),
    }
    Ok(response)
}

fn stream_speech(
    format: SpeechFormat,
    rate: u32,
    units: Units,
    first: Vec<f32>,
    rx: mpsc::Receiver<SpeechEvent>,
    billing: StreamCharge,
) -> Response {
    let mut head = Vec::new();
    if format == SpeechFormat::Wav {
        head.extend_from_slice(&wav_header(rate, None));
    }
    head.extend_from_slice(&to_pcm16le(&first));
    let head = futures_util::stream::once(async move { Ok::<_, Infallible>(Bytes::from(head)) });
    // Dropping the body (the client went away) drops the receiver, which stops the synthesis,
    // and the billing, which settles what was sent.
    let rest = futures_util::stream::unfold((rx, billing), |(mut rx, mut billing)| async move {
        match rx.recv().await {
            Some(SpeechEvent::Audio(samples)) => Some((
                Ok::<_, Infallible>(Bytes::from(to_pcm16le(&samples))),
                (rx, billing),
            )),
            Some(SpeechEvent::Done(Ok(_))) | Some(SpeechEvent::Chunks(_)) | None => {
                let served = billing.units;
                billing.finish(served, 200);
                None
            }
            Some(SpeechEvent::Done(Err(e))) => {
                // Headers are gone: all that is left is to end the stream early.
                tracing::warn!(error = %e, "speech synthesis failed mid-stream");
                let served = billing.units;
                billing.finish(served, 500);
                None
            }
        }
    });
    use futures_util::StreamExt;
    let mut response = audio_response(format, rate, Body::from_stream(head.chain(rest)));
    units_only(&mut response, &units);
    response
}

fn audio_response(format: SpeechFormat, rate: u32, body: Body) -> Response {
    let content_type = match format {
        SpeechFormat::Pcm => "audio/pcm",
        _ => "audio/wav",
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&rate.to_string()) {
        headers.insert("x-sample-rate", v);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Transcription

#[derive(Clone, Copy, PartialEq, Debug)]
enum TranscriptFormat {
    Json,
    Text,
    Srt,
    Vtt,
    VerboseJson,
}

impl TranscriptFormat {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "json" => Self::Json,
            "text" => Self::Text,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            "verbose_json" => Self::VerboseJson,
            _ => return None,
        })
    }
}

/// The form fields OpenAI's transcription route takes.
const TRANSCRIPTION_FIELDS: &[&str] = &[
    "model",
    "language",
    "prompt",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "timestamp_granularities",
    "stream",
    "include[]",
    "chunking_strategy",
];

/// `POST /v1/audio/transcriptions` (multipart: `file`, `model`, optional `language`, `prompt`,
/// `response_format`, `temperature`, `timestamp_granularities[]`).
#[utoipa::path(
    post,
    path = "/v1/audio/transcriptions",
    tag = "models",
    operation_id = "createTranscription",
    summary = "Speech to text",
    description = "The text of an uploaded recording (English). OpenAI-compatible; billed by the millisecond of audio.",
    request_body(content = crate::openapi::TranscriptionForm, content_type = "multipart/form-data"),
    responses(
        (
            status = 200,
            description = "The transcript, in the `response_format` asked for",
            content(
                (crate::openapi::Transcription = "application/json"),
                (String = "text/plain"),
                (String = "application/x-subrip"),
                (String = "text/vtt"),
            ),
        ),
        (status = 404),
        (status = 503),
    ),
    extensions(("x-required-scope" = json!("models:speech"))),
)]
pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    Auth(caller): Auth,
    req: Request,
) -> ApiResult<Response> {
    caller.require(Capability::ModelsSpeech)?;
    // The limit is the model's; the model is named inside the body, so read with the largest
    // limit of any loaded transcription model (checked again per model below).
    let runtime = state.service.models();
    let limit = runtime
        .models()
        .iter()
        .filter_map(|m| runtime.transcription(&m.name).ok())
        .map(|s| s.max_bytes())
        .max()
        .unwrap_or(state.config.body_limit);
    // Room for the other fields and the multipart framing.
    let mut form = read_form(req, limit + 64 * 1024).await?;
    check_form_fields(&form, TRANSCRIPTION_FIELDS)?;
    let model = form
        .field("model")
        .ok_or_else(|| invalid_param("model", "`model` is required"))?
        .to_string();
    let file = form
        .take_file("file")
        .ok_or_else(|| invalid_param("file", "`file` is required (a WAV file)"))?;
    if file.data.is_empty() {
        let mut e = invalid_param("file", "the uploaded file is empty");
        e.code = "empty_audio";
        return Err(e);
    }
    let format = match form.field("response_format") {
        None => TranscriptFormat::Json,
        Some(f) => TranscriptFormat::parse(f).ok_or_else(|| {
            invalid_param(
                "response_format",
                format!("response_format `{f}` is not one of json, text, srt, vtt, verbose_json"),
            )
        })?,
    };
    if let Some(language) = form.field("language")
        && !matches!(language.to_ascii_lowercase().as_str(), "en" | "english")
    {
        let mut e = invalid_param(
            "language",
            format!("this model transcribes English only (`en`), not `{language}`"),
        );
        e.code = "unsupported_language";
        return Err(e);
    }
    if form.field("stream").is_some_and(|s| s == "true") {
        return Err(invalid_param(
            "stream",
            "streamed transcription is not supported by this model",
        ));
    }
    let granularities: Vec<&str> = form
        .fields
        .iter()
        .filter(|(n, _)| n.starts_with("timestamp_granularities"))
        .map(|(_, v)| v.as_str())
        .collect();
    if let Some(g) = granularities.iter().find(|g| **g != "segment") {
        return Err(invalid_param(
            "timestamp_granularities",
            format!("timestamp granularity `{g}` is not supported; use `segment`"),
        ));
    }
    let temperature = match form.field("temperature") {
        None => 0.0,
        Some(t) => t
            .parse::<f32>()
            .ok()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| invalid_param("temperature", "`temperature` must be between 0 and 1"))?,
    };
    let prompt = form
        .field("prompt")
        .filter(|p| !p.trim().is_empty())
        .map(str::to_string);

    let service = runtime.transcription(&model)?;
    caller.require_model(service.name())?;
    // Bounded by the densest format accepted (8-bit mono at 8 kHz: 8,000 bytes a second) and
    // by the longest audio accepted; settled with the real duration.
    let estimate_ms = (file.data.len() as u64 / 8).min(MAX_ESTIMATED_AUDIO_MS);
    let charge = state.service.charge(
        &caller,
        Some(service.name()),
        Units::one(Unit::AudioMilliseconds, estimate_ms),
    )?;
    let transcript = service
        .transcribe(
            file.data.to_vec(),
            TranscriptionParams {
                prompt,
                temperature,
            },
        )
        .await?;
    let seconds = transcript.duration;
    let response = match format {
        TranscriptFormat::Json => axum::Json(Transcription {
            text: transcript.text,
            usage: AudioUsage::duration(seconds),
        })
        .into_response(),
        TranscriptFormat::VerboseJson => axum::Json(verbose_json(&transcript)).into_response(),
        TranscriptFormat::Text => text_response(
            "text/plain; charset=utf-8",
            format!("{}\n", transcript.text),
        ),
        TranscriptFormat::Srt => {
            text_response("application/x-subrip; charset=utf-8", transcript.to_srt())
        }
        TranscriptFormat::Vtt => text_response("text/vtt; charset=utf-8", transcript.to_vtt()),
    };
    // Billed by the millisecond of audio (the `usage` object rounds up to seconds, as OpenAI's).
    let ms = (seconds * 1000.0).ceil().max(0.0) as u64;
    billed(charge, Units::one(Unit::AudioMilliseconds, ms), response).await
}

/// The longest audio a transcription is reserved for before its real duration is known.
const MAX_ESTIMATED_AUDIO_MS: u64 = 3_600_000;

fn verbose_json(t: &Transcript) -> VerboseTranscription {
    let segments = t
        .segments
        .iter()
        .map(|s| TranscriptSegment {
            avg_logprob: s.avg_logprob,
            // Not measured: OpenAI's field, kept for its clients.
            compression_ratio: 0.0,
            end: s.end,
            id: s.id as u64,
            no_speech_prob: s.no_speech_prob,
            seek: 0,
            start: s.start,
            temperature: 0.0,
            text: s.text.clone(),
            tokens: s.tokens.clone(),
        })
        .collect();
    VerboseTranscription {
        duration: t.duration,
        language: "english".into(),
        segments,
        task: "transcribe".into(),
        text: t.text.clone(),
        usage: AudioUsage::duration(t.duration),
    }
}

fn text_response(content_type: &'static str, text: String) -> Response {
    let mut response = (StatusCode::OK, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
