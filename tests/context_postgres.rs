//! The context server's whole suite (`tests/context.rs`) again, with its store on
//! PostgreSQL (`db: postgres://…`), plus what only a shared store has: replicas taking
//! turns on one session.

#[path = "context.rs"]
mod suite;

use serde_json::{Value, json};
use suite::support::{self, Served};

/// Two replicas on one database take turns on one session, and write to it at once: every
/// acknowledged entry is there, once, in the order the writes were acknowledged, read from
/// either replica; a write on one is in the other's next answer; a kill -9 of one loses
/// nothing it acknowledged.
#[tokio::test]
async fn replicas_share_one_store_and_keep_a_sessions_order() {
    let Some(db) = support::postgres_db("replicas_share_one_store") else {
        return;
    };
    let yaml = format!("db: {db}\n");
    let a = Served::start("context", Some(&yaml));
    let mut b = Served::start("context", Some(&yaml));
    let c = reqwest::Client::new();
    let client = c.clone();
    let post = move |url: String, content: String| {
        let c = client.clone();
        async move {
            let r = c
                .post(format!("{url}/v1/sessions/shared/entries"))
                .header("content-type", "application/json")
                .body(json!({"role": "user", "content": content}).to_string())
                .send()
                .await
                .expect("post");
            assert_eq!(r.status(), 201);
        }
    };
    let context = |url: String| {
        let c = c.clone();
        async move {
            let v: Value = c
                .get(format!(
                    "{url}/v1/sessions/shared/context?max_tokens=1000000"
                ))
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            v["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .map(|e| e["content"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        }
    };
    // Taking turns: each write is acknowledged before the next, alternating replicas; each
    // replica sees the other's write at once.
    for i in 0..200 {
        let (to, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        post(to.url.clone(), format!("turn {i}")).await;
        let seen = context(other.url.clone()).await;
        assert_eq!(seen.len(), i + 1, "the other replica missed a write");
        assert_eq!(seen[i], format!("turn {i}"));
    }
    // At once: 8 writers on each replica; every acknowledged write is there, once.
    let mut tasks = Vec::new();
    for w in 0..16 {
        let url = if w % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        let post = post.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                post(url.clone(), format!("w{w} {i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let from_a = context(a.url.clone()).await;
    let from_b = context(b.url.clone()).await;
    assert_eq!(from_a, from_b, "the replicas disagree");
    assert_eq!(from_a.len(), 600);
    for w in 0..16 {
        let mine: Vec<&String> = from_a
            .iter()
            .filter(|c| c.starts_with(&format!("w{w} ")))
            .collect();
        let expected: Vec<String> = (0..25).map(|i| format!("w{w} {i}")).collect();
        assert_eq!(
            mine,
            expected.iter().collect::<Vec<_>>(),
            "writer {w}'s order"
        );
    }
    // A replica killed: what it acknowledged stays, and the survivor goes on.
    b.kill();
    post(a.url.clone(), "after the kill".into()).await;
    let last = context(a.url.clone()).await;
    assert_eq!(last.len(), 601);
    assert_eq!(last[600], "after the kill");
}

/// An unreachable database stops the server at start with an error naming the URL, its
/// password masked.
#[test]
fn an_unreachable_database_is_named_with_its_password_masked() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("context.yaml");
    std::fs::write(&config, "db: postgres://app:hunter2@127.0.0.1:1/ctx\n").expect("write");
    let out = std::process::Command::new(support::stack_bin())
        .args(["serve", "context", "--port", "0", "--config"])
        .arg(&config)
        .output()
        .expect("serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the PostgreSQL database `postgres://app:***@127.0.0.1:1/ctx`"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}
