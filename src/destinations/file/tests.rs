//! File destination: lines, rotation, path rules.

use super::*;

fn ctx(dir: &Path) -> BuildContext {
    BuildContext {
        files_dir: dir.join("files"),
        allowed_file_dirs: vec![dir.join("extra")],
    }
}

fn record(n: i64, size: usize) -> Record {
    Record {
        seq: n,
        source: 1,
        received_at: 0,
        message_id: format!("m{n}"),
        user_id: Some("u".into()),
        anonymous_id: None,
        payload: format!(r#"{{"messageId":"m{n}","pad":"{}"}}"#, "x".repeat(size)).into_bytes(),
        held: false,
        intended: Vec::new(),
        system: false,
    }
}

#[tokio::test]
async fn appends_lines_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    let settings = FileType
        .validate(
            &serde_json::json!({"path": "out/events.jsonl", "rotateBytes": 2048}),
            &ctx,
        )
        .unwrap();
    let dest = FileType.build(&settings, &ctx).unwrap();
    for n in 0..10 {
        dest.deliver(&[record(n * 2, 300), record(n * 2 + 1, 300)])
            .await
            .unwrap();
    }
    let out = dir.path().join("files/out");
    let mut lines = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 2, "rotated into several files: {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.len() as u64 <= 2048 || text.lines().count() == 2,
            "{} is {} bytes",
            file.display(),
            text.len()
        );
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            lines.push(
                v["messageId"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('m')
                    .parse::<i64>()
                    .unwrap(),
            );
        }
    }
    lines.sort();
    assert_eq!(
        lines,
        (0..20).collect::<Vec<_>>(),
        "every event exactly once across rotated files"
    );
}

#[test]
fn paths_stay_inside_allowed_directories() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path());
    assert_eq!(
        resolve_path("a/b.jsonl", &ctx).unwrap(),
        dir.path().join("files/a/b.jsonl")
    );
    assert!(resolve_path("../escape.jsonl", &ctx).is_err());
    assert!(resolve_path("/etc/passwd", &ctx).is_err());
    let extra = dir.path().join("extra/x.jsonl");
    assert_eq!(resolve_path(extra.to_str().unwrap(), &ctx).unwrap(), extra);
    assert!(
        FileType
            .validate(&serde_json::json!({"path": ""}), &ctx)
            .is_err()
    );
    assert!(
        FileType
            .validate(&serde_json::json!({"path": "x", "rotateBytes": 1}), &ctx)
            .is_err()
    );
    assert!(
        FileType
            .validate(&serde_json::json!({"path": "x", "extra": 1}), &ctx)
            .is_err()
    );
}
