//! Object storage: keys, names, compression, deletion, settings; a local directory end to end.

use serde_json::json;

use super::*;
use crate::destinations::{REDACTED, redact, restore_secrets};

fn ctx(dir: &std::path::Path) -> BuildContext {
    BuildContext {
        files_dir: dir.join("files"),
        allowed_file_dirs: vec![dir.join("extra")],
    }
}

fn record(seq: i64, received_at: i64, user: &str) -> Record {
    Record {
        seq,
        source: 1,
        received_at,
        message_id: format!("m{seq}"),
        user_id: Some(user.into()),
        anonymous_id: None,
        payload: format!(r#"{{"messageId":"m{seq}","userId":"{user}"}}"#).into_bytes(),
        held: false,
        intended: Vec::new(),
        system: false,
    }
}

/// 2026-11-25T14:30:00Z
const T: i64 = 1_795_617_000_000;

#[test]
fn keys_and_names() {
    assert_eq!(partition(T), "dt=2026-11-25/hour=14");
    assert_eq!(partition(T + 3_600_000 * 10), "dt=2026-11-26/hour=00");
    assert_eq!(partition(0), "dt=1970-01-01/hour=00");
    assert_eq!(
        object_key(Some("logs/web"), "dt=2026-11-25/hour=14", "n"),
        "logs/web/dt=2026-11-25/hour=14/n.jsonl.gz"
    );
    assert_eq!(object_key(None, "p", "n"), "p/n.jsonl.gz");
    let a = object_name(&record(1, T, "u"));
    let again = object_name(&record(1, T, "u"));
    let other = object_name(&record(2, T, "u"));
    assert_eq!(a, again, "the same first event gives the same name");
    assert_ne!(a, other);
    let uuid = uuid::Uuid::parse_str(&a).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    let (secs, _) = uuid.get_timestamp().unwrap().to_unix();
    assert_eq!(secs as i64, T / 1000);
    assert!(
        object_name(&record(1, T + 1, "u")) > a,
        "names sort by time"
    );
}

#[test]
fn compression_and_deletion_of_lines() {
    let lines: Vec<&[u8]> = vec![
        br#"{"userId":"alice","n":1}"#,
        br#"{"anonymousId":"anon-b","n":2}"#,
        br#"{"userId":"carol","n":3}"#,
    ];
    let gz = gzip_lines(lines.iter().copied()).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    let users: HashSet<&str> = ["alice"].into();
    let anons: HashSet<&str> = ["anon-b"].into();
    let (removed, body) = without_people(&gz, &users, &anons).unwrap().unwrap();
    assert_eq!(removed, 2);
    let mut text = String::new();
    flate2::read::GzDecoder::new(body.as_slice())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "{\"userId\":\"carol\",\"n\":3}\n");
    let nobody: HashSet<&str> = HashSet::new();
    assert!(without_people(&gz, &nobody, &nobody).unwrap().is_none());
    let everyone: HashSet<&str> = ["alice", "carol"].into();
    let (removed, body) = without_people(&gz, &everyone, &anons).unwrap().unwrap();
    assert_eq!(
        (removed, body.len()),
        (3, 0),
        "an emptied object is deleted"
    );
}

fn read_objects(root: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".jsonl.gz") {
                let mut text = String::new();
                flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
                    .read_to_string(&mut text)
                    .unwrap();
                let key = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(key, text.lines().map(str::to_owned).collect());
            }
        }
    }
    out
}

#[tokio::test]
async fn local_directory_partitions_retries_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let settings = ObjectStorageType
        .validate(&json!({"local": {"path": "archive"}}), &ctx)
        .unwrap();
    assert_eq!(
        settings,
        json!({"local": {"path": "archive"}, "batchSize": 1000})
    );
    let dest = ObjectStorageType.build(&settings, &ctx).unwrap();
    let batch = vec![
        record(1, T, "alice"),
        record(2, T + 1, "bob"),
        record(3, T + 3_600_000, "alice"),
    ];
    dest.deliver(&batch).await.unwrap();
    // A retry of the same batch rewrites the same objects.
    dest.deliver(&batch).await.unwrap();
    let root = dir.path().join("files/archive");
    let objects = read_objects(&root);
    assert_eq!(objects.len(), 2, "{objects:?}");
    let keys: Vec<&String> = objects.keys().collect();
    assert!(keys[0].starts_with("dt=2026-11-25/hour=14/"), "{keys:?}");
    assert!(keys[1].starts_with("dt=2026-11-25/hour=15/"), "{keys:?}");
    assert_eq!(
        objects.values().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 1]
    );
    let removed = dest
        .delete_people(&["alice".to_owned()], &[])
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let objects = read_objects(&root);
    assert_eq!(objects.len(), 1, "the emptied hour-15 object is gone");
    assert_eq!(
        objects.values().next().unwrap(),
        &vec![r#"{"messageId":"m2","userId":"bob"}"#.to_owned()]
    );
}

#[test]
fn settings_validation_and_redaction() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let bad = [
        json!({}),
        json!({"local": {"path": ""}}),
        json!({"local": {"path": "../out"}}),
        json!({"local": {"path": "/etc"}}),
        json!({"local": {"path": "a"}, "s3": {"bucket": "b-1"}}),
        json!({"local": {"path": "a", "prefix": "x"}}),
        json!({"local": {"path": "a"}, "batchSize": 0}),
        json!({"s3": {"bucket": "No_Caps"}}),
        json!({"s3": {"bucket": "ok-bucket", "endpoint": "ftp://x"}}),
        json!({"s3": {"bucket": "ok-bucket", "accessKeyId": "only-the-id"}}),
        json!({"s3": {"bucket": "ok-bucket", "prefix": "a/../b"}}),
        json!({"s3": {"bucket": "ok-bucket", "secret": "typo"}}),
    ];
    for settings in bad {
        assert!(
            ObjectStorageType.validate(&settings, &ctx).is_err(),
            "{settings}"
        );
    }
    let stored = ObjectStorageType
        .validate(
            &json!({"s3": {"bucket": "events", "endpoint": "http://127.0.0.1:9000",
                     "accessKeyId": "AKIA", "secretAccessKey": "shh", "prefix": "/logs/"}}),
            &ctx,
        )
        .unwrap();
    assert_eq!(
        stored,
        json!({"s3": {"bucket": "events", "region": "us-east-1", "endpoint": "http://127.0.0.1:9000",
                "accessKeyId": "AKIA", "secretAccessKey": "shh", "prefix": "/logs/"}, "batchSize": 1000})
    );
    let shown = redact(&ObjectStorageType, &stored);
    assert_eq!(shown["s3"]["secretAccessKey"], REDACTED);
    assert_eq!(shown["s3"]["accessKeyId"], "AKIA");
    let mut back = shown.clone();
    restore_secrets(&ObjectStorageType, &mut back, &stored);
    assert_eq!(back, stored);
    assert!(!ObjectStorageType.enforce_consent_default());
    ObjectStorageType.build(&stored, &ctx).unwrap();
}

#[tokio::test]
async fn unreachable_s3_is_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let settings = json!({"s3": {"bucket": "events", "endpoint": "http://127.0.0.1:9",
                           "accessKeyId": "a", "secretAccessKey": "b"}});
    let dest = ObjectStorageType
        .build(&settings, &ctx(dir.path()))
        .unwrap();
    match dest.deliver(&[record(1, T, "u")]).await {
        Err(DeliveryError::Retryable { message, .. }) => {
            assert!(message.contains("s3://events"), "{message}");
        }
        other => panic!("expected a retryable error, got {other:?}"),
    }
}
