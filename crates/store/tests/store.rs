//! The same checks on every backend: SQLite always; PostgreSQL when `MARQUEE_TEST_POSTGRES_URL`
//! points at a database the test may wipe (e.g. `postgres://marquee:marquee@127.0.0.1/marquee_test`).

use marquee_store::*;
use serde_json::json;

fn item(id: &str, title: &str) -> ItemRow {
    ItemRow {
        id: id.into(),
        title: Some(title.into()),
        categories: vec!["Drama".into()],
        tags: vec![],
        description: None,
        metadata: json!({"year": 1995}),
        published_at: Some(1_000),
        available_from: None,
        available_until: None,
        hidden: false,
        updated_at: 5,
    }
}

fn event(user: &str, item: &str, kind: &str, value: Option<f64>, ts: i64) -> FeedbackRow {
    FeedbackRow {
        user_id: user.into(),
        item_id: item.into(),
        kind: kind.into(),
        value,
        timestamp: ts,
    }
}

async fn exercise(store: &Store) {
    store.ping().await.unwrap();
    // Tenants.
    let a = store.create_tenant("alpha").await.unwrap();
    let b = store.create_tenant("beta").await.unwrap();
    assert_ne!(a.id, b.id);
    assert!(matches!(
        store.create_tenant("alpha").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.tenant_by_name("beta").await.unwrap().unwrap().id,
        b.id
    );
    store.bump_generation(a.id).await.unwrap();
    assert_eq!(
        store.tenant_by_id(a.id).await.unwrap().unwrap().generation,
        1
    );
    assert_eq!(store.list_tenants().await.unwrap().len(), 2);

    // Keys.
    let key = ApiKeyRow {
        id: "key_1".into(),
        tenant_id: Some(a.id),
        kind: "secret".into(),
        name: Some("backend".into()),
        prefix: "mq_sk_abcd".into(),
        hash: "h1".into(),
        created_at: 1,
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_api_key(&key).await.unwrap();
    store
        .insert_api_key(&ApiKeyRow {
            id: "key_op".into(),
            tenant_id: None,
            kind: "admin".into(),
            hash: "h2".into(),
            ..key.clone()
        })
        .await
        .unwrap();
    assert_eq!(store.api_key_by_hash("h1").await.unwrap().unwrap(), key);
    assert_eq!(store.list_api_keys(Some(a.id)).await.unwrap().len(), 1);
    assert_eq!(store.list_api_keys(None).await.unwrap()[0].id, "key_op");
    store.touch_api_keys(&["key_1".into()], 77).await.unwrap();
    assert_eq!(
        store
            .api_key_by_id("key_1")
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(77)
    );
    assert!(store.revoke_api_key("key_1").await.unwrap());
    assert!(!store.revoke_api_key("key_1").await.unwrap());
    assert_eq!(store.active_api_keys().await.unwrap().len(), 1);

    // Items: upsert is idempotent, tenants are separate, pages follow the cursor.
    let items: Vec<ItemRow> = (0..30)
        .map(|i| item(&format!("m{i:02}"), &format!("Movie {i}")))
        .collect();
    store.upsert_items(a.id, &items).await.unwrap();
    store.upsert_items(a.id, &items).await.unwrap();
    store.upsert_items(b.id, &items[..1]).await.unwrap();
    assert_eq!(store.all_items(a.id).await.unwrap().len(), 30);
    assert_eq!(
        store.get_item(a.id, "m03").await.unwrap().unwrap(),
        items[3]
    );
    assert!(store.get_item(b.id, "m03").await.unwrap().is_none());
    let page1 = store.list_items(a.id, None, 20).await.unwrap();
    let page2 = store
        .list_items(a.id, Some(&page1.last().unwrap().id), 20)
        .await
        .unwrap();
    assert_eq!((page1.len(), page2.len()), (20, 10));
    assert_eq!(page2[0].id, "m20");
    let mut changed = items[3].clone();
    changed.title = None;
    changed.hidden = true;
    changed.categories = vec![];
    store
        .upsert_items(a.id, std::slice::from_ref(&changed))
        .await
        .unwrap();
    assert_eq!(store.get_item(a.id, "m03").await.unwrap().unwrap(), changed);

    // Feedback: keyed by (user, item, kind); later duplicates in a batch win; users created.
    let events = vec![
        event("u1", "m01", "view", None, 10),
        event("u1", "m02", "rating", Some(4.5), 11),
        event("u1", "m01", "view", None, 12),
        event("u2", "m01", "like", None, 13),
    ];
    store.insert_feedback(a.id, &events).await.unwrap();
    store.insert_feedback(a.id, &events).await.unwrap();
    assert_eq!(store.count_feedback(a.id).await.unwrap(), 3);
    assert_eq!(store.count_feedback(b.id).await.unwrap(), 0);
    let u1 = store.user_feedback(a.id, "u1", 10).await.unwrap();
    assert_eq!(u1[0], event("u1", "m01", "view", None, 12));
    assert_eq!(u1[1].value, Some(4.5));
    assert_eq!(
        store.all_user_ids(a.id).await.unwrap(),
        vec!["u1".to_string(), "u2".to_string()]
    );

    // Users: attributes, pages, deletion with feedback.
    store
        .upsert_users(
            a.id,
            &[UserRow {
                id: "u1".into(),
                attributes: json!({"plan": "pro"}),
                updated_at: 9,
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_user(a.id, "u1")
            .await
            .unwrap()
            .unwrap()
            .attributes,
        json!({"plan": "pro"})
    );
    assert_eq!(
        store.list_users(a.id, Some("u1"), 10).await.unwrap()[0].id,
        "u2"
    );
    assert!(store.delete_user(a.id, "u1").await.unwrap());
    assert!(!store.delete_user(a.id, "u1").await.unwrap());
    assert_eq!(store.count_feedback(a.id).await.unwrap(), 1);
    assert!(store.delete_item(a.id, "m01").await.unwrap());
    assert_eq!(store.count_feedback(a.id).await.unwrap(), 0);
    assert!(!store.delete_item(a.id, "m01").await.unwrap());

    // Experiments: impressions add up, each list counts once per outcome.
    let exp = ExperimentRow {
        id: "exp_1".into(),
        name: "test".into(),
        definition: json!({"variants": []}),
        status: "running".into(),
        created_at: 1,
        stopped_at: None,
    };
    store.insert_experiment(a.id, &exp).await.unwrap();
    assert_eq!(store.experiments(a.id).await.unwrap(), vec![exp]);
    assert!(store.experiments(b.id).await.unwrap().is_empty());
    store.add_impressions(a.id, "exp_1", 0, 5).await.unwrap();
    store.add_impressions(a.id, "exp_1", 0, 3).await.unwrap();
    store.add_impressions(a.id, "exp_1", 1, 4).await.unwrap();
    for _ in 0..2 {
        store
            .record_outcome(a.id, "exp_1", 1, "rec_a", "click")
            .await
            .unwrap();
    }
    store
        .record_outcome(a.id, "exp_1", 1, "rec_a", "conversion")
        .await
        .unwrap();
    store
        .record_outcome(a.id, "exp_1", 0, "rec_b", "click")
        .await
        .unwrap();
    let counts = store.experiment_counts(a.id, "exp_1").await.unwrap();
    assert_eq!(
        counts[&0],
        VariantCounts {
            impressions: 8,
            clicks: 1,
            conversions: 0
        }
    );
    assert_eq!(
        counts[&1],
        VariantCounts {
            impressions: 4,
            clicks: 1,
            conversions: 1
        }
    );
    assert!(store.stop_experiment(a.id, "exp_1").await.unwrap());
    assert!(!store.stop_experiment(a.id, "exp_1").await.unwrap());
    assert_eq!(store.experiments(a.id).await.unwrap()[0].status, "stopped");

    // A batch larger than one statement.
    let many: Vec<FeedbackRow> = (0..2_500)
        .map(|i| event(&format!("bulk{i}"), "m05", "view", Some(i as f64), i))
        .collect();
    store.insert_feedback(b.id, &many).await.unwrap();
    assert_eq!(store.count_feedback(b.id).await.unwrap(), 2_500);
    assert_eq!(store.all_feedback(b.id).await.unwrap().len(), 2_500);

    // Item embeddings: binary vectors round-trip, are replaced in place, and stay per tenant
    // and per model.
    let v1: Vec<u8> = (0..=255u8).collect();
    let v2: Vec<u8> = vec![0, 1, 2, 3];
    store
        .put_item_embeddings(a.id, "mini", &[("m01".into(), "h1".into(), v1.clone())])
        .await
        .unwrap();
    store
        .put_item_embeddings(
            a.id,
            "mini",
            &[
                ("m01".into(), "h2".into(), v2.clone()),
                ("m02".into(), "h3".into(), v1.clone()),
            ],
        )
        .await
        .unwrap();
    let mut rows = store.item_embeddings(a.id, "mini").await.unwrap();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("m01".to_string(), "h2".to_string(), v2),
            ("m02".to_string(), "h3".to_string(), v1)
        ]
    );
    assert!(
        store
            .item_embeddings(b.id, "mini")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .item_embeddings(a.id, "other")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    exercise(&store).await;
    // Reopening runs no migration twice and keeps the data.
    store.close().await;
    let again = Store::open_data_dir(dir.path()).await.unwrap();
    assert_eq!(again.list_tenants().await.unwrap().len(), 2);
}

#[tokio::test]
async fn postgres_backend() {
    let Ok(url) = std::env::var("MARQUEE_TEST_POSTGRES_URL") else {
        eprintln!("MARQUEE_TEST_POSTGRES_URL not set: PostgreSQL not tested");
        return;
    };
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    exercise(&store).await;
}

#[tokio::test]
async fn model_versions_count_up_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    let t = store.create_tenant("t").await.unwrap();
    let v = NewModelVersion {
        algorithm: json!({"algorithm": "ease"}),
        trained_at: 1,
        users: 2,
        items: 3,
        interactions: 4,
        train_ms: 5,
    };
    assert_eq!(store.record_model_version(t.id, &v).await.unwrap(), 1);
    assert_eq!(store.record_model_version(t.id, &v).await.unwrap(), 2);
    let versions = store.model_versions(t.id, 10).await.unwrap();
    assert_eq!(versions[0].version, 2);
    assert_eq!(versions[0].algorithm, json!({"algorithm": "ease"}));
}
