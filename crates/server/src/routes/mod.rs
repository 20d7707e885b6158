//! The route table. Each area has its own module; this file is the one place that lists every
//! route.

mod admin;
mod audio;
mod catalog;
mod experiments;
mod health;
mod images;
mod models;
mod recommend;
mod search;
mod usage;

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
        .fallback(|| async { ApiError::not_found_route() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
}
