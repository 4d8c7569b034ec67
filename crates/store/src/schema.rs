//! Versioned schema. Each migration is one DDL template rendered per dialect; applied versions
//! are recorded in `rampart_schema` so a newer binary upgrades an older database in place.

use crate::{Store, StoreError, now_ms};

const MIGRATIONS: &[(i64, &str)] = &[(1, V1)];

const V1: &str = r#"
CREATE TABLE machines (
    id {ID},
    machine_id {KEY} NOT NULL UNIQUE,
    password {TEXT} NOT NULL,
    ip_address {KEY} NOT NULL DEFAULT '',
    scenarios {TEXT},
    version {KEY} NOT NULL DEFAULT '',
    is_validated BIGINT NOT NULL DEFAULT 0,
    auth_type {KEY} NOT NULL DEFAULT 'password',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_push BIGINT,
    last_heartbeat BIGINT,
    osname {KEY} NOT NULL DEFAULT '',
    osversion {KEY} NOT NULL DEFAULT '',
    featureflags {TEXT},
    hubstate {TEXT},
    datasources {TEXT}
);
CREATE TABLE bouncers (
    id {ID},
    name {KEY} NOT NULL UNIQUE,
    api_key {KEY} NOT NULL,
    revoked BIGINT NOT NULL DEFAULT 0,
    ip_address {KEY} NOT NULL DEFAULT '',
    type {KEY} NOT NULL DEFAULT '',
    version {KEY} NOT NULL DEFAULT '',
    last_pull BIGINT,
    auth_type {KEY} NOT NULL DEFAULT 'api-key',
    auto_created BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    osname {KEY} NOT NULL DEFAULT '',
    osversion {KEY} NOT NULL DEFAULT '',
    featureflags {TEXT}
);
CREATE INDEX bouncers_api_key ON bouncers (api_key);
CREATE TABLE alerts (
    id {ID},
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    uuid {KEY} NOT NULL,
    machine_id {KEY} NOT NULL DEFAULT '',
    scenario {KEY} NOT NULL,
    scenario_hash {KEY} NOT NULL DEFAULT '',
    scenario_version {KEY} NOT NULL DEFAULT '',
    message {TEXT},
    events_count BIGINT NOT NULL DEFAULT 0,
    start_at {KEY} NOT NULL DEFAULT '',
    stop_at {KEY} NOT NULL DEFAULT '',
    started_at BIGINT NOT NULL,
    capacity BIGINT NOT NULL DEFAULT 0,
    leak_speed {KEY} NOT NULL DEFAULT '',
    simulated BIGINT NOT NULL DEFAULT 0,
    remediation BIGINT NOT NULL DEFAULT 0,
    kind {KEY} NOT NULL DEFAULT '',
    source_scope {KEY} NOT NULL DEFAULT '',
    source_value {KEY} NOT NULL DEFAULT '',
    source_ip {KEY} NOT NULL DEFAULT '',
    source_range {KEY} NOT NULL DEFAULT '',
    source_as_number {KEY} NOT NULL DEFAULT '',
    source_as_name {TEXT},
    source_country {KEY} NOT NULL DEFAULT '',
    source_latitude {F64} NOT NULL DEFAULT 0,
    source_longitude {F64} NOT NULL DEFAULT 0,
    ip_size BIGINT NOT NULL DEFAULT 0,
    start_ip BIGINT NOT NULL DEFAULT 0,
    start_suffix BIGINT NOT NULL DEFAULT 0,
    end_ip BIGINT NOT NULL DEFAULT 0,
    end_suffix BIGINT NOT NULL DEFAULT 0,
    events {TEXT},
    meta {TEXT}
);
CREATE INDEX alerts_created_at ON alerts (created_at);
CREATE INDEX alerts_uuid ON alerts (uuid);
CREATE INDEX alerts_scenario ON alerts (scenario);
CREATE INDEX alerts_source_value ON alerts (source_value);
CREATE TABLE decisions (
    id {ID},
    alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    until BIGINT NOT NULL,
    scenario {KEY} NOT NULL,
    type {KEY} NOT NULL,
    scope {KEY} NOT NULL,
    value {KEY} NOT NULL,
    origin {KEY} NOT NULL,
    simulated BIGINT NOT NULL DEFAULT 0,
    uuid {KEY} NOT NULL,
    ip_size BIGINT NOT NULL DEFAULT 0,
    start_ip BIGINT NOT NULL DEFAULT 0,
    start_suffix BIGINT NOT NULL DEFAULT 0,
    end_ip BIGINT NOT NULL DEFAULT 0,
    end_suffix BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX decisions_alert_id ON decisions (alert_id);
CREATE INDEX decisions_until ON decisions (until);
CREATE INDEX decisions_updated_at ON decisions (updated_at);
CREATE INDEX decisions_value ON decisions (value);
CREATE TABLE metrics (
    id {ID},
    generated_type {KEY} NOT NULL,
    generated_by {KEY} NOT NULL,
    received_at BIGINT NOT NULL,
    payload {TEXT}
);
CREATE INDEX metrics_received_at ON metrics (received_at);
CREATE TABLE config_items (
    id {ID},
    name {KEY} NOT NULL UNIQUE,
    value {TEXT}
);
CREATE TABLE allowlists (
    id {ID},
    name {KEY} NOT NULL UNIQUE,
    description {TEXT},
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE allowlist_items (
    id {ID},
    allowlist_id BIGINT NOT NULL REFERENCES allowlists (id) ON DELETE CASCADE,
    value {KEY} NOT NULL,
    comment {TEXT},
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    ip_size BIGINT NOT NULL DEFAULT 0,
    start_ip BIGINT NOT NULL DEFAULT 0,
    start_suffix BIGINT NOT NULL DEFAULT 0,
    end_ip BIGINT NOT NULL DEFAULT 0,
    end_suffix BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX allowlist_items_list ON allowlist_items (allowlist_id)
"#;

pub(crate) async fn migrate(store: &Store) -> Result<(), StoreError> {
    let pool = store.pool();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS rampart_schema (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM rampart_schema")
        .fetch_one(pool)
        .await?;
    let current = current.unwrap_or(0);
    for (version, template) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        let ddl = store.dialect().ddl(template);
        // MySQL commits DDL implicitly, so a transaction would not make this atomic there; the
        // version row is written last so a crash mid-way re-runs the migration and fails loudly
        // on the first existing table instead of half-applying silently.
        let mut tx = pool.begin().await?;
        for stmt in ddl.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(sqlx::AssertSqlSafe(stmt.to_owned()))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(store.sql("INSERT INTO rampart_schema (version, applied_at) VALUES (?, ?)"))
            .bind(*version)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}
