//! Schema migrations, run at every start.
//!
//! Each migration has a SQLite and a PostgreSQL form (the DDL is where the dialects differ) and
//! runs once, recorded in `schema_migrations`. Never edit a released migration: add one.

use sqlx::{AssertSqlSafe, Row};

use crate::{Backend, Result, Store};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Plain DDL that both dialects accept.
const EXPERIMENTS: &str = "
CREATE TABLE experiments (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    stopped_at BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE experiment_impressions (
    tenant_id BIGINT NOT NULL,
    experiment_id TEXT NOT NULL,
    variant BIGINT NOT NULL,
    impressions BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, experiment_id, variant)
);
CREATE TABLE experiment_outcomes (
    tenant_id BIGINT NOT NULL,
    experiment_id TEXT NOT NULL,
    variant BIGINT NOT NULL,
    recommendation_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, recommendation_id, outcome)
);
CREATE INDEX experiment_outcomes_by_experiment ON experiment_outcomes (tenant_id, experiment_id, variant);
";

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sqlite: "
CREATE TABLE tenants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id BIGINT REFERENCES tenants(id),
    kind TEXT NOT NULL,
    name TEXT,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE TABLE items (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    title TEXT,
    categories TEXT NOT NULL,
    tags TEXT NOT NULL,
    description TEXT,
    metadata TEXT NOT NULL,
    published_at BIGINT,
    available_from BIGINT,
    available_until BIGINT,
    hidden BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE users (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE feedback (
    tenant_id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE PRECISION,
    ts BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, item_id, kind)
) WITHOUT ROWID;
CREATE INDEX feedback_by_item ON feedback (tenant_id, item_id);
CREATE TABLE model_versions (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    version BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    trained_at BIGINT NOT NULL,
    users BIGINT NOT NULL,
    items BIGINT NOT NULL,
    interactions BIGINT NOT NULL,
    train_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
",
        postgres: r#"
CREATE TABLE tenants (
    id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id BIGINT REFERENCES tenants(id),
    kind TEXT NOT NULL,
    name TEXT,
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_used_at BIGINT
);
CREATE TABLE items (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT COLLATE "C" NOT NULL,
    title TEXT,
    categories TEXT NOT NULL,
    tags TEXT NOT NULL,
    description TEXT,
    metadata TEXT NOT NULL,
    published_at BIGINT,
    available_from BIGINT,
    available_until BIGINT,
    hidden BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE users (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    id TEXT COLLATE "C" NOT NULL,
    attributes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE feedback (
    tenant_id BIGINT NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    item_id TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE PRECISION,
    ts BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, item_id, kind)
);
CREATE INDEX feedback_by_item ON feedback (tenant_id, item_id);
CREATE TABLE model_versions (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    version BIGINT NOT NULL,
    algorithm TEXT NOT NULL,
    trained_at BIGINT NOT NULL,
    users BIGINT NOT NULL,
    items BIGINT NOT NULL,
    interactions BIGINT NOT NULL,
    train_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
"#,
    },
    Migration {
        version: 2,
        name: "experiments",
        sqlite: EXPERIMENTS,
        postgres: EXPERIMENTS,
    },
    Migration {
        version: 3,
        name: "item embeddings",
        sqlite: "
CREATE TABLE item_embeddings (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    model TEXT NOT NULL,
    item_id TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (tenant_id, model, item_id)
);",
        postgres: "
CREATE TABLE item_embeddings (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    model TEXT NOT NULL,
    item_id TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, model, item_id)
);",
    },
];

pub(crate) async fn run(store: &Store) -> Result<()> {
    let pool = store.pool();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("version"))
        .collect::<std::result::Result<_, _>>()?;
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let ddl = match store.backend() {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        let mut tx = pool.begin().await?;
        for statement in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(crate::now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
    }
    Ok(())
}
