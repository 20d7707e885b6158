//! The API's description: an OpenAPI 3.1 document at `/openapi.json`, and a docs page at
//! `/docs` to read and try it.
//!
//! The document is generated from the code, so it cannot drift from what the server does:
//! each handler carries a `#[utoipa::path]` annotation (method, path, parameters, body,
//! answers, tag, the scope it needs as `x-required-scope`), and the request and answer types
//! derive their schemas (`marquee-types` and `marquee-platform` behind their `openapi`
//! feature, the service's types in `marquee-core`). Answers that the handlers build as JSON by
//! hand are described by the types below, which `tests/openapi.rs` checks against real answers;
//! the same test fails when a route of `routes/mod.rs` is missing from the document.
//!
//! What every operation shares is added in one place ([`Conventions`]) rather than repeated on
//! each handler: the key schemes, the error answers (`{"error": {code, message, type, param}}`
//! with `Retry-After` on 429 and 503), and a sentence in each description naming the scope.
//!
//! The Gorse-compatible API (`/api/`, tag `gorse`) is described in Gorse's field names, with
//! Gorse's statuses: malformed input is 400 there, never 415 or 422. Gorse clients call several
//! of its routes with and without a category or feedback type (and with an empty one, a
//! trailing slash); one handler serves them all, so it is annotated once and its operation is
//! copied to the other paths ([`GORSE_TWINS`]), each with its own operation id and path
//! parameters.
//!
//! The docs page is Swagger UI, embedded in the binary (`utoipa-swagger-ui`'s `vendored`
//! feature): it loads nothing from another host, so it works on an air-gapped network, and
//! its online validator is turned off for the same reason. Both routes are public: API docs are
//! read before one has a key, and they hold no tenant's data.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use marquee_core::{
    AudioUsage, ImageClassification, ImageInfo, ImageLabel, ImageUsage, TranscriptSegment,
    Transcription, VerboseTranscription,
};
use marquee_core::{ModelVersionInfo, TenantInfo, Timestamp};
use marquee_platform::{Money, Period, Unit, Units};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::response::{Response as OpenApiResponse, ResponseBuilder};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, SecurityRequirement};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::routes::{
    admin, audio, catalog, experiments, gorse, health, images, models, recommend, search, usage,
};

/// The extension naming what an operation needs: scopes (space-separated, all required), or
/// `operator` (the operator's key), `any` (any valid key), `none` (no key).
pub const REQUIRED_SCOPE: &str = "x-required-scope";

const DESCRIPTION: &str = "\
Marquee is a self-hosted model-as-a-service platform: recommendations over a tenant's catalogue \
and feedback, and models behind OpenAI-compatible routes, with tenants, keys, limits and metering.

**Keys.** Send a key as `Authorization: Bearer <key>` or `X-API-Key: <key>`. A *secret* key \
(`mq_sk_…`) has full access to its tenant; a *publishable* key (`mq_pk_…`) may only recommend and \
send feedback (safe in a web page or app); an *admin* key (`mq_ak_…`) may also manage the tenant's \
keys, and the operator's admin key (no tenant) manages tenants, prices and policies. A key may be \
narrowed further to some scopes, models and origins.

**Scopes.** Each operation names what it needs in `x-required-scope`: scope names separated by \
spaces (all needed), `operator`, `any` (any valid key) or `none`. A key without the scope gets 403 \
`missing_scope`.

**Errors.** Every error is `{\"error\": {\"code\", \"message\", \"type\", \"param\"}}` (OpenAI's \
shape); 429 and 503 carry `Retry-After`, and 429 the `x-ratelimit-*` headers. Request bodies and \
query strings reject unknown fields: 422 naming the field, or 400 `unknown_parameter` on the \
OpenAI-compatible routes, as OpenAI answers.

**Billing.** Billed answers carry `x-marquee-units` and, for keys with prices, `x-marquee-cost`.";

/// The document, generated once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    document()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// The OpenAPI document of this server's API.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "health",
    operation_id = "getOpenApiDocument",
    summary = "This API's OpenAPI 3.1 document",
    description = "The document the docs page at `/docs` shows; clients can be generated from it.",
    security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)),
    extensions(("x-required-scope" = json!("none"))),
)]
pub async fn document_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.as_str(),
    )
        .into_response()
}

/// Swagger UI's settings: the document next to the page (a relative URL, so the page works
/// behind a proxy that adds a path prefix), no online validator (it would send the document to
/// another host), and "try it out" open.
static UI_CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::new(["../openapi.json"])
            .validator_url("none")
            .try_it_out_enabled(true)
            .display_operation_id(true)
            .filter(true)
            .deep_linking(true),
    )
});

/// `GET /docs`: to `/docs/`, where the page's relative asset URLs resolve.
pub async fn docs_redirect() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("docs/"))],
    )
        .into_response()
}

/// `GET /docs/`: the docs page.
pub async fn docs_index() -> Response {
    docs_file("index.html")
}

/// `GET /docs/{file}`: the page's scripts, styles and icons, from the binary.
pub async fn docs_asset(Path(file): Path<String>) -> Response {
    docs_file(&file)
}

fn docs_file(file: &str) -> Response {
    match utoipa_swagger_ui::serve(file, Arc::clone(&UI_CONFIG)) {
        Ok(Some(asset)) => {
            let mut response = (
                [(header::CONTENT_TYPE, asset.content_type)],
                asset.bytes.into_owned(),
            )
                .into_response();
            if asset.gzpipped {
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
        Ok(None) => crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such file of the docs page",
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, file, "cannot serve the docs page");
            crate::error::ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error; see the server log",
            )
            .into_response()
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Marquee",
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "This Marquee server")),
    paths(
        health::healthz,
        health::readyz,
        document_json,
        admin::create_tenant,
        admin::list_tenants,
        admin::create_key,
        admin::list_keys,
        admin::revoke_key,
        admin::update_key,
        admin::rotate_key,
        admin::get_tenant_policy,
        admin::put_tenant_policy,
        admin::put_prices,
        admin::get_prices,
        admin::audit_log,
        usage::usage,
        usage::records,
        usage::invoice,
        catalog::list_items,
        catalog::upsert_items,
        catalog::get_item,
        catalog::put_item,
        catalog::patch_item,
        catalog::delete_item,
        catalog::list_users,
        catalog::upsert_users,
        catalog::get_user,
        catalog::put_user,
        catalog::patch_user,
        catalog::delete_user,
        catalog::user_feedback,
        catalog::export_user,
        catalog::user_profile,
        catalog::insert_feedback,
        recommend::for_user,
        recommend::for_user_in_context,
        recommend::similar,
        recommend::session,
        recommend::popular,
        recommend::trending,
        recommend::train,
        recommend::training_status,
        search::search,
        search::generate,
        experiments::create,
        experiments::list,
        experiments::get,
        experiments::stop,
        experiments::results,
        models::list,
        models::get,
        models::embeddings,
        models::chat_completions,
        audio::speech,
        audio::transcriptions,
        images::classify,
        images::item_image,
        gorse::insert_user,
        gorse::insert_users,
        gorse::list_users,
        gorse::get_user,
        gorse::patch_user,
        gorse::delete_user,
        gorse::insert_item,
        gorse::insert_items,
        gorse::list_items,
        gorse::get_item,
        gorse::patch_item,
        gorse::delete_item,
        gorse::insert_item_category,
        gorse::delete_item_category,
        gorse::insert_feedback,
        gorse::upsert_feedback,
        gorse::list_feedback,
        gorse::user_item_feedback,
        gorse::typed_user_item_feedback,
        gorse::delete_user_item_feedback,
        gorse::user_feedback,
        gorse::item_feedback,
        gorse::recommend,
        gorse::item_neighbors,
        gorse::user_neighbors,
        gorse::latest,
        gorse::popular,
        gorse::session_recommend,
        gorse::health_live,
        gorse::health_ready,
    ),
    components(schemas(ErrorResponse)),
    modifiers(&Conventions),
    tags(
        (name = "catalogue", description = "Items: create, change, list, delete; image labels and drafted copy."),
        (name = "users", description = "Users and their attributes, profiles, export and erasure."),
        (name = "feedback", description = "Events (views, likes, purchases, …) that the recommenders learn from."),
        (name = "recommendations", description = "Recommendations for a user, a session or an item; popular and trending items; training."),
        (name = "search", description = "Semantic search over the catalogue (needs an embedding model)."),
        (name = "experiments", description = "A/B experiments between recommenders, with click and conversion results."),
        (name = "models", description = "OpenAI-compatible model routes: models, embeddings, chat, speech, transcription; image classification."),
        (name = "usage", description = "Usage reports, billed requests, invoices and the price table."),
        (name = "admin", description = "Tenants, keys, policies, prices and the audit log."),
        (name = "health", description = "Liveness, readiness, metrics and this document."),
        (name = "gorse", description = GORSE_TAG_DESCRIPTION),
    ),
)]
struct ApiDoc;

/// The tag of the Gorse-compatible API, whose operations differ from the others in their
/// error statuses (see [`Conventions`]).
const GORSE_TAG: &str = "gorse";

const GORSE_TAG_DESCRIPTION: &str = "\
Gorse-compatible API (v0.5): Gorse's REST API under `/api/`, on the key's tenant, so that an existing \
Gorse client (PyGorse, gorse.js, the Go client, plain HTTP) works unchanged. Bodies and answers use \
Gorse's field names (`UserId`, `ItemId`, `FeedbackType`, `Timestamp`, `Labels`, `Categories`, \
`IsHidden`, `Comment`, `RowAffected`, `Cursor`, `Id`, `Score`); bodies are read as Go reads JSON \
(field names in any case, unknown fields ignored). Send the key as `X-API-Key`, as Gorse clients \
do (`Authorization: Bearer` works too). Errors are answered as Gorse's server answers them: the \
status and the error's text as a plain-text body (`unauthorized`, `<id>: user not found`, Go's \
decoding errors); malformed input is 400 (never 422), an unknown user or item 404.";

/// Gorse paths served by the handler documented under another path: Gorse clients call the
/// category routes with a category, without one and with an empty one (a trailing slash), and
/// the feedback routes with and without a type. Each twin is the documented operation, less
/// the path parameters its path does not have.
const GORSE_TWINS: &[Twin] = &[
    Twin {
        method: "get",
        documented: "/api/feedback/{feedback_type}",
        path: "/api/feedback",
        operation_id: "gorseListFeedback",
        summary: "List feedback",
    },
    Twin {
        method: "delete",
        documented: "/api/feedback/{feedback_type}/{user_id}/{item_id}",
        path: "/api/feedback/{user_id}/{item_id}",
        operation_id: "gorseDeleteUserItemFeedback",
        summary: "Delete the feedback between a user and an item",
    },
    Twin {
        method: "get",
        documented: "/api/user/{user_id}/feedback/{feedback_type}",
        path: "/api/user/{user_id}/feedback",
        operation_id: "gorseUserFeedback",
        summary: "A user's feedback",
    },
    Twin {
        method: "get",
        documented: "/api/item/{item_id}/feedback/{feedback_type}",
        path: "/api/item/{item_id}/feedback",
        operation_id: "gorseItemFeedback",
        summary: "The feedback on an item",
    },
    Twin {
        method: "get",
        documented: "/api/item/{item_id}/feedback/{feedback_type}",
        path: "/api/item/{item_id}/feedback/",
        operation_id: "gorseItemFeedbackEmptyType",
        summary: "The feedback on an item (empty type)",
    },
    Twin {
        method: "get",
        documented: "/api/recommend/{user_id}/{category}",
        path: "/api/recommend/{user_id}",
        operation_id: "gorseRecommend",
        summary: "Recommend items to a user",
    },
    Twin {
        method: "get",
        documented: "/api/recommend/{user_id}/{category}",
        path: "/api/recommend/{user_id}/",
        operation_id: "gorseRecommendEmptyCategory",
        summary: "Recommend items to a user (empty category)",
    },
    Twin {
        method: "get",
        documented: "/api/item/{item_id}/neighbors/{category}",
        path: "/api/item/{item_id}/neighbors",
        operation_id: "gorseItemNeighbors",
        summary: "Items similar to an item",
    },
    Twin {
        method: "get",
        documented: "/api/item/{item_id}/neighbors/{category}",
        path: "/api/item/{item_id}/neighbors/",
        operation_id: "gorseItemNeighborsEmptyCategory",
        summary: "Items similar to an item (empty category)",
    },
    Twin {
        method: "get",
        documented: "/api/user/{user_id}/neighbors",
        path: "/api/user/{user_id}/neighbors/",
        operation_id: "gorseUserNeighborsTrailingSlash",
        summary: "Users similar to a user (trailing slash)",
    },
    Twin {
        method: "get",
        documented: "/api/latest/{category}",
        path: "/api/latest",
        operation_id: "gorseLatest",
        summary: "The newest items",
    },
    Twin {
        method: "get",
        documented: "/api/latest/{category}",
        path: "/api/latest/",
        operation_id: "gorseLatestEmptyCategory",
        summary: "The newest items (empty category)",
    },
    Twin {
        method: "get",
        documented: "/api/popular/{category}",
        path: "/api/popular",
        operation_id: "gorsePopular",
        summary: "The most popular items",
    },
    Twin {
        method: "get",
        documented: "/api/popular/{category}",
        path: "/api/popular/",
        operation_id: "gorsePopularEmptyCategory",
        summary: "The most popular items (empty category)",
    },
    Twin {
        method: "post",
        documented: "/api/session/recommend/{category}",
        path: "/api/session/recommend",
        operation_id: "gorseSessionRecommend",
        summary: "Recommend items to an anonymous session",
    },
    Twin {
        method: "post",
        documented: "/api/session/recommend/{category}",
        path: "/api/session/recommend/",
        operation_id: "gorseSessionRecommendEmptyCategory",
        summary: "Recommend items to an anonymous session (empty category)",
    },
];

/// A path that a documented handler also serves (see [`GORSE_TWINS`]).
struct Twin {
    method: &'static str,
    documented: &'static str,
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
}

fn operation_mut<'a>(item: &'a mut PathItem, method: &str) -> &'a mut Option<Operation> {
    match method {
        "get" => &mut item.get,
        "put" => &mut item.put,
        "post" => &mut item.post,
        "delete" => &mut item.delete,
        "patch" => &mut item.patch,
        other => unreachable!("no method {other} in the route table"),
    }
}

/// Adds `twin` to the document, next to the path it copies (or into the path item that other
/// methods of its path have already).
fn add_twin(paths: &mut utoipa::openapi::path::PathsMap<String, PathItem>, twin: &Twin) {
    let Some(mut op) = paths
        .get_mut(twin.documented)
        .and_then(|item| operation_mut(item, twin.method).clone())
    else {
        panic!("{} {} is not documented", twin.method, twin.documented);
    };
    op.operation_id = Some(twin.operation_id.into());
    op.summary = Some(twin.summary.into());
    let in_path: Vec<&str> = twin
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    if let Some(parameters) = op.parameters.as_mut() {
        parameters.retain(|p| match p {
            RefOr::T(p) => {
                !matches!(p.parameter_in, ParameterIn::Path) || in_path.contains(&p.name.as_str())
            }
            RefOr::Ref(_) => true,
        });
    }
    if !paths.contains_key(twin.path) {
        let at = paths
            .get_index_of(twin.documented)
            .map_or(paths.len(), |i| i + 1);
        paths.shift_insert(at, twin.path.to_string(), PathItem::default());
    }
    let slot = operation_mut(
        paths.get_mut(twin.path).expect("inserted above"),
        twin.method,
    );
    assert!(
        slot.is_none(),
        "{} {} is documented twice",
        twin.method,
        twin.path
    );
    *slot = Some(op);
}

/// What every operation shares (see the module docs).
struct Conventions;

/// The reusable error answers, by status.
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "Malformed JSON, form or argument (`invalid_json`, `invalid_request`, …).",
    ),
    (
        401,
        "Unauthorized",
        "No key, or the key is unknown, revoked or expired (`unauthorized`).",
    ),
    (
        403,
        "Forbidden",
        "The key lacks the scope (`missing_scope`), the model or the origin, or the route is the operator's (`forbidden`).",
    ),
    (
        404,
        "NotFound",
        "No such object in the caller's tenant (`not_found`).",
    ),
    (409, "Conflict", "The object exists already (`conflict`)."),
    (
        413,
        "PayloadTooLarge",
        "The body is larger than the server accepts (`payload_too_large`).",
    ),
    (
        415,
        "UnsupportedMediaType",
        "The body's content type is not one the route reads (`unsupported_media_type`).",
    ),
    (
        422,
        "Unprocessable",
        "Well-formed input with a wrong or unknown field, named in `message` and `param`.",
    ),
    (
        429,
        "TooManyRequests",
        "A rate or concurrency limit (`rate_limited`), a quota (`quota_exceeded`) or a budget (`budget_exceeded`) is reached; see `Retry-After`.",
    ),
    (
        500,
        "InternalError",
        "Something failed on the server; details are in its log, not here.",
    ),
    (
        503,
        "Unavailable",
        "A model is busy or not loaded, or the usage ledger cannot be written (billing fails closed); see `Retry-After`.",
    ),
];

fn error_response(description: &str, retry_after: bool, rate_limit: bool) -> OpenApiResponse {
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorResponse")))
            .build(),
    );
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(u64::schema()))
                .description(Some("Seconds to wait before trying again."))
                .build(),
        );
    }
    if rate_limit {
        for (name, what) in [
            (
                "x-ratelimit-limit-requests",
                "The request limit that applies.",
            ),
            (
                "x-ratelimit-remaining-requests",
                "Requests left in the window.",
            ),
            (
                "x-ratelimit-reset-requests",
                "When the window refills (`1s`, `6m0s`).",
            ),
        ] {
            response = response.header(
                name,
                HeaderBuilder::new()
                    .schema(Some(String::schema()))
                    .description(Some(what))
                    .build(),
            );
        }
    }
    response.build()
}

/// The error answers of the Gorse-compatible API, by status: a plain-text body, the error's
/// text, as Gorse's server (go-restful's `WriteError`) answers.
const GORSE_ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "GorseBadRequest",
        "Malformed input: a body that is not JSON (`EOF`, Go's decoding errors such as `json: cannot unmarshal …`), labels Gorse refuses, a parameter that is not an integer (`strconv.Atoi: …`), or a value outside Marquee's limits.",
    ),
    (
        401,
        "GorseUnauthorized",
        "No key, or a wrong one: `unauthorized`.",
    ),
    (
        403,
        "GorseForbidden",
        "The key lacks the scope the route needs.",
    ),
    (
        404,
        "GorseNotFound",
        "No such user or item in the caller's tenant (`<id>: user not found`, `<id>: item not found`).",
    ),
    (
        413,
        "GorsePayloadTooLarge",
        "The body is larger than the server accepts.",
    ),
    (
        429,
        "GorseTooManyRequests",
        "A rate or concurrency limit, a quota or a budget is reached; see `Retry-After`.",
    ),
    (
        500,
        "GorseInternalError",
        "Something failed on the server; details are in its log, not here.",
    ),
    (
        503,
        "GorseUnavailable",
        "A model is busy or not loaded, or the usage ledger cannot be written; see `Retry-After`.",
    ),
];

/// A plain-text error answer of the Gorse-compatible API.
fn gorse_error_response(description: &str, retry_after: bool, rate_limit: bool) -> OpenApiResponse {
    let mut response = error_response(description, retry_after, rate_limit);
    response.content.clear();
    response.content.insert(
        "text/plain".into(),
        RefOr::T(ContentBuilder::new().schema(Some(String::schema())).build()),
    );
    response
}

fn gorse_error_ref(status: u16) -> RefOr<OpenApiResponse> {
    let name = GORSE_ERRORS
        .iter()
        .find(|(s, _, _)| *s == status)
        .map_or("GorseInternalError", |(_, name, _)| name);
    RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
}

fn error_ref(status: u16) -> RefOr<OpenApiResponse> {
    let name = ERRORS
        .iter()
        .find(|(s, _, _)| *s == status)
        .map_or("InternalError", |(_, name, _)| name);
    RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
}

/// What an operation needs, from its `x-required-scope`.
fn required_scope(operation: &Operation) -> Option<String> {
    operation
        .extensions
        .as_ref()
        .and_then(|e| e.get(REQUIRED_SCOPE))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn scope_sentence(scope: &str) -> String {
    match scope {
        "none" => "**Key:** none needed.".to_string(),
        "any" => "**Key:** any valid key.".to_string(),
        "operator" => "**Key:** the operator's admin key.".to_string(),
        scopes => {
            let list: Vec<String> = scopes.split(' ').map(|s| format!("`{s}`")).collect();
            let mut s = format!(
                "**Scope:** {} (a key of the tenant holding {}).",
                list.join(" and "),
                if list.len() > 1 { "all of them" } else { "it" }
            );
            if scopes == "recommend" {
                s.push_str(
                    " Also answered without a key for a tenant the operator published \
                     (`marquee serve --demo`).",
                );
            }
            s
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.info.version = env!("CARGO_PKG_VERSION").to_string();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <key>`: a Marquee key (`mq_sk_…`, `mq_pk_…`, `mq_ak_…`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "`X-API-Key: <key>`: the same keys, for clients that cannot set `Authorization`.",
            ))),
        );
        for (status, name, description) in ERRORS {
            components.responses.insert(
                name.to_string(),
                RefOr::T(error_response(
                    description,
                    matches!(status, 429 | 503),
                    *status == 429,
                )),
            );
        }
        for (status, name, description) in GORSE_ERRORS {
            components.responses.insert(
                name.to_string(),
                RefOr::T(gorse_error_response(
                    description,
                    matches!(status, 429 | 503),
                    *status == 429,
                )),
            );
        }
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("api_key", Vec::<String>::new()),
        ]);

        // `/recommend/{user_id}/{item_id}` is the same handler as its `/v1` twin.
        if let Some(item) = doc.paths.paths.get("/v1/recommend/{user_id}/{item_id}") {
            let mut twin = item.clone();
            if let Some(op) = twin.get.as_mut() {
                op.operation_id = Some("recommendForUserInContextUnversioned".into());
                op.summary = Some("What to watch after an item (unversioned path)".into());
            }
            doc.paths
                .paths
                .insert("/recommend/{user_id}/{item_id}".into(), twin);
        }
        doc.paths.paths.insert("/metrics".into(), metrics_path());
        for twin in GORSE_TWINS {
            add_twin(&mut doc.paths.paths, twin);
        }

        for item in doc.paths.paths.values_mut() {
            for op in operations_mut(item) {
                let scope = required_scope(op).unwrap_or_else(|| "any".into());
                let sentence = scope_sentence(&scope);
                op.description = Some(match op.description.take() {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{sentence}"),
                    _ => sentence,
                });
                if scope == "recommend" {
                    let mut security = doc.security.clone().unwrap_or_default();
                    security.push(SecurityRequirement::default());
                    op.security = Some(security);
                }
                // Gorse answers any malformed body or parameter with 400, a body of another
                // content type too, and so do its routes here: no 415 or 422 for them; and its
                // errors are plain text.
                let gorse = op
                    .tags
                    .as_ref()
                    .is_some_and(|t| t.iter().any(|t| t == GORSE_TAG));
                let mut common: Vec<u16> = Vec::new();
                if scope != "none" {
                    common.extend([401, 403, 429]);
                }
                if op.request_body.is_some() {
                    common.extend(if gorse {
                        &[400, 413][..]
                    } else {
                        &[400, 413, 415, 422][..]
                    });
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    common.push(if gorse { 400 } else { 422 });
                }
                common.push(500);
                let error_ref = if gorse { gorse_error_ref } else { error_ref };
                for status in common {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_ref(status));
                }
                // Explicit error answers on a handler use the shared descriptions too.
                for (key, response) in op.responses.responses.iter_mut() {
                    if let Ok(status) = key.parse::<u16>()
                        && status >= 400
                        && let RefOr::T(r) = response
                        && r.description.is_empty()
                    {
                        *response = error_ref(status);
                    }
                }
            }
        }
    }
}

/// `GET /metrics` (its handler lives with the metrics, not in the route modules).
fn metrics_path() -> PathItem {
    let mut op = Operation::new();
    op.tags = Some(vec!["health".into()]);
    op.operation_id = Some("getMetrics".into());
    op.summary = Some("Prometheus metrics".into());
    op.description = Some(
        "Request counts and latencies by route and tenant, model and ledger figures, in \
         Prometheus' text format (version 0.0.4). A separate listener can serve it without a key for a scraper \
         (`--metrics-listen`)."
            .into(),
    );
    op.responses.responses.insert(
        "200".into(),
        RefOr::T(
            ResponseBuilder::new()
                .description("The metrics")
                .content(
                    "text/plain",
                    ContentBuilder::new().schema(Some(String::schema())).build(),
                )
                .build(),
        ),
    );
    let mut extensions = Extensions::default();
    extensions.insert(REQUIRED_SCOPE.into(), Value::from("operator"));
    op.extensions = Some(extensions);
    let mut item = PathItem::default();
    item.get = Some(op);
    item
}

// ---------------------------------------------------------------------------------------------
// Answers the handlers build by hand, and types of crates without the `openapi` feature.
// Field for field what the handlers write; `tests/openapi.rs` checks real answers against them.

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorObject,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    /// What went wrong, for programs: `not_found`, `missing_scope`, `invalid_request`,
    /// `rate_limited`, `budget_exceeded`, `model_unavailable`, …
    #[schema(examples("missing_scope"))]
    pub code: String,
    /// The same for people.
    pub message: String,
    /// Whose fault it is, as OpenAI says it.
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    NotFoundError,
    RateLimitError,
    ServerError,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(examples("ok"))]
    pub status: String,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// `ok` or `unreachable`.
    pub store: String,
    /// A count without the operator's key, each tenant's model with it.
    pub recommenders: RecommendersReadiness,
    /// The loaded models; one that failed to load is listed as `failed` with its error.
    pub models: Vec<LoadedModel>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum RecommendersReadiness {
    Summary {
        tenants: u64,
        /// Tenants with data that still wait for their first model.
        not_ready: u64,
    },
    Tenants(Vec<TenantReadiness>),
}

#[derive(Serialize, ToSchema)]
pub struct TenantReadiness {
    pub tenant: String,
    pub model_version: Option<i64>,
    pub training: bool,
    pub waiting_for_model: bool,
    pub last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LoadedModel {
    pub name: String,
    pub kind: ModelKind,
    /// `ready` or `failed`.
    pub status: String,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Embeddings,
    Chat,
    Speech,
    Transcription,
    Vision,
}

// Catalogue, users, feedback

/// How many objects of a batch were written.
#[derive(Serialize, ToSchema)]
pub struct Upserted {
    pub upserted: u64,
}

/// A batch: an array, or one object (a batch of one); at most 10,000 elements (the service's
/// `max_batch`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum ItemBatch {
    Many(Vec<marquee_core::ItemInput>),
    One(marquee_core::ItemInput),
}

/// A batch: an array, or one object (a batch of one).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum UserBatch {
    Many(Vec<marquee_core::UserInput>),
    One(marquee_core::UserInput),
}

/// A batch: an array, or one event (a batch of one). Resending an event with the same user,
/// item and type replaces it, so retries are harmless.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum FeedbackBatch {
    Many(Vec<marquee_core::FeedbackInput>),
    One(marquee_core::FeedbackInput),
}

/// A user's most recent feedback, newest first.
#[derive(Serialize, ToSchema)]
pub struct FeedbackList {
    pub feedback: Vec<marquee_core::Feedback>,
}

/// How many events were recorded.
#[derive(Serialize, ToSchema)]
pub struct FeedbackAccepted {
    pub accepted: u64,
}

/// Labels of an item's image, stored on the item as `metadata.image_labels`.
#[derive(Serialize, ToSchema)]
pub struct ItemImageLabels {
    pub item_id: String,
    pub model: String,
    pub labels: Vec<ScoredLabel>,
    pub image: ImageInfo,
}

#[derive(Serialize, ToSchema)]
pub struct ScoredLabel {
    pub label: String,
    pub score: f32,
}

/// What to draft for an item.
#[derive(Serialize, ToSchema)]
pub struct CopyRequest {
    pub kind: CopyKind,
    /// A chat model by name; the first loaded one when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Store the draft in the item's metadata (`tagline` or `synopsis`); needs `catalog:write`.
    #[serde(default)]
    pub store: bool,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// 0 (the default) gives the same draft every time.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CopyKind {
    Tagline,
    Synopsis,
}

/// A drafted tagline or synopsis.
#[derive(Serialize, ToSchema)]
pub struct CopyDraft {
    pub item_id: String,
    pub kind: CopyKind,
    pub text: String,
    pub model: String,
    pub stored: bool,
    pub usage: marquee_core::ChatUsage,
}

// Recommendations and training

/// Which algorithm to train, with its hyper-parameters (`{"algorithm": "ease", "lambda": 500}`).
#[derive(Serialize, ToSchema)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum AlgorithmConfig {
    /// Time-decayed interaction counts (`half_life_days <= 0`: plain counts).
    Popularity { half_life_days: f32 },
    /// Item-item cosine similarity on co-occurrence.
    ItemKnn { neighbors: u64, shrinkage: f32 },
    /// EASE (Steck 2019); `lambda > 0`. Optional (0 when absent): `dropout` in [0, 0.99), a
    /// penalty in proportion to item popularity; `user_norm` in [0, 2], heavy users weighed
    /// down by `n_u^-user_norm`; `free_diagonal` (false when absent) drops the zero-diagonal
    /// constraint (`B = I - P·Λ`, Steck's DLAE); `session_seconds` > 0 with `session_weight`
    /// in (0, 1] weigh two items' co-occurrence in one history by
    /// `1 - m + m·exp(-|t_i - t_j| / session_seconds)` (items engaged in one session count more).
    Ease {
        lambda: f32,
        dropout: Option<f32>,
        user_norm: Option<f32>,
        free_diagonal: Option<bool>,
        session_seconds: Option<f32>,
        session_weight: Option<f32>,
    },
    /// Implicit ALS (Hu, Koren, Volinsky 2008).
    Ials {
        factors: u64,
        regularization: f32,
        alpha: f32,
        iterations: u64,
        seed: u64,
    },
    /// RP3β; `alpha > 0`, `beta >= 0`.
    Rp3Beta {
        alpha: f32,
        beta: f32,
        neighbors: u64,
    },
    /// A weighted sum of other models' standardised scores (members may not be blends).
    Blend { members: Vec<BlendMember> },
}

#[derive(Serialize, ToSchema)]
pub struct BlendMember {
    /// Finite, `>= 0`; at least one member's weight must be positive.
    pub weight: f32,
    #[schema(no_recursion)]
    pub config: AlgorithmConfig,
}

/// `POST /v1/models/train` without `wait`: training runs in the background.
#[derive(Serialize, ToSchema)]
pub struct TrainingStarted {
    #[schema(examples("started"))]
    pub status: String,
}

/// `POST /v1/models/train?wait=true`: the new model version.
#[derive(Serialize, ToSchema)]
pub struct Trained {
    #[schema(examples("trained"))]
    pub status: String,
    pub model: ModelVersionInfo,
}

// Experiments

/// One arm of an experiment.
#[derive(Serialize, ToSchema)]
pub struct VariantSpec {
    pub name: String,
    /// Relative share of users (shares are normalised over the variants).
    pub share: f64,
    /// The algorithm for this variant, trained beside the tenant's model and retrained with it;
    /// the tenant's model when absent.
    #[serde(default)]
    pub model: Option<AlgorithmConfig>,
    /// A kept earlier model version of the tenant (see `GET /v1/training`).
    #[serde(default)]
    pub model_version: Option<i64>,
}

/// A new experiment: users are split between the variants by a stable hash of their id.
#[derive(Serialize, ToSchema)]
pub struct ExperimentInput {
    pub name: String,
    /// 2 to 10 variants; the first is the control.
    pub variants: Vec<VariantSpec>,
    /// Feedback types that count as a click on a list (default: click, view, play, watch).
    #[serde(default)]
    pub click_types: Option<Vec<String>>,
    /// Feedback types that count as a conversion (default: purchase, conversion, subscribe,
    /// rent, like).
    #[serde(default)]
    pub conversion_types: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct Experiment {
    pub id: String,
    pub name: String,
    /// `running` or `stopped`.
    pub status: String,
    pub variants: Vec<VariantSpec>,
    pub click_types: Vec<String>,
    pub conversion_types: Vec<String>,
    pub created_at: Timestamp,
    pub stopped_at: Option<Timestamp>,
}

#[derive(Serialize, ToSchema)]
pub struct ExperimentList {
    pub experiments: Vec<Experiment>,
}

#[derive(Serialize, ToSchema)]
pub struct VariantResult {
    pub name: String,
    pub share: f64,
    /// Lists served.
    pub impressions: u64,
    /// Lists with at least one click.
    pub clicks: u64,
    pub ctr: f64,
    /// Lists with at least one conversion.
    pub conversions: u64,
    pub conversion_rate: f64,
    /// Two-sided p-value of this variant's CTR against the control's (none for the control).
    pub ctr_p_value: Option<f64>,
    pub conversion_p_value: Option<f64>,
}

#[derive(Serialize, ToSchema)]
pub struct ExperimentResults {
    pub experiment: Experiment,
    pub variants: Vec<VariantResult>,
}

// Administration, usage

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<marquee_core::KeyInfo>,
}

/// A tenant's policy and what it used of it in the current billing period.
#[derive(Serialize, ToSchema)]
pub struct TenantPolicyReport {
    pub tenant: String,
    pub policy: marquee_platform::TenantPolicy,
    pub period: Period,
    /// `null` before the tenant's first billed request of the period.
    pub used: Option<PeriodUsage>,
}

#[derive(Serialize, ToSchema)]
pub struct PeriodUsage {
    pub spent: Money,
    /// Held by requests in flight.
    pub reserved: Money,
    pub units: Units,
}

/// The price table, with each unit's block spelled out.
#[derive(Serialize, ToSchema)]
pub struct PriceList {
    pub currency: String,
    pub period: Period,
    /// Price per block of each priced unit (unlisted units are free).
    pub prices: BTreeMap<Unit, Money>,
    pub units: Vec<UnitPrice>,
}

#[derive(Serialize, ToSchema)]
pub struct UnitPrice {
    pub unit: Unit,
    /// How many units one price applies to.
    pub per: u64,
    #[schema(examples("per 1,000 recommendations"))]
    pub label: String,
    pub price: Money,
}

/// Audit entries, newest first; pass the last `id` as `before` for the next page.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    #[schema(examples("list"))]
    pub object: String,
    pub data: Vec<marquee_core::audit::AuditEntry>,
}

/// Billed requests, oldest first; pass `next` as `after` for the next page.
#[derive(Serialize, ToSchema)]
pub struct UsageRecordPage {
    #[schema(examples("list"))]
    pub object: String,
    pub data: Vec<marquee_core::usage::UsageRecord>,
    pub next: Option<String>,
}

// Models (OpenAI-compatible)

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    #[schema(examples("list"))]
    pub object: String,
    pub data: Vec<ModelObject>,
}

/// A model, as OpenAI describes one, with what Marquee knows of it.
#[derive(Serialize, ToSchema)]
pub struct ModelObject {
    pub id: String,
    #[schema(examples("model"))]
    pub object: String,
    /// Unix seconds (0 for upstream models).
    pub created: u64,
    /// `marquee`, or `upstream` for a model another engine serves through Marquee.
    pub owned_by: String,
    pub kind: String,
    /// `ready`, `failed` or `upstream`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Embedding models: the vector's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    /// Other names the API accepts for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aliases: Option<Vec<String>>,
    /// Speech models: the voices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voices: Option<Vec<String>>,
}

/// The form of `POST /v1/audio/transcriptions` (OpenAI's fields).
#[derive(Serialize, ToSchema)]
pub struct TranscriptionForm {
    /// The audio: a WAV file.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
    pub model: String,
    /// `en` (English) only.
    #[serde(default)]
    pub language: Option<String>,
    /// Text that the speech is likely to contain (names, terms).
    #[serde(default)]
    pub prompt: Option<String>,
    /// `json` (default), `text`, `srt`, `vtt` or `verbose_json`.
    #[serde(default)]
    pub response_format: Option<String>,
    /// 0 to 1.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// `segment` only.
    #[serde(default, rename = "timestamp_granularities[]")]
    pub timestamp_granularities: Option<Vec<String>>,
}

/// The form of the image routes.
#[derive(Serialize, ToSchema)]
pub struct ImageForm {
    /// A PNG, JPEG or WebP image.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
    /// A vision model by name; the first loaded one when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Labels to return (default 5).
    #[serde(default)]
    pub top_k: Option<u64>,
    /// Leave out labels scoring below this (0 to 1).
    #[serde(default)]
    pub min_score: Option<f32>,
}

// Gorse-compatible API (`/api/`): Gorse's field names, as `routes/gorse.rs` writes and reads
// them.

/// `Labels` of a Gorse item: an array of strings (its tags, each kept once), or (Gorse 0.5) an
/// object (its metadata).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum GorseLabels {
    List(Vec<String>),
    Object(Map<String, Value>),
}

/// A user, as Gorse answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseUser {
    pub user_id: String,
    /// The user's attribute `labels` (an array of strings or an object, when written through
    /// this API); without one, the user's other attributes as an object; `null` when the user
    /// has none.
    pub labels: Value,
    /// The user's attribute `subscribe`; `null` when unset.
    #[schema(required = true)]
    pub subscribe: Option<Vec<String>>,
    /// The user's attribute `comment`; empty when unset.
    pub comment: String,
}

/// A user to insert; it replaces the user with the same `UserId` whole.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseUserInput {
    /// 1–256 bytes.
    pub user_id: String,
    /// Stored as the attribute `labels`: any labels Gorse takes (a string, a number, an array
    /// of strings or of numbers, an object of labels).
    pub labels: Option<Value>,
    /// Stored as the attribute `subscribe`.
    pub subscribe: Option<Vec<String>>,
    /// Stored as the attribute `comment`.
    pub comment: Option<String>,
}

/// What to change of a user: fields that are absent or `null` are left as they are.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseUserPatch {
    /// As in an insert.
    pub labels: Option<Value>,
    pub subscribe: Option<Vec<String>>,
    /// An empty comment removes it.
    pub comment: Option<String>,
}

/// Users to insert: an array (Gorse reads a `[]data.User`; `null` is an empty batch).
#[derive(Serialize, ToSchema)]
pub struct GorseUserBatch(pub Vec<GorseUserInput>);

/// A page of users; pass `Cursor` as `cursor` for the next one (empty: the last page).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseUserPage {
    pub cursor: String,
    pub users: Vec<GorseUser>,
}

/// An item, as Gorse answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseItem {
    pub item_id: String,
    /// Hidden items are never recommended.
    pub is_hidden: bool,
    pub categories: Vec<String>,
    /// The publication time in RFC 3339; Go's zero time (`0001-01-01T00:00:00Z`) when there is
    /// none.
    #[schema(format = DateTime, examples("2022-02-24T10:00:00Z"))]
    pub timestamp: String,
    /// The item's tags when it has some, else its metadata (an object); `null` when it has
    /// neither.
    #[schema(required = true)]
    pub labels: Option<GorseLabels>,
    /// The item's description; empty when it has none.
    pub comment: String,
}

/// An item to insert; it replaces the item with the same `ItemId` whole.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseItemInput {
    /// 1–256 bytes.
    pub item_id: String,
    pub is_hidden: Option<bool>,
    pub categories: Option<Vec<String>>,
    /// The publication time: RFC 3339, a date and time without zone (UTC), a date, or Unix
    /// time in seconds, milliseconds, microseconds or nanoseconds. Empty, or Go's zero time:
    /// none.
    #[schema(examples("2022-02-24T10:00:00Z"))]
    pub timestamp: Option<String>,
    /// An array of strings (the item's tags, each kept once) or an object (its metadata).
    pub labels: Option<GorseLabels>,
    /// The item's description.
    pub comment: Option<String>,
}

/// What to change of an item: fields that are absent or `null` are left as they are.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseItemPatch {
    pub is_hidden: Option<bool>,
    pub categories: Option<Vec<String>>,
    /// As in an insert; an empty string removes the publication time.
    pub timestamp: Option<String>,
    /// Replaces the item's tags and metadata.
    pub labels: Option<GorseLabels>,
    /// An empty comment removes the description.
    pub comment: Option<String>,
}

/// Items to insert: an array (Gorse reads a `[]server.Item`; `null` is an empty batch).
#[derive(Serialize, ToSchema)]
pub struct GorseItemBatch(pub Vec<GorseItemInput>);

/// A page of items; pass `Cursor` as `cursor` for the next one (empty: the last page).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseItemPage {
    pub cursor: String,
    pub items: Vec<GorseItem>,
}

/// A feedback event, as Gorse answers it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseFeedback {
    pub feedback_type: String,
    pub user_id: String,
    pub item_id: String,
    /// RFC 3339.
    #[schema(format = DateTime, examples("2022-02-24T10:00:00Z"))]
    pub timestamp: String,
    /// Always empty: comments on feedback are not stored.
    pub comment: String,
}

/// A feedback event to insert; the user and the item are created when missing.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseFeedbackInput {
    /// 1–64 characters without spaces (`read`, `like`, `star`, …).
    pub feedback_type: String,
    pub user_id: String,
    pub item_id: String,
    /// Kept as the event's value (a finite number).
    pub value: Option<f64>,
    /// When it happened, in the formats of an item's `Timestamp`; now when absent.
    #[schema(examples("2022-02-24T10:00:00Z"))]
    pub timestamp: Option<String>,
    /// Accepted, not stored.
    pub comment: Option<String>,
}

/// Feedback events: an array (Gorse reads a `[]server.Feedback`; `null` is an empty batch).
#[derive(Serialize, ToSchema)]
pub struct GorseFeedbackBatch(pub Vec<GorseFeedbackInput>);

/// A page of feedback; pass `Cursor` as `cursor` for the next one (empty: the last page).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseFeedbackPage {
    pub cursor: String,
    pub feedback: Vec<GorseFeedback>,
}

/// Gorse's health status (`HealthStatus`): Marquee's one store is both Gorse's data store and
/// its cache store.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseHealthStatus {
    /// Whether the server is ready (as Marquee's `/readyz` says).
    pub ready: bool,
    /// `null` when the store answers; `{}` (a Go error) when it does not.
    #[schema(required = true)]
    pub data_store_error: Option<Map<String, Value>>,
    /// As `DataStoreError`.
    #[schema(required = true)]
    pub cache_store_error: Option<Map<String, Value>>,
    pub data_store_connected: bool,
    pub cache_store_connected: bool,
}

/// How many objects a write inserted, changed or deleted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseRowAffected {
    pub row_affected: u64,
}

/// An item (or a user, for user neighbours) with its score, best first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct GorseScore {
    pub id: String,
    pub score: f64,
}

/// `GET /api/recommend/…`: item ids, or with `X-API-Version: 2` `{"Id","Score"}` objects;
/// best first. An empty list is both, hence `anyOf`.
pub struct GorseRecommendation;

impl PartialSchema for GorseRecommendation {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder};
        AnyOfBuilder::new()
            .item(
                ArrayBuilder::new()
                    .items(String::schema())
                    .description(Some("Item ids (without `X-API-Version: 2`).")),
            )
            .item(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name(GorseScore::name()))
                    .description(Some("Scored items (with `X-API-Version: 2`).")),
            )
            .description(Some(
                "Recommended items, best first: ids, or with `X-API-Version: 2` `{\"Id\", \"Score\"}` objects.",
            ))
            .into()
    }
}

impl ToSchema for GorseRecommendation {
    fn schemas(schemas: &mut Vec<(String, RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((GorseScore::name().into(), GorseScore::schema()));
        GorseScore::schemas(schemas);
    }
}

/// `n` and `cursor` of Gorse's list routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GorsePage {
    /// Entries per page (default 10; at most 1,000).
    #[param(default = 10)]
    pub n: Option<usize>,
    /// The `Cursor` of the previous page; absent or empty: the first page (gorse.js sends
    /// `Cursor`, which is read too).
    pub cursor: Option<String>,
}

/// `n` and `offset` of Gorse's scored lists; `offset + n` is at most 1,000.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GorseWindow {
    /// How many (default 10; 0 gives an empty list).
    #[param(default = 10)]
    pub n: Option<usize>,
    /// How many to skip first.
    #[param(default = 0)]
    pub offset: Option<usize>,
}

/// Parameters of Gorse's popular and latest lists.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "kebab-case")]
pub struct GorseNonPersonalized {
    /// How many (default 10; 0 gives an empty list).
    #[param(default = 10)]
    pub n: Option<usize>,
    /// How many to skip first; `offset + n` is at most 1,000.
    #[param(default = 0)]
    pub offset: Option<usize>,
    /// Leave out the items this user has feedback on.
    pub user_id: Option<String>,
}

/// Parameters of Gorse's recommend route.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "kebab-case")]
pub struct GorseRecommendParams {
    /// How many (default 10; 0 gives an empty list).
    #[param(default = 10)]
    pub n: Option<usize>,
    /// How many to skip first; `offset + n` is at most 1,000.
    #[param(default = 0)]
    pub offset: Option<usize>,
    /// Only items in this category; repeat it for items in all of them. Takes the place of the
    /// path's category.
    #[param(style = Form, explode)]
    pub category: Option<Vec<String>>,
    /// Record the returned items as feedback of this type (existing events are kept); needs
    /// the `feedback:write` scope too.
    pub write_back_type: Option<String>,
    /// A Go duration (`10m`, `1h30m`): date the written-back feedback that far from now.
    #[param(example = "10m")]
    pub write_back_delay: Option<String>,
}
