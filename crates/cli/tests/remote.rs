//! `marquee remote …` against a real `marquee serve` process: feedback sent from CSV and JSON
//! lines files, recommendations, similar items, a profile and usage read back through the SDK.

use std::process::{Child, Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

mod common;
use common::{client, marquee, spawn_serve};

const OPERATOR: &str = "mq_remote_test_operator_0123456789";

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A `marquee serve` process; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &str) -> Server {
        let mut cmd = marquee();
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--no-models"])
            .args(["--data-dir", data])
            .env("MARQUEE_ADMIN_KEY", OPERATOR);
        let (child, base, _) = spawn_serve(cmd, Duration::from_secs(120));
        Server { child, base }
    }

    fn send(&self, method: &str, path: &str, key: &str, body: Value) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = client()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(&body)
            .timeout(Duration::from_secs(120))
            .send()
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Trains a model on everything sent so far. `train?wait=true` that finds a training
    /// already running (the tenant's first, started in the background by its first writes)
    /// answers with that training's outcome, which predates the last writes (or failed for lack
    /// of data): the second request trains on all of them.
    fn train(&self, key: &str) {
        let _ = client()
            .post(format!("{}/v1/models/train?wait=true", self.base))
            .bearer_auth(key)
            .timeout(Duration::from_secs(120))
            .send()
            .unwrap();
        let trained = self.send("POST", "/v1/models/train?wait=true", key, json!({}));
        assert_eq!(trained["status"], "trained", "{trained}");
    }

    /// `marquee remote ARGS` against this server, with `key` in the environment.
    fn remote(&self, key: &str, args: &[&str]) -> Output {
        run(marquee()
            .arg("remote")
            .args(args)
            .env("MARQUEE_BASE_URL", &self.base)
            .env("MARQUEE_API_KEY", key))
    }

    fn remote_ok(&self, key: &str, args: &[&str]) -> String {
        let out = self.remote(key, args);
        assert!(
            out.status.success(),
            "remote {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn remote_commands_drive_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    run_ok(marquee().args(["tenants", "create", "films", "--data-dir", data]));
    let key = run_ok(marquee().args([
        "keys",
        "create",
        "--tenant",
        "films",
        "--kind",
        "secret",
        "--data-dir",
        data,
    ]))
    .trim()
    .to_string();
    let server = Server::start(data);
    server.send(
        "POST",
        "/v1/items",
        &key,
        json!([
            {"id": "alien", "title": "Alien", "categories": ["Sci-Fi", "Horror"]},
            {"id": "aliens", "title": "Aliens", "categories": ["Sci-Fi", "Action"]},
            {"id": "terminator", "title": "The Terminator", "categories": ["Sci-Fi", "Action"]},
            {"id": "t2", "title": "Terminator 2", "categories": ["Sci-Fi", "Action"]},
            {"id": "heat", "title": "Heat", "categories": ["Crime", "Drama"]},
            {"id": "casino", "title": "Casino", "categories": ["Crime", "Drama"]},
            {"id": "amelie", "title": "Amélie", "categories": ["Comedy", "Romance"]}
        ]),
    );

    // Feedback from a CSV file with a header (in batches of 4) and from JSON lines.
    let csv = dir.path().join("views.csv");
    let mut text = String::from("user_id,item_id,type,value,timestamp\n");
    let views: &[(&str, &[&str])] = &[
        ("ann", &["alien", "aliens", "terminator"]),
        ("bob", &["alien", "aliens", "t2", "terminator"]),
        ("cat", &["heat", "casino", "amelie"]),
    ];
    for (user, items) in views {
        for (n, item) in items.iter().enumerate() {
            text.push_str(&format!("{user},{item},view,,{}\n", 1_700_000_000 + n));
        }
    }
    std::fs::write(&csv, text).unwrap();
    let sent = server.remote_ok(
        &key,
        &["send-feedback", csv.to_str().unwrap(), "--batch-size", "4"],
    );
    assert_eq!(lines(&sent), vec![json!({"accepted": 10})]);
    let jsonl = dir.path().join("more.jsonl");
    std::fs::write(
        &jsonl,
        "{\"user_id\": \"eve\", \"item_id\": \"aliens\", \"type\": \"view\"}\n\n\
         {\"user_id\": \"eve\", \"item_id\": \"t2\", \"type\": \"like\"}\n\
         {\"user_id\": \"fay\", \"item_id\": \"heat\", \"type\": \"view\"}\n\
         {\"user_id\": \"fay\", \"item_id\": \"casino\", \"type\": \"rating\", \"value\": 4.5}\n",
    )
    .unwrap();
    let sent = server.remote_ok(&key, &["send-feedback", jsonl.to_str().unwrap()]);
    assert_eq!(lines(&sent), vec![json!({"accepted": 4})]);
    server.train(&key);

    // Recommendations: one JSON object per line, best first, seen films left out.
    let recs = lines(&server.remote_ok(&key, &["recommend", "ann", "--n", "3"]));
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["item_id"], "t2", "{recs:?}");
    assert_eq!(recs[0]["title"], "Terminator 2");
    for r in &recs {
        assert!(!["alien", "aliens", "terminator"].contains(&r["item_id"].as_str().unwrap()));
        assert_eq!(r["recommendation_id"], recs[0]["recommendation_id"]);
    }
    let crime = lines(&server.remote_ok(
        &key,
        &["recommend", "ann", "--category", "Crime", "--n", "5"],
    ));
    let mut crime: Vec<&str> = crime
        .iter()
        .map(|r| r["item_id"].as_str().unwrap())
        .collect();
    crime.sort();
    assert_eq!(crime, vec!["casino", "heat"]);
    let table = server.remote_ok(
        &key,
        &[
            "recommend",
            "ann",
            "--item",
            "terminator",
            "--n",
            "2",
            "--format",
            "table",
        ],
    );
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].starts_with("RANK") && rows[0].contains("ITEM_ID"),
        "{table}"
    );
    assert!(rows[1].trim_start().starts_with("1 "), "{table}");

    let similar = lines(&server.remote_ok(&key, &["similar", "heat", "--n", "2"]));
    assert_eq!(similar[0]["item_id"], "casino", "{similar:?}");

    let profile = lines(&server.remote_ok(&key, &["profile", "ann"]));
    assert_eq!(profile[0]["user_id"], "ann");
    assert_eq!(profile[0]["item_id"], "terminator");
    assert_eq!(profile[0]["history"].as_array().unwrap().len(), 3);

    // Four recommend calls so far, on today's line of the usage report.
    let usage = lines(&server.remote_ok(&key, &["usage", "--group-by", "day"]));
    assert_eq!(usage[0]["total"]["requests"], 4, "{usage:?}");
    assert_eq!(usage[0]["data"].as_array().unwrap().len(), 1);

    // Errors: the server's status and code on stderr, a failing exit, and never the key.
    let wrong = "mq_sk_wrong_key_for_remote_0123456789";
    let out = server.remote(wrong, &["recommend", "ann"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401 unauthorized"), "{stderr}");
    assert!(!stderr.contains(wrong), "{stderr}");
    let out = server.remote(&key, &["recommend", "ann", "--n", "0"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid argument `n`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.remote(
        &key,
        &[
            "send-feedback",
            dir.path().join("nope.csv").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());

    // The key in the environment is not shown by --help.
    let help = server.remote_ok(&key, &["--help"]);
    assert!(
        help.contains("MARQUEE_API_KEY") && !help.contains(&key),
        "{help}"
    );
}
