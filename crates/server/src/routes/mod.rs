//! The route table. Each area has its own module; this file is the one place that lists every
//! route. The modules are visible to the crate so that [`crate::openapi`] can collect their
//! handlers' `#[utoipa::path]` descriptions.

pub(crate) mod admin;
pub(crate) mod audio;
pub(crate) mod catalog;
pub(crate) mod experiments;
pub(crate) mod gorse;
pub(crate) mod health;
pub(crate) mod images;
pub(crate) mod models;
pub(crate) mod recommend;
pub(crate) mod search;
pub(crate) mod usage;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};

use crate::AppState;
use crate::error::ApiError;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::metrics::metrics_for_operator))
        // The API's own description (OpenAPI 3.1) and its docs page; public, like the probes.
        .route("/openapi.json", get(crate::openapi::document_json))
        .route("/docs", get(crate::openapi::docs_redirect))
        .route("/docs/", get(crate::openapi::docs_index))
        .route("/docs/{*file}", get(crate::openapi::docs_asset))
        // Tenants and keys.
        .route(
            "/v1/admin/tenants",
            post(admin::create_tenant).get(admin::list_tenants),
        )
        .route(
            "/v1/admin/tenants/{tenant}/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route(
            "/v1/admin/keys/{key_id}",
            delete(admin::revoke_key).patch(admin::update_key),
        )
        .route("/v1/admin/keys/{key_id}/rotate", post(admin::rotate_key))
        .route(
            "/v1/admin/tenants/{tenant}/policy",
            get(admin::get_tenant_policy).put(admin::put_tenant_policy),
        )
        .route("/v1/admin/prices", put(admin::put_prices))
        .route("/v1/prices", get(admin::get_prices))
        .route("/v1/audit", get(admin::audit_log))
        // Usage and invoices.
        .route("/v1/usage", get(usage::usage))
        .route("/v1/usage/records", get(usage::records))
        .route("/v1/invoices/{month}", get(usage::invoice))
        // Catalogue.
        .route(
            "/v1/items",
            get(catalog::list_items).post(catalog::upsert_items),
        )
        .route(
            "/v1/items/{item_id}",
            get(catalog::get_item)
                .put(catalog::put_item)
                .patch(catalog::patch_item)
                .delete(catalog::delete_item),
        )
        // Users and feedback.
        .route(
            "/v1/users",
            get(catalog::list_users).post(catalog::upsert_users),
        )
        .route(
            "/v1/users/{user_id}",
            get(catalog::get_user)
                .put(catalog::put_user)
                .patch(catalog::patch_user)
                .delete(catalog::delete_user),
        )
        .route("/v1/users/{user_id}/feedback", get(catalog::user_feedback))
        .route("/v1/users/{user_id}/export", get(catalog::export_user))
        .route("/v1/users/{user_id}/profile", get(catalog::user_profile))
        .route("/v1/feedback", post(catalog::insert_feedback))
        // Recommendations.
        .route("/v1/recommend/{user_id}", get(recommend::for_user))
        .route(
            "/v1/recommend/{user_id}/{item_id}",
            get(recommend::for_user_in_context),
        )
        .route(
            "/recommend/{user_id}/{item_id}",
            get(recommend::for_user_in_context),
        )
        .route("/v1/items/{item_id}/similar", get(recommend::similar))
        .route(
            "/v1/recommend/session",
            axum::routing::post(recommend::session),
        )
        .route("/v1/popular", get(recommend::popular))
        .route("/v1/search", get(search::search))
        .route("/v1/items/{item_id}/generate", post(search::generate))
        .route("/v1/trending", get(recommend::trending))
        // Experiments.
        .route(
            "/v1/experiments",
            post(experiments::create).get(experiments::list),
        )
        .route("/v1/experiments/{id}", get(experiments::get))
        .route("/v1/experiments/{id}/stop", post(experiments::stop))
        .route("/v1/experiments/{id}/results", get(experiments::results))
        // Models: OpenAI-compatible routes, and recommender training.
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model}", get(models::get))
        .route("/v1/embeddings", post(models::embeddings))
        .route("/v1/chat/completions", post(models::chat_completions))
        .route("/v1/audio/speech", post(audio::speech))
        .route("/v1/audio/transcriptions", post(audio::transcriptions))
        .route("/v1/images/classify", post(images::classify))
        .route("/v1/items/{item_id}/image", post(images::item_image))
        .route("/v1/models/train", post(recommend::train))
        .route("/v1/training", get(recommend::training_status))
        // Gorse's REST API (v0.5) on the caller's tenant (see `gorse.rs`). Gorse clients call
        // the category routes with an empty category too (a trailing slash).
        .route("/api/health/live", get(gorse::health_live))
        .route("/api/health/ready", get(gorse::health_ready))
        .route("/api/user", post(gorse::insert_user))
        .route(
            "/api/users",
            post(gorse::insert_users).get(gorse::list_users),
        )
        .route(
            "/api/user/{user_id}",
            get(gorse::get_user)
                .patch(gorse::patch_user)
                .delete(gorse::delete_user),
        )
        .route("/api/item", post(gorse::insert_item))
        .route(
            "/api/items",
            post(gorse::insert_items).get(gorse::list_items),
        )
        .route(
            "/api/item/{item_id}",
            get(gorse::get_item)
                .patch(gorse::patch_item)
                .delete(gorse::delete_item),
        )
        .route(
            "/api/item/{item_id}/category/{category}",
            put(gorse::insert_item_category).delete(gorse::delete_item_category),
        )
        .route(
            "/api/feedback",
            post(gorse::insert_feedback)
                .put(gorse::upsert_feedback)
                .get(gorse::list_feedback),
        )
        .route("/api/feedback/{feedback_type}", get(gorse::list_feedback))
        .route(
            "/api/feedback/{user_id}/{item_id}",
            get(gorse::user_item_feedback).delete(gorse::delete_user_item_feedback),
        )
        .route(
            "/api/feedback/{feedback_type}/{user_id}/{item_id}",
            get(gorse::typed_user_item_feedback).delete(gorse::delete_user_item_feedback),
        )
        .route("/api/user/{user_id}/feedback", get(gorse::user_feedback))
        .route(
            "/api/user/{user_id}/feedback/{feedback_type}",
            get(gorse::user_feedback),
        )
        .route("/api/item/{item_id}/feedback", get(gorse::item_feedback))
        .route("/api/item/{item_id}/feedback/", get(gorse::item_feedback))
        .route(
            "/api/item/{item_id}/feedback/{feedback_type}",
            get(gorse::item_feedback),
        )
        .route("/api/recommend/{user_id}", get(gorse::recommend))
        .route("/api/recommend/{user_id}/", get(gorse::recommend))
        .route("/api/recommend/{user_id}/{category}", get(gorse::recommend))
        .route("/api/item/{item_id}/neighbors", get(gorse::item_neighbors))
        .route("/api/item/{item_id}/neighbors/", get(gorse::item_neighbors))
        .route(
            "/api/item/{item_id}/neighbors/{category}",
            get(gorse::item_neighbors),
        )
        .route("/api/user/{user_id}/neighbors", get(gorse::user_neighbors))
        .route("/api/user/{user_id}/neighbors/", get(gorse::user_neighbors))
        .route("/api/latest", get(gorse::latest))
        .route("/api/latest/", get(gorse::latest))
        .route("/api/latest/{category}", get(gorse::latest))
        .route("/api/popular", get(gorse::popular))
        .route("/api/popular/", get(gorse::popular))
        .route("/api/popular/{category}", get(gorse::popular))
        .route("/api/session/recommend", post(gorse::session_recommend))
        .route("/api/session/recommend/", post(gorse::session_recommend))
        .route(
            "/api/session/recommend/{category}",
            post(gorse::session_recommend),
        )
        .fallback(|| async { ApiError::not_found_route() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
}
