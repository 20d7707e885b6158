//! Schema migrations, run at every start.
//!
//! Each migration has a SQLite and a PostgreSQL form (the DDL is where the dialects differ) and
//! runs once, in one transaction, recorded in `schema_migrations`. Never edit a released
//! migration: add one.
//!
//! Migrations 1–3 are scripts split on `;`. Trigger and function bodies contain `;` themselves, so
//! later migrations may list their statements one by one instead ([`Ddl::Statements`]); how a
//! released script runs never changes.

use sqlx::{AssertSqlSafe, Row};

use crate::{Backend, Result, Store};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static [Ddl],
    postgres: &'static [Ddl],
}

/// Statements of a migration for one backend; a migration runs its parts in order.
enum Ddl {
    /// Statements separated by `;` (none may contain a `;` of its own).
    Script(&'static str),
    /// Statements run one by one as written, for bodies that contain `;`.
    Statements(&'static [&'static str]),
}

impl Ddl {
    fn statements(&self) -> Vec<&'static str> {
        match self {
            Ddl::Script(script) => script
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
            Ddl::Statements(list) => list.iter().map(|s| s.trim()).collect(),
        }
    }
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

/// The columns of a usage row after its id, shared by `usage_ledger` and `usage_pending`.
macro_rules! usage_columns {
    () => {
        "
    tenant_id BIGINT NOT NULL,
    key_id TEXT,
    route TEXT NOT NULL,
    model TEXT,
    u_recommendations BIGINT NOT NULL DEFAULT 0,
    u_input_tokens BIGINT NOT NULL DEFAULT 0,
    u_output_tokens BIGINT NOT NULL DEFAULT 0,
    u_embedding_tokens BIGINT NOT NULL DEFAULT 0,
    u_tts_characters BIGINT NOT NULL DEFAULT 0,
    u_images BIGINT NOT NULL DEFAULT 0,
    u_audio_ms BIGINT NOT NULL DEFAULT 0,
    cost_nanos BIGINT NOT NULL,
    currency TEXT NOT NULL,
    latency_ms BIGINT NOT NULL,
    status BIGINT NOT NULL,
    request_id TEXT,
    at BIGINT NOT NULL
"
    };
}

/// The columns of an audit entry after its id.
macro_rules! audit_columns {
    () => {
        "
    tenant_id BIGINT,
    key_id TEXT,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT,
    remote TEXT,
    at BIGINT NOT NULL
"
    };
}

/// Migration 4, the part both dialects accept: key policies, expiry and rotation; operator
/// settings; tenant policies; wrapped per-tenant data keys; the record of user erasures (a keyed
/// hash of the user, never the id); and the indexes of the backend-specific tables, which run
/// first.
const PROVIDER_PLATFORM_COMMON: &str = "
ALTER TABLE api_keys ADD COLUMN policy TEXT;
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN rotated_to TEXT;
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE tenant_policies (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
    policy TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE tenant_data_keys (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants(id),
    master_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE user_erasures (
    tenant_id BIGINT NOT NULL,
    user_hash TEXT NOT NULL,
    key_id TEXT,
    events_deleted BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX user_erasures_by_tenant ON user_erasures (tenant_id, at);
CREATE INDEX usage_ledger_by_tenant ON usage_ledger (tenant_id, at);
CREATE INDEX usage_ledger_by_time ON usage_ledger (at);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, id);
";

/// Migration 4 on SQLite: the usage ledger, the reservations of running requests and the audit
/// log, created before [`PROVIDER_PLATFORM_COMMON`] indexes them.
///
/// The ledger and the audit log are evidence (what a tenant is billed, who did what), so the
/// database itself refuses UPDATE and DELETE on them: a bug or a stray query in the service cannot
/// rewrite history.
const PROVIDER_PLATFORM_SQLITE: &[&str] = &[
    concat!(
        "CREATE TABLE usage_ledger (\n    id TEXT PRIMARY KEY,",
        usage_columns!(),
        ")"
    ),
    concat!(
        "CREATE TABLE usage_pending (\n    id TEXT PRIMARY KEY,",
        usage_columns!(),
        ")"
    ),
    concat!(
        "CREATE TABLE audit_log (\n    id INTEGER PRIMARY KEY AUTOINCREMENT,",
        audit_columns!(),
        ")"
    ),
    "CREATE TRIGGER usage_ledger_no_update BEFORE UPDATE ON usage_ledger
BEGIN SELECT RAISE(ABORT, 'usage_ledger is append-only'); END",
    "CREATE TRIGGER usage_ledger_no_delete BEFORE DELETE ON usage_ledger
BEGIN SELECT RAISE(ABORT, 'usage_ledger is append-only'); END",
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
];

/// Migration 4 on PostgreSQL: as [`PROVIDER_PLATFORM_SQLITE`]. Ledger ids sort bytewise
/// (`COLLATE "C"`) as on SQLite, so pages follow the same order on both backends; TRUNCATE is
/// refused too, since a row trigger does not see it.
const PROVIDER_PLATFORM_POSTGRES: &[&str] = &[
    concat!(
        "CREATE TABLE usage_ledger (\n    id TEXT COLLATE \"C\" PRIMARY KEY,",
        usage_columns!(),
        ")"
    ),
    concat!(
        "CREATE TABLE usage_pending (\n    id TEXT COLLATE \"C\" PRIMARY KEY,",
        usage_columns!(),
        ")"
    ),
    concat!(
        "CREATE TABLE audit_log (\n    id BIGSERIAL PRIMARY KEY,",
        audit_columns!(),
        ")"
    ),
    "CREATE FUNCTION marquee_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$",
    "CREATE TRIGGER usage_ledger_append_only BEFORE UPDATE OR DELETE ON usage_ledger
FOR EACH ROW EXECUTE FUNCTION marquee_refuse_change()",
    "CREATE TRIGGER usage_ledger_no_truncate BEFORE TRUNCATE ON usage_ledger
FOR EACH STATEMENT EXECUTE FUNCTION marquee_refuse_change()",
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION marquee_refuse_change()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION marquee_refuse_change()",
];

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sqlite: &[Ddl::Script(
            "
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
        )],
        postgres: &[Ddl::Script(
            r#"
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
        )],
    },
    Migration {
        version: 2,
        name: "experiments",
        sqlite: &[Ddl::Script(EXPERIMENTS)],
        postgres: &[Ddl::Script(EXPERIMENTS)],
    },
    Migration {
        version: 3,
        name: "item embeddings",
        sqlite: &[Ddl::Script(
            "
CREATE TABLE item_embeddings (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    model TEXT NOT NULL,
    item_id TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (tenant_id, model, item_id)
);",
        )],
        postgres: &[Ddl::Script(
            "
CREATE TABLE item_embeddings (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    model TEXT NOT NULL,
    item_id TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, model, item_id)
);",
        )],
    },
    Migration {
        version: 4,
        name: "provider platform",
        sqlite: &[
            Ddl::Statements(PROVIDER_PLATFORM_SQLITE),
            Ddl::Script(PROVIDER_PLATFORM_COMMON),
        ],
        postgres: &[
            Ddl::Statements(PROVIDER_PLATFORM_POSTGRES),
            Ddl::Script(PROVIDER_PLATFORM_COMMON),
        ],
    },
    Migration {
        version: 5,
        name: "feedback log",
        // See `feedback_log`: acknowledged feedback, in arrival order, until it is folded into
        // `feedback`.
        sqlite: &[Ddl::Statements(&["CREATE TABLE feedback_log (
    seq INTEGER PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE PRECISION,
    ts BIGINT NOT NULL
)"])],
        postgres: &[Ddl::Statements(&["CREATE TABLE feedback_log (
    seq BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL,
    user_id TEXT COLLATE \"C\" NOT NULL,
    item_id TEXT COLLATE \"C\" NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE PRECISION,
    ts BIGINT NOT NULL
)"])],
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
            Backend::Sqlite => &m.sqlite,
            Backend::Postgres => &m.postgres,
        };
        let mut tx = pool.begin().await?;
        for statement in ddl.iter().flat_map(Ddl::statements) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
        }
    }

    #[test]
    fn released_scripts_split_on_semicolons_as_before() {
        let initial: Vec<&str> = MIGRATIONS[0]
            .sqlite
            .iter()
            .flat_map(Ddl::statements)
            .collect();
        assert_eq!(initial.len(), 7);
        assert!(initial[0].starts_with("CREATE TABLE tenants"));
        assert!(initial[6].ends_with(')'));
    }

    #[test]
    fn trigger_bodies_run_whole() {
        for ddl in [MIGRATIONS[3].sqlite, MIGRATIONS[3].postgres] {
            let statements: Vec<&str> = ddl.iter().flat_map(Ddl::statements).collect();
            let triggers: Vec<&&str> = statements
                .iter()
                .filter(|s| s.starts_with("CREATE TRIGGER"))
                .collect();
            assert!(triggers.len() >= 4);
            assert!(
                triggers
                    .iter()
                    .all(|t| t.ends_with("END") || t.ends_with("marquee_refuse_change()"))
            );
        }
    }
}
