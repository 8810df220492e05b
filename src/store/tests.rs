//! Store tests: validation rules of SPEC §1 and the invariants the admin API relies on.

use super::*;
use crate::consent::MissingConsentPolicy;

fn me() -> Actor {
    Actor {
        id: "usr_test".into(),
        label: "test@example.com".into(),
    }
}

fn store() -> (tempfile::TempDir, ControlStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ControlStore::open(&dir.path().join("control.db")).unwrap();
    (dir, store)
}

fn dest(name: &str) -> NewDestination {
    NewDestination {
        name: name.into(),
        integration: name.into(),
        kind: "webhook".into(),
        settings: serde_json::json!({"url": "http://127.0.0.1:1/"}),
        enabled: true,
        enforce_consent: true,
    }
}

#[test]
fn category_id_rules() {
    let ok = ["C0001", "ad", "a", &"x".repeat(34), "Ä-ö_ü.1", "ta-1"];
    for id in ok {
        assert!(validate_category_id(id).is_ok(), "{id}");
    }
    let bad = [
        "",
        "0001",
        "9lives",
        &"x".repeat(35),
        "has space",
        "tab\t",
        "nl\n",
        "\u{7}bell",
    ];
    for id in bad {
        assert!(validate_category_id(id).is_err(), "{id:?}");
    }
    assert!(validate_category_name("Advertising").is_ok());
    assert!(validate_category_name(&"n".repeat(50)).is_ok());
    assert!(validate_category_name(&"n".repeat(51)).is_err());
    assert!(validate_category_name("   ").is_err());
}

#[tokio::test]
async fn categories_map_destinations_and_enforce_uniqueness() {
    let (_dir, store) = store();
    let fb = store
        .create_destination(dest("Facebook"), &me())
        .await
        .unwrap();
    let amp = store
        .create_destination(dest("Amplitude"), &me())
        .await
        .unwrap();
    let ad = store
        .create_category(
            NewCategory {
                id: "ad".into(),
                name: "Advertising".into(),
                destinations: vec![fb.id.clone()],
            },
            &me(),
        )
        .await
        .unwrap();
    assert_eq!(ad.destinations, vec![fb.id.clone()]);
    assert!(ad.enabled);

    // Same id, or same name ignoring case: conflict.
    let dup_id = store
        .create_category(
            NewCategory {
                id: "ad".into(),
                name: "Other".into(),
                destinations: vec![],
            },
            &me(),
        )
        .await;
    assert!(matches!(dup_id, Err(StoreError::Conflict(m)) if m.contains("id")));
    let dup_name = store
        .create_category(
            NewCategory {
                id: "ads".into(),
                name: "ADVERTISING".into(),
                destinations: vec![],
            },
            &me(),
        )
        .await;
    assert!(matches!(dup_name, Err(StoreError::Conflict(m)) if m.contains("name")));
    // Unknown destination ids are named.
    let unknown = store
        .create_category(
            NewCategory {
                id: "x".into(),
                name: "X".into(),
                destinations: vec!["dst_nope".into()],
            },
            &me(),
        )
        .await;
    assert!(matches!(unknown, Err(StoreError::Invalid(m)) if m.contains("dst_nope")));
    assert_eq!(
        store.categories().await.unwrap().len(),
        1,
        "failed creates leave nothing behind"
    );

    // Rename, re-id and remap.
    let (before, after) = store
        .update_category(
            "ad",
            CategoryPatch {
                id: Some("C0004".into()),
                name: None,
                destinations: Some(vec![amp.id.clone(), fb.id.clone()]),
            },
            &me(),
        )
        .await
        .unwrap();
    assert_eq!(before.id, "ad");
    assert_eq!(after.id, "C0004");
    let mut both = vec![amp.id.clone(), fb.id.clone()];
    both.sort();
    assert_eq!(after.destinations, both);

    // Disabling needs the exact name.
    assert!(matches!(
        store
            .set_category_enabled("C0004", false, Some("advertising".into()), &me())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .set_category_enabled("C0004", false, None, &me())
            .await,
        Err(StoreError::Invalid(_))
    ));
    let (_, disabled) = store
        .set_category_enabled("C0004", false, Some("Advertising".into()), &me())
        .await
        .unwrap();
    assert!(!disabled.enabled);
    let (_, enabled) = store
        .set_category_enabled("C0004", true, None, &me())
        .await
        .unwrap();
    assert!(enabled.enabled);

    // Deleting a destination removes it from mappings.
    store.delete_destination(&fb.id, &me()).await.unwrap();
    assert_eq!(
        store.category("C0004").await.unwrap().destinations,
        vec![amp.id.clone()]
    );
}

#[tokio::test]
async fn destination_keys_are_never_reused() {
    let (_dir, store) = store();
    let a = store.create_destination(dest("A"), &me()).await.unwrap();
    store.delete_destination(&a.id, &me()).await.unwrap();
    let b = store.create_destination(dest("B"), &me()).await.unwrap();
    assert!(
        b.key > a.key,
        "old log entries addressed to {} must not reach {}",
        a.key,
        b.key
    );
}

#[tokio::test]
async fn sources_and_workspace() {
    let (_dir, store) = store();
    let s = store
        .create_source(
            NewSource {
                name: "Web".into(),
                rate_limit_per_second: Some(10),
                missing_consent_policy: None,
                write_key: None,
            },
            &me(),
        )
        .await
        .unwrap();
    assert_eq!(s.write_key.len(), 32);
    assert!(s.enabled);
    let (_, after) = store
        .update_source(
            &s.id,
            SourcePatch {
                rate_limit_per_second: Some(None),
                missing_consent_policy: Some(Some(MissingConsentPolicy::Deny)),
                ..SourcePatch::default()
            },
            &me(),
        )
        .await
        .unwrap();
    assert_eq!(after.rate_limit_per_second, None);
    assert_eq!(
        after.missing_consent_policy,
        Some(MissingConsentPolicy::Deny)
    );
    assert!(matches!(
        store
            .create_source(
                NewSource {
                    name: "".into(),
                    rate_limit_per_second: None,
                    missing_consent_policy: None,
                    write_key: None
                },
                &me()
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    let (_, ws) = store
        .update_workspace(
            WorkspacePatch {
                dedup_window_hours: Some(48),
                ..Default::default()
            },
            &me(),
        )
        .await
        .unwrap();
    assert_eq!(ws.dedup_window_hours, 48);
    assert!(
        store
            .update_workspace(
                WorkspacePatch {
                    dedup_window_hours: Some(0),
                    ..Default::default()
                },
                &me()
            )
            .await
            .is_err()
    );
}

#[tokio::test]
async fn tokens_are_hashed_and_revocable() {
    let (dir, store) = store();
    let secret = store
        .bootstrap_owner(Some("my-bootstrap-token-123".into()), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secret, "my-bootstrap-token-123");
    assert_eq!(
        store.bootstrap_owner(None, None).await.unwrap(),
        None,
        "only on first start"
    );
    let (owner, token) = store.authenticate_token(&secret).await.unwrap().unwrap();
    assert_eq!(owner.role, Role::Owner);
    assert!(
        store
            .authenticate_token("my-bootstrap-token-124")
            .await
            .unwrap()
            .is_none()
    );

    // The secret is not stored anywhere in the database file.
    drop(store);
    let bytes = std::fs::read(dir.path().join("control.db")).unwrap();
    let wal = std::fs::read(dir.path().join("control.db-wal")).unwrap_or_default();
    let hay = [bytes, wal].concat();
    assert!(!hay.windows(secret.len()).any(|w| w == secret.as_bytes()));

    let store = ControlStore::open(&dir.path().join("control.db")).unwrap();
    store
        .revoke_token(&owner.id, &token.id, &me())
        .await
        .unwrap();
    assert!(store.authenticate_token(&secret).await.unwrap().is_none());
    // The last owner cannot be demoted or deleted.
    assert!(matches!(
        store
            .update_user(
                &owner.id,
                UserPatch {
                    role: Some(Role::Viewer),
                    ..Default::default()
                },
                &me()
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.delete_user(&owner.id, &me()).await,
        Err(StoreError::Conflict(_))
    ));
}

#[tokio::test]
async fn every_change_is_audited_with_distinct_category_actions() {
    let (_dir, store) = store();
    let fb = store
        .create_destination(dest("Facebook"), &me())
        .await
        .unwrap();
    let amp = store
        .create_destination(dest("Amplitude"), &me())
        .await
        .unwrap();
    store
        .create_category(
            NewCategory {
                id: "ad".into(),
                name: "Advertising".into(),
                destinations: vec![fb.id.clone()],
            },
            &me(),
        )
        .await
        .unwrap();
    store
        .update_category(
            "ad",
            CategoryPatch {
                name: Some("Ads".into()),
                destinations: Some(vec![amp.id.clone()]),
                ..Default::default()
            },
            &me(),
        )
        .await
        .unwrap();
    store
        .set_category_enabled("ad", false, Some("Ads".into()), &me())
        .await
        .unwrap();
    store
        .set_category_enabled("ad", true, None, &me())
        .await
        .unwrap();
    store.delete_category("ad", &me()).await.unwrap();
    let entries = store
        .audit(AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "destination.created",
            "destination.created",
            "category.created",
            "mapping.created",
            "category.modified",
            "mapping.created",
            "mapping.removed",
            "category.disabled",
            "category.enabled",
            "mapping.removed",
            "category.deleted",
        ]
    );
    assert!(entries.iter().all(|e| e.actor == me()));
    // A failed change leaves no entry.
    let before = entries.len();
    let _ = store
        .create_category(
            NewCategory {
                id: "0bad".into(),
                name: "x".into(),
                destinations: vec![],
            },
            &me(),
        )
        .await;
    assert_eq!(
        store
            .audit(AuditQuery {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        before
    );
    // Filters.
    let mapping = store
        .audit(AuditQuery {
            action: Some("mapping.removed".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mapping.len(), 2);
}

#[tokio::test]
async fn audit_retention_prunes_only_old_entries() {
    let (_dir, store) = store();
    store.create_destination(dest("A"), &me()).await.unwrap();
    store.create_destination(dest("B"), &me()).await.unwrap();
    let all = || {
        store.audit(AuditQuery {
            limit: 100,
            ..Default::default()
        })
    };
    assert_eq!(all().await.unwrap().len(), 2);
    // Nothing is older than an hour ago.
    assert_eq!(
        store
            .prune_audit(crate::clock::now_ms() - 3_600_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(all().await.unwrap().len(), 2);
    // Everything is older than a second from now.
    assert_eq!(
        store
            .prune_audit(crate::clock::now_ms() + 1_000)
            .await
            .unwrap(),
        2
    );
    assert!(all().await.unwrap().is_empty());
}
