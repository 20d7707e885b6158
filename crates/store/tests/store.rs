//! The same checks on every backend: SQLite always; PostgreSQL when `MARQUEE_TEST_POSTGRES_URL`
//! points at a database where the test may create a schema (e.g.
//! `postgres://marquee:marquee@127.0.0.1/marquee_test`). Each PostgreSQL run works in a schema of
//! its own, dropped at the end, so runs sharing the database do not see each other.

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

/// Every scenario, on one backend. `raw_url` opens a second connection to the same database, for
/// statements the store's API never runs.
async fn exercise(store: &Store, raw_url: &str) {
    catalogue_and_feedback(store).await;
    feedback_log(store).await;
    keys(store).await;
    settings_and_policies(store).await;
    usage(store, raw_url).await;
    audit(store, raw_url).await;
    data_keys(store).await;
    privacy(store).await;
}

/// Feedback is acknowledged in a log and folded into the keyed table later: every read and
/// delete sees what was logged before it, in order, and a fold never brings back what was
/// deleted.
async fn feedback_log(store: &Store) {
    let t = store.create_tenant("log").await.unwrap().id;
    let items: Vec<ItemRow> = ["a", "b", "c"].iter().map(|i| item(i, i)).collect();
    store.upsert_items(t, &items).await.unwrap();
    // Three batches on one key: the last one logged wins once folded, whatever its time.
    for (value, ts) in [(1.0, 30), (2.0, 10), (3.0, 20)] {
        store
            .insert_feedback(t, &[event("u", "a", "rating", Some(value), ts)])
            .await
            .unwrap();
    }
    let read = store.user_feedback(t, "u", 10).await.unwrap();
    assert_eq!(read, vec![event("u", "a", "rating", Some(3.0), 20)]);
    assert_eq!(store.fold_feedback().await.unwrap(), 0, "the read folded");

    // Logged events count as already there for Gorse-style inserts.
    store
        .insert_feedback(t, &[event("u", "b", "view", None, 1)])
        .await
        .unwrap();
    let inserted = store
        .insert_new_feedback(
            t,
            &[
                event("u", "b", "view", None, 2),
                event("u", "c", "view", None, 3),
            ],
        )
        .await
        .unwrap();
    assert_eq!(inserted, vec![event("u", "c", "view", None, 3)]);

    // Deleting an item takes its logged events with it; a later fold does not restore them.
    store
        .insert_feedback(t, &[event("v", "b", "view", None, 4)])
        .await
        .unwrap();
    assert!(store.delete_item(t, "b").await.unwrap());
    store.fold_feedback().await.unwrap();
    let all = store.all_feedback(t).await.unwrap();
    assert!(all.iter().all(|e| e.item_id != "b"), "{all:?}");
    assert_eq!(store.count_feedback(t).await.unwrap(), 2);

    // The same for a user's erasure.
    store
        .insert_feedback(t, &[event("w", "a", "view", None, 5)])
        .await
        .unwrap();
    assert_eq!(
        store.erase_user(t, "w", "hash-w", None, 6).await.unwrap(),
        Some(1)
    );
    store.fold_feedback().await.unwrap();
    assert!(store.user_feedback_all(t, "w").await.unwrap().is_empty());
}

async fn catalogue_and_feedback(store: &Store) {
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
        policy: None,
        expires_at: None,
        rotated_to: None,
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
                attributes: json!({"plan": "pro"}).to_string(),
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
        r#"{"plan":"pro"}"#
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

fn api_key(id: &str, tenant_id: i64, hash: &str) -> ApiKeyRow {
    ApiKeyRow {
        id: id.into(),
        tenant_id: Some(tenant_id),
        kind: "secret".into(),
        name: None,
        prefix: "mq_sk_".into(),
        hash: hash.into(),
        created_at: 1,
        revoked_at: None,
        last_used_at: None,
        policy: None,
        expires_at: None,
        rotated_to: None,
    }
}

/// Ids of the tenant's keys the key ring would load.
async fn active_ids(store: &Store, tenant_id: i64) -> Vec<String> {
    let mut ids: Vec<String> = store
        .active_api_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.tenant_id == Some(tenant_id))
        .map(|k| k.id)
        .collect();
    ids.sort();
    ids
}

async fn keys(store: &Store) {
    let t = store.create_tenant("keys").await.unwrap();
    let now = now_ms();

    // Policy and expiry round-trip; an expired key leaves the ring but is still found by hash.
    let with_policy = ApiKeyRow {
        policy: Some(r#"{"scopes":["recommend"]}"#.into()),
        expires_at: Some(now + 3_600_000),
        ..api_key("key_p", t.id, "hp")
    };
    store.insert_api_key(&with_policy).await.unwrap();
    assert_eq!(
        store.api_key_by_id("key_p").await.unwrap().unwrap(),
        with_policy
    );
    let expired = ApiKeyRow {
        expires_at: Some(now - 1),
        ..api_key("key_x", t.id, "hx")
    };
    store.insert_api_key(&expired).await.unwrap();
    assert_eq!(store.api_key_by_hash("hx").await.unwrap().unwrap(), expired);
    assert_eq!(active_ids(store, t.id).await, vec!["key_p"]);

    assert!(
        store
            .update_api_key_policy("key_p", Some("{}"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.api_key_by_id("key_p").await.unwrap().unwrap().policy,
        Some("{}".into())
    );
    assert!(store.update_api_key_policy("key_p", None).await.unwrap());
    assert_eq!(
        store.api_key_by_id("key_p").await.unwrap().unwrap().policy,
        None
    );
    assert!(
        !store
            .update_api_key_policy("key_none", Some("{}"))
            .await
            .unwrap()
    );

    // Rotation: the old key keeps working until the grace expiry and names its successor.
    let grace = now + 60_000;
    let new_key = api_key("key_p2", t.id, "hp2");
    assert!(
        store
            .rotate_api_key("key_p", &new_key, grace)
            .await
            .unwrap()
    );
    let old = store.api_key_by_id("key_p").await.unwrap().unwrap();
    assert_eq!(old.expires_at, Some(grace));
    assert_eq!(old.rotated_to.as_deref(), Some("key_p2"));
    assert_eq!(
        store.api_key_by_hash("hp2").await.unwrap().unwrap(),
        new_key
    );
    assert_eq!(active_ids(store, t.id).await, vec!["key_p", "key_p2"]);
    // Rotated once only; the second attempt inserts nothing.
    let again = api_key("key_p3", t.id, "hp3");
    assert!(!store.rotate_api_key("key_p", &again, grace).await.unwrap());
    assert!(store.api_key_by_id("key_p3").await.unwrap().is_none());
    // Missing or revoked keys are not rotated.
    assert!(
        !store
            .rotate_api_key("key_none", &again, grace)
            .await
            .unwrap()
    );
    store
        .insert_api_key(&api_key("key_r", t.id, "hr"))
        .await
        .unwrap();
    assert!(store.revoke_api_key("key_r").await.unwrap());
    assert!(!store.rotate_api_key("key_r", &again, grace).await.unwrap());
    assert!(
        !store
            .update_api_key_policy("key_r", Some("{}"))
            .await
            .unwrap()
    );
    assert!(store.api_key_by_id("key_p3").await.unwrap().is_none());
    // An earlier expiry is kept; a grace in the past takes the key out of the ring at once.
    store
        .insert_api_key(&ApiKeyRow {
            expires_at: Some(now + 1_000),
            ..api_key("key_e", t.id, "he")
        })
        .await
        .unwrap();
    assert!(
        store
            .rotate_api_key("key_e", &api_key("key_e2", t.id, "he2"), now + 9_000_000)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .api_key_by_id("key_e")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        Some(now + 1_000)
    );
    assert!(
        store
            .rotate_api_key("key_e2", &api_key("key_e3", t.id, "he3"), now - 5)
            .await
            .unwrap()
    );
    assert_eq!(
        active_ids(store, t.id).await,
        vec!["key_e", "key_e3", "key_p", "key_p2"]
    );
    // A failed insert of the new key leaves the old one untouched (same hash as key_p2).
    assert!(
        store
            .rotate_api_key("key_e3", &api_key("key_dup", t.id, "hp2"), now)
            .await
            .is_err()
    );
    assert_eq!(
        store
            .api_key_by_id("key_e3")
            .await
            .unwrap()
            .unwrap()
            .rotated_to,
        None
    );
}

async fn settings_and_policies(store: &Store) {
    assert_eq!(store.get_setting("prices").await.unwrap(), None);
    store.put_setting("prices", r#"{"v":1}"#).await.unwrap();
    store.put_setting("prices", r#"{"v":2}"#).await.unwrap();
    assert_eq!(
        store.get_setting("prices").await.unwrap().as_deref(),
        Some(r#"{"v":2}"#)
    );

    let t1 = store.create_tenant("policy-one").await.unwrap();
    let t2 = store.create_tenant("policy-two").await.unwrap();
    assert_eq!(store.tenant_policy(t1.id).await.unwrap(), None);
    store.put_tenant_policy(t2.id, "p2").await.unwrap();
    store.put_tenant_policy(t1.id, "p1").await.unwrap();
    store.put_tenant_policy(t1.id, "p1b").await.unwrap();
    assert_eq!(
        store.tenant_policy(t1.id).await.unwrap().as_deref(),
        Some("p1b")
    );
    assert_eq!(
        store.all_tenant_policies().await.unwrap(),
        vec![(t1.id, "p1b".to_string()), (t2.id, "p2".to_string())]
    );
}

const DAY: i64 = 86_400_000;

fn usage_row(
    id: &str,
    tenant_id: i64,
    key: Option<&str>,
    model: Option<&str>,
    at: i64,
) -> UsageRow {
    UsageRow {
        id: id.into(),
        tenant_id,
        key_id: key.map(Into::into),
        route: "/v1/chat/completions".into(),
        model: model.map(Into::into),
        units: [0, 10, 20, 0, 0, 0, 0],
        cost_nanos: 1_000,
        currency: "EUR".into(),
        latency_ms: 42,
        status: 200,
        request_id: Some(format!("req-{id}")),
        at,
    }
}

/// Runs `sql` on a connection of its own and returns the error the database answered.
async fn refused(raw_url: &str, sql: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(raw_url).await.unwrap();
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
    {
        Ok(done) => panic!("{sql} was accepted ({} rows)", done.rows_affected()),
        Err(e) => e.to_string(),
    }
}

async fn usage(store: &Store, raw_url: &str) {
    let t1 = store.create_tenant("usage-one").await.unwrap().id;
    let t2 = store.create_tenant("usage-two").await.unwrap().id;
    let day0 = 20_000 * DAY;

    // A streamed request reserves, then settles; a retried batch counts once.
    let reservation = UsageRow {
        units: [0, 10, 0, 0, 0, 0, 0],
        ..usage_row("r1", t1, Some("key_a"), Some("m1"), day0 + 10)
    };
    assert_eq!(
        store
            .write_usage(std::slice::from_ref(&reservation), &[])
            .await
            .unwrap(),
        0
    );
    let bigger = UsageRow {
        units: [0, 10, 5, 0, 0, 0, 0],
        ..reservation.clone()
    };
    store
        .write_usage(std::slice::from_ref(&bigger), &[])
        .await
        .unwrap();
    assert_eq!(store.pending_usage().await.unwrap(), vec![bigger.clone()]);
    let pending_only = usage_row("r9", t2, None, None, day0 + 20);
    store
        .write_usage(std::slice::from_ref(&pending_only), &[])
        .await
        .unwrap();

    let finals = vec![
        usage_row("r1", t1, Some("key_a"), Some("m1"), day0 + 10),
        usage_row("r2", t1, Some("key_b"), Some("m2"), day0 + 20),
        usage_row("r3", t1, None, None, day0 + DAY + 5),
        usage_row("r4", t2, Some("key_c"), Some("m1"), day0 + DAY + 5),
    ];
    assert_eq!(store.write_usage(&[], &finals).await.unwrap(), 4);
    assert_eq!(store.write_usage(&[], &finals).await.unwrap(), 0);
    let twice = vec![finals[0].clone(), finals[0].clone()];
    assert_eq!(store.write_usage(&[], &twice).await.unwrap(), 0);
    let fresh = usage_row("r5", t2, Some("key_c"), Some("m1"), day0 + 2 * DAY);
    assert_eq!(
        store
            .write_usage(&[], &[fresh.clone(), fresh.clone()])
            .await
            .unwrap(),
        1
    );
    // The settled reservation is gone; the other is still pending.
    assert_eq!(
        store.pending_usage().await.unwrap(),
        vec![pending_only.clone()]
    );

    // A reservation and its final in one batch: the final wins, nothing stays pending.
    let both = usage_row("r6", t2, Some("key_c"), Some("m1"), day0 + 2 * DAY + 1);
    assert_eq!(
        store
            .write_usage(std::slice::from_ref(&both), std::slice::from_ref(&both))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.pending_usage().await.unwrap(), vec![pending_only]);

    // Summaries over [day0, day0 + 3 days).
    let all = UsageFilter {
        tenant_id: None,
        key_id: None,
        from_ms: day0,
        to_ms: day0 + 3 * DAY,
    };
    let total = store
        .usage_summary(&all, UsageGroupBy::Total)
        .await
        .unwrap();
    assert_eq!(
        total,
        vec![UsageSummaryRow {
            group: None,
            requests: 6,
            units: [0, 60, 120, 0, 0, 0, 0],
            cost_nanos: 6_000,
        }]
    );
    let groups = |rows: Vec<UsageSummaryRow>| -> Vec<(Option<String>, i64)> {
        rows.into_iter().map(|r| (r.group, r.requests)).collect()
    };
    let s = |v: &str| Some(v.to_string());
    let day_index = day0 / DAY;
    assert_eq!(
        groups(store.usage_summary(&all, UsageGroupBy::Day).await.unwrap()),
        vec![
            (Some(day_index.to_string()), 2),
            (Some((day_index + 1).to_string()), 2),
            (Some((day_index + 2).to_string()), 2),
        ]
    );
    assert_eq!(
        groups(store.usage_summary(&all, UsageGroupBy::Key).await.unwrap()),
        vec![(None, 1), (s("key_a"), 1), (s("key_b"), 1), (s("key_c"), 3)]
    );
    assert_eq!(
        groups(
            store
                .usage_summary(&all, UsageGroupBy::Model)
                .await
                .unwrap()
        ),
        vec![(None, 1), (s("m1"), 4), (s("m2"), 1)]
    );
    assert_eq!(
        groups(
            store
                .usage_summary(&all, UsageGroupBy::Route)
                .await
                .unwrap()
        ),
        vec![(s("/v1/chat/completions"), 6)]
    );
    assert_eq!(
        groups(
            store
                .usage_summary(&all, UsageGroupBy::Tenant)
                .await
                .unwrap()
        ),
        vec![(Some(t1.to_string()), 3), (Some(t2.to_string()), 3)]
    );
    let one_key = UsageFilter {
        tenant_id: Some(t2),
        key_id: Some("key_c".into()),
        from_ms: day0 + DAY,
        to_ms: day0 + 2 * DAY,
    };
    assert_eq!(
        groups(
            store
                .usage_summary(&one_key, UsageGroupBy::Total)
                .await
                .unwrap()
        ),
        vec![(None, 1)]
    );
    let nothing = UsageFilter {
        tenant_id: Some(t1),
        from_ms: day0 + 5 * DAY,
        to_ms: day0 + 6 * DAY,
        ..UsageFilter::default()
    };
    assert_eq!(
        store
            .usage_summary(&nothing, UsageGroupBy::Total)
            .await
            .unwrap()[0]
            .requests,
        0
    );
    assert!(
        store
            .usage_summary(&nothing, UsageGroupBy::Day)
            .await
            .unwrap()
            .is_empty()
    );

    // Pages in (at, id) order; r3 and r4 share a timestamp and are ordered by id.
    let page1 = store.usage_rows(&all, None, 3).await.unwrap();
    let ids = |rows: &[UsageRow]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&page1), vec!["r1", "r2", "r3"]);
    assert_eq!(page1[0], finals[0]);
    let cursor = page1.last().map(|r| (r.at, r.id.clone()));
    let page2 = store.usage_rows(&all, cursor, 3).await.unwrap();
    assert_eq!(ids(&page2), vec!["r4", "r5", "r6"]);
    let cursor = page2.last().map(|r| (r.at, r.id.clone()));
    assert!(store.usage_rows(&all, cursor, 3).await.unwrap().is_empty());
    let t1_only = UsageFilter {
        tenant_id: Some(t1),
        ..all.clone()
    };
    assert_eq!(
        ids(&store.usage_rows(&t1_only, None, 10).await.unwrap()),
        vec!["r1", "r2", "r3"]
    );

    // Totals since day 1 per (tenant, key), the pending reservation included.
    let totals = store.usage_totals_since(day0 + DAY).await.unwrap();
    let unit = [0, 10, 20, 0, 0, 0, 0];
    assert_eq!(
        totals
            .iter()
            .filter(|(t, ..)| *t == t1 || *t == t2)
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            (t1, None, unit, 1_000),
            (
                t2,
                Some("key_c".to_string()),
                [0, 30, 60, 0, 0, 0, 0],
                3_000
            ),
        ]
    );
    let totals = store.usage_totals_since(day0).await.unwrap();
    assert!(totals.contains(&(t2, None, unit, 1_000)));

    // A batch of several statements.
    let bulk: Vec<UsageRow> = (0..450)
        .map(|i| {
            usage_row(
                &format!("bulk{i:04}"),
                t1,
                Some("key_bulk"),
                None,
                day0 + 4 * DAY + i,
            )
        })
        .collect();
    assert_eq!(store.write_usage(&bulk, &[]).await.unwrap(), 0);
    assert_eq!(store.pending_usage().await.unwrap().len(), 451);
    assert_eq!(store.write_usage(&[], &bulk).await.unwrap(), 450);
    assert_eq!(store.write_usage(&[], &bulk).await.unwrap(), 0);
    assert_eq!(store.pending_usage().await.unwrap().len(), 1);
    let bulk_filter = UsageFilter {
        tenant_id: Some(t1),
        key_id: Some("key_bulk".into()),
        from_ms: day0 + 4 * DAY,
        to_ms: day0 + 5 * DAY,
    };
    assert_eq!(
        store
            .usage_summary(&bulk_filter, UsageGroupBy::Total)
            .await
            .unwrap()[0]
            .cost_nanos,
        450_000
    );
    assert_eq!(
        store
            .usage_rows(&bulk_filter, None, usize::MAX)
            .await
            .unwrap()
            .len(),
        450
    );

    // The ledger is append-only in the database itself.
    let mut forbidden = vec![
        "UPDATE usage_ledger SET cost_nanos = 0",
        "DELETE FROM usage_ledger",
    ];
    if raw_url.starts_with("postgres") {
        forbidden.push("TRUNCATE usage_ledger");
    }
    for sql in forbidden {
        let error = refused(raw_url, sql).await;
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(
        store
            .usage_summary(&all, UsageGroupBy::Total)
            .await
            .unwrap(),
        total
    );
}

async fn audit(store: &Store, raw_url: &str) {
    let t1 = store.create_tenant("audit-one").await.unwrap().id;
    let t2 = store.create_tenant("audit-two").await.unwrap().id;
    let entry = |tenant_id: Option<i64>, action: &str, at: i64| NewAudit {
        tenant_id,
        key_id: Some("key_admin".into()),
        action: action.into(),
        target: Some("key_1".into()),
        detail: Some(r#"{"name":"x"}"#.into()),
        remote: Some("10.0.0.1".into()),
        at,
    };
    let mut ids = Vec::new();
    for e in [
        entry(Some(t1), "key.create", 100),
        entry(Some(t1), "key.revoke", 200),
        entry(Some(t1), "keys.list", 300),
        entry(Some(t1), "KEY.create", 350),
        entry(Some(t2), "key.create", 400),
        entry(None, "settings.update", 500),
    ] {
        ids.push(store.append_audit(&e).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let list = |filter: AuditFilter| async move {
        store
            .list_audit(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect::<Vec<_>>()
    };
    let first = store
        .list_audit(&AuditFilter {
            tenant_id: Some(t1),
            limit: 1,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        first,
        vec![AuditRow {
            id: ids[3],
            tenant_id: Some(t1),
            key_id: Some("key_admin".into()),
            action: "KEY.create".into(),
            target: Some("key_1".into()),
            detail: Some(r#"{"name":"x"}"#.into()),
            remote: Some("10.0.0.1".into()),
            at: 350,
        }]
    );
    assert_eq!(
        list(AuditFilter {
            tenant_id: Some(t1),
            limit: 10,
            ..AuditFilter::default()
        })
        .await,
        vec!["KEY.create", "keys.list", "key.revoke", "key.create"]
    );
    // A prefix ends with '.', is case-sensitive and does not match `keys.`.
    assert_eq!(
        list(AuditFilter {
            tenant_id: Some(t1),
            action: Some("key.".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await,
        vec!["key.revoke", "key.create"]
    );
    assert_eq!(
        list(AuditFilter {
            tenant_id: Some(t1),
            action: Some("key.create".into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await,
        vec!["key.create"]
    );
    // Time range [from, to) and the paging cursor.
    assert_eq!(
        list(AuditFilter {
            tenant_id: Some(t1),
            from_ms: Some(200),
            to_ms: Some(350),
            limit: 10,
            ..AuditFilter::default()
        })
        .await,
        vec!["keys.list", "key.revoke"]
    );
    assert_eq!(
        list(AuditFilter {
            tenant_id: Some(t1),
            before_id: Some(ids[2]),
            limit: 10,
            ..AuditFilter::default()
        })
        .await,
        vec!["key.revoke", "key.create"]
    );
    // No tenant: every tenant and the operator's entries.
    let everything = store
        .list_audit(&AuditFilter {
            limit: usize::MAX,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(everything[0].tenant_id, None);
    assert_eq!(everything[0].action, "settings.update");
    assert!(everything.iter().any(|r| r.tenant_id == Some(t2)));
    assert!(
        store
            .list_audit(&AuditFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    let mut forbidden = vec![
        "UPDATE audit_log SET action = 'nothing'",
        "DELETE FROM audit_log",
    ];
    if raw_url.starts_with("postgres") {
        forbidden.push("TRUNCATE audit_log");
    }
    for sql in forbidden {
        let error = refused(raw_url, sql).await;
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(
        store
            .list_audit(&AuditFilter {
                limit: usize::MAX,
                ..AuditFilter::default()
            })
            .await
            .unwrap(),
        everything
    );
}

async fn data_keys(store: &Store) {
    let t1 = store.create_tenant("dek-one").await.unwrap().id;
    let t2 = store.create_tenant("dek-two").await.unwrap().id;
    assert_eq!(store.data_key(t1).await.unwrap(), None);
    let first = ("m1".to_string(), "w1".to_string());
    assert_eq!(store.insert_data_key(t1, "m1", "w1").await.unwrap(), first);
    // The first key stays: a second writer gets the stored one back.
    assert_eq!(
        store.insert_data_key(t1, "m1", "other").await.unwrap(),
        first
    );
    store.insert_data_key(t2, "m1", "w2").await.unwrap();
    let all = store.all_data_keys().await.unwrap();
    assert!(all.contains(&(t1, "m1".into(), "w1".into())));
    assert!(all.contains(&(t2, "m1".into(), "w2".into())));

    // Compare-and-swap: the stale entry for t2 changes nothing.
    let changed = store
        .rewrap_data_keys(&[
            (t1, "w1".into(), "m2".into(), "w1'".into()),
            (t2, "stale".into(), "m2".into(), "w2'".into()),
        ])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    assert_eq!(
        store.data_key(t1).await.unwrap(),
        Some(("m2".into(), "w1'".into()))
    );
    assert_eq!(
        store.data_key(t2).await.unwrap(),
        Some(("m1".into(), "w2".into()))
    );
}

async fn privacy(store: &Store) {
    let t = store.create_tenant("privacy").await.unwrap().id;
    let other = store.create_tenant("privacy-other").await.unwrap().id;
    store
        .insert_feedback(
            t,
            &[
                event("alice", "i2", "view", None, 20),
                event("alice", "i1", "like", None, 10),
                event("alice", "i1", "view", None, 10),
                event("bob", "i1", "view", None, 30),
            ],
        )
        .await
        .unwrap();
    store
        .insert_feedback(other, &[event("alice", "i1", "view", None, 5)])
        .await
        .unwrap();
    store
        .upsert_users(
            t,
            &[UserRow {
                id: "carol".into(),
                attributes: "not json: ciphertext".into(),
                updated_at: 7,
            }],
        )
        .await
        .unwrap();

    // Access: every event of the user, oldest first.
    let alice = store.user_feedback_all(t, "alice").await.unwrap();
    assert_eq!(
        alice,
        vec![
            event("alice", "i1", "like", None, 10),
            event("alice", "i1", "view", None, 10),
            event("alice", "i2", "view", None, 20),
        ]
    );

    // Attributes are rewritten as stored text without touching updated_at.
    let before = store.get_user(t, "carol").await.unwrap().unwrap();
    let changed = store
        .set_user_attributes(
            t,
            &[
                ("carol".into(), "enc:first".into()),
                ("nobody".into(), "enc:x".into()),
                ("carol".into(), "enc:carol".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let after = store.get_user(t, "carol").await.unwrap().unwrap();
    assert_eq!(after.attributes, "enc:carol");
    assert_eq!(after.updated_at, before.updated_at);
    // Oldest first: carol's row was created at her updated_at (7), the others at the time of
    // their first feedback.
    let users = store.all_users(t).await.unwrap();
    assert_eq!(
        users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        vec!["carol", "alice", "bob"]
    );
    assert_eq!(users[0], after);
    assert!(store.get_user(other, "carol").await.unwrap().is_none());
    let many: Vec<(String, String)> = (0..450)
        .map(|i| (format!("ghost{i}"), "enc".to_string()))
        .chain(std::iter::once(("bob".to_string(), "enc:bob".to_string())))
        .collect();
    assert_eq!(store.set_user_attributes(t, &many).await.unwrap(), 1);

    // Erasure: feedback and user row go, a record stays; the other tenant is untouched.
    assert_eq!(
        store
            .erase_user(t, "alice", "hash-alice", Some("key_1"), 1_000)
            .await
            .unwrap(),
        Some(3)
    );
    assert!(
        store
            .user_feedback_all(t, "alice")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.get_user(t, "alice").await.unwrap().is_none());
    assert_eq!(
        store.user_feedback_all(other, "alice").await.unwrap().len(),
        1
    );
    assert_eq!(
        store
            .erase_user(t, "alice", "hash-alice", None, 2_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .erase_user(t, "carol", "hash-carol", None, 3_000)
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        store.user_erasures(t, 10).await.unwrap(),
        vec![
            ("hash-carol".to_string(), None, 0, 3_000),
            (
                "hash-alice".to_string(),
                Some("key_1".to_string()),
                3,
                1_000
            ),
        ]
    );
    assert_eq!(store.user_erasures(t, 1).await.unwrap().len(), 1);
    assert!(store.user_erasures(other, 10).await.unwrap().is_empty());
    assert_eq!(store.all_feedback(t).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    let raw_url = format!("sqlite://{}", dir.path().join("marquee.db").display());
    exercise(&store, &raw_url).await;
    // Reopening runs no migration twice and keeps the data.
    let tenants = store.list_tenants().await.unwrap();
    store.close().await;
    let again = Store::open_data_dir(dir.path()).await.unwrap();
    assert_eq!(again.list_tenants().await.unwrap(), tenants);
}

#[tokio::test]
async fn postgres_backend() {
    let Ok(url) = std::env::var("MARQUEE_TEST_POSTGRES_URL") else {
        eprintln!("MARQUEE_TEST_POSTGRES_URL not set: PostgreSQL not tested");
        return;
    };
    use sqlx::Connection;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("marquee_test_{}_{nanos}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    // Run in a task so that the schema is dropped even when an assertion fails.
    let outcome = tokio::spawn(async move {
        let store = Store::open(&scoped).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        exercise(&store, &scoped).await;
        // Opening again applies no migration twice.
        let tenants = store.list_tenants().await.unwrap();
        store.close().await;
        let again = Store::open(&scoped).await.unwrap();
        assert_eq!(again.list_tenants().await.unwrap(), tenants);
        again.close().await;
    })
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
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
