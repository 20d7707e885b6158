//! The `marquee` binary as an operator uses it: real processes, real data from `../shared/data`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{client, marquee, spawn_serve, wait_ready};

/// `../shared/data` beside the repository (or `MARQUEE_SHARED_DATA`).
fn shared_data() -> PathBuf {
    let dir = std::env::var_os("MARQUEE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    assert!(
        dir.join("ml-100k/u.data").exists(),
        "the shared datasets are missing at {}",
        dir.display()
    );
    dir
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
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
    stdout: Vec<String>,
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = marquee();
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args);
        // Models only where a test asks for them: loading them and embedding a catalogue in the
        // background would slow the other tests down.
        if !args.contains(&"--models-dir") {
            cmd.arg("--no-models");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (child, base, stdout) = spawn_serve(cmd, Duration::from_secs(120));
        Server {
            child,
            base,
            stdout,
        }
    }

    fn wait_ready(&self) {
        wait_ready(&self.base, Duration::from_secs(180));
    }

    fn get(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = client().get(format!("{}{}", self.base, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn help_is_available_for_every_subcommand() {
    let top = run_ok(marquee().arg("--help"));
    for sub in ["serve", "import", "train", "eval", "tenants", "keys"] {
        assert!(top.contains(sub), "{sub} missing from --help");
        let help = run_ok(marquee().args([sub, "--help"]));
        assert!(help.contains("Usage: marquee"), "{sub} --help: {help}");
    }
    let keys_create = run_ok(marquee().args(["keys", "create", "--help"]));
    assert!(keys_create.contains("publishable") && keys_create.contains("--tenant"));
}

#[test]
fn tenants_and_keys_are_managed_from_the_cli_with_or_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let created = run_ok(marquee().args(["tenants", "create", "acme", "--data-dir", data]));
    assert_eq!(created.trim(), "acme");
    let key = run_ok(marquee().args([
        "keys",
        "create",
        "--tenant",
        "acme",
        "--kind",
        "secret",
        "--data-dir",
        data,
    ]));
    let key = key.trim().to_string();
    assert!(
        key.starts_with("mq_sk_") && !key.contains(' '),
        "only the key on stdout: {key:?}"
    );
    // A duplicate tenant and an unknown tenant are errors.
    assert!(
        !marquee()
            .args(["tenants", "create", "acme", "--data-dir", data])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(
        !marquee()
            .args([
                "keys",
                "create",
                "--tenant",
                "nobody",
                "--kind",
                "secret",
                "--data-dir",
                data
            ])
            .output()
            .unwrap()
            .status
            .success()
    );

    let server = Server::start(
        &["--data-dir", data],
        &[("MARQUEE_ADMIN_KEY", "mq_cli_test_operator_0123456789")],
    );
    let (s, _) = server.get("/v1/items", Some(&key));
    assert_eq!(s, 200);
    let (s, _) = server.get("/v1/items", None);
    assert_eq!(s, 401);
    // A key created while the server runs works at once.
    let publishable = run_ok(marquee().args([
        "keys",
        "create",
        "--tenant",
        "acme",
        "--kind",
        "publishable",
        "--data-dir",
        data,
    ]));
    let (s, _) = server.get("/v1/popular", Some(publishable.trim()));
    assert_eq!(s, 200);
    // Revoked from the CLI: refused within the poll interval.
    let listed = run_ok(marquee().args(["keys", "list", "--tenant", "acme", "--data-dir", data]));
    assert!(!listed.contains(&key), "secrets never listed");
    let id = listed
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|k| k["kind"] == "secret")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    run_ok(marquee().args(["keys", "revoke", &id, "--data-dir", data]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _) = server.get("/v1/items", Some(&key));
        if s == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "revoked key still accepted");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The operator key from the environment manages tenants.
    let (s, body) = server.get("/v1/admin/tenants", Some("mq_cli_test_operator_0123456789"));
    assert_eq!(s, 200);
    assert_eq!(body["tenants"][0]["name"], "acme");
}

/// Sends a request with a JSON body; returns the status and the JSON answer.
fn send(base: &str, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn the_master_key_rotates_without_downtime_and_a_wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let old = dir.path().join("old.key");
    let new = dir.path().join("new.key");
    run_ok(marquee().args(["keys", "generate-master", "--out", old.to_str().unwrap()]));
    run_ok(marquee().args(["keys", "generate-master", "--out", new.to_str().unwrap()]));
    // Refuses to overwrite a key.
    assert!(
        !marquee()
            .args(["keys", "generate-master", "--out", old.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );
    run_ok(marquee().args(["tenants", "create", "acme", "--data-dir", data]));
    let key = run_ok(marquee().args([
        "keys",
        "create",
        "--tenant",
        "acme",
        "--kind",
        "secret",
        "--data-dir",
        data,
    ]));
    let key = key.trim();
    let secret = "planted-attribute-7f3a9c";
    let tenant_key = |tenant: &str| {
        run_ok(marquee().args(["tenants", "create", tenant, "--data-dir", data]));
        let key = run_ok(marquee().args([
            "keys",
            "create",
            "--tenant",
            tenant,
            "--kind",
            "secret",
            "--data-dir",
            data,
        ]));
        key.trim().to_string()
    };
    let put_user = |base: &str, key: &str, user: &str| {
        let (s, b) = send(
            base,
            "PUT",
            &format!("/v1/users/{user}"),
            key,
            Some(serde_json::json!({"attributes": {"email": secret}})),
        );
        assert_eq!(s, 200, "{b}");
    };
    let read_back = |base: &str, key: &str, user: &str| {
        let (s, b) = send(base, "GET", &format!("/v1/users/{user}"), key, None);
        assert_eq!(
            (s, &b["attributes"]["email"]),
            (200, &Value::from(secret)),
            "{user}: {b}"
        );
    };
    // A tenant whose user data an earlier run wrote, and which the server below does not touch
    // before the rotation.
    let globex = tenant_key("globex");
    let on_old_key = || {
        Server::start(
            &[
                "--data-dir",
                data,
                "--master-key-file",
                old.to_str().unwrap(),
            ],
            &[],
        )
    };
    let earlier = on_old_key();
    put_user(&earlier.base, &globex, "g1");
    drop(earlier);

    let server = on_old_key();
    put_user(&server.base, key, "u1");
    let db = std::fs::read(Path::new(data).join("marquee.db")).unwrap();
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the attribute is sealed"
    );

    // Rotate while the server runs: it keeps serving the user's data.
    let out = marquee()
        .args([
            "keys",
            "rotate-master",
            "--new-key-file",
            new.to_str().unwrap(),
            "--master-key-file",
            old.to_str().unwrap(),
            "--data-dir",
            data,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("re-wrapped 2 data key"));
    read_back(&server.base, key, "u1");
    // The tenant it had not touched yet is served too (its data key was opened at start).
    read_back(&server.base, &globex, "g1");
    // A tenant created now, by a server still on the old key, has its data key wrapped by the
    // old key: a restart with the new key and the old one as the previous key opens it and
    // re-wraps it under the new one, so the next start needs the new key only.
    let initech = tenant_key("initech");
    put_user(&server.base, &initech, "i1");
    drop(server);
    let server = Server::start(
        &[
            "--data-dir",
            data,
            "--master-key-file",
            new.to_str().unwrap(),
            "--previous-master-key-file",
            old.to_str().unwrap(),
        ],
        &[],
    );
    read_back(&server.base, &initech, "i1");
    drop(server);

    // Restarted with the new key: the data reads back.
    let server = Server::start(
        &[
            "--data-dir",
            data,
            "--master-key-file",
            new.to_str().unwrap(),
        ],
        &[],
    );
    let (s, b) = send(&server.base, "GET", "/v1/users/u1", key, None);
    assert_eq!(
        (s, &b["attributes"]["email"]),
        (200, &Value::from(secret)),
        "{b}"
    );
    drop(server);

    // The old key alone no longer opens the data: the server refuses to start.
    let out = marquee()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-models",
            "--data-dir",
            data,
            "--master-key-file",
            old.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not open the stored data keys"), "{err}");

    // The rotation is in the audit log.
    let server = Server::start(
        &[
            "--data-dir",
            data,
            "--master-key-file",
            new.to_str().unwrap(),
        ],
        &[("MARQUEE_ADMIN_KEY", "mq_cli_test_operator_0123456789")],
    );
    let (s, log) = server.get(
        "/v1/audit?action=master_key.rotate",
        Some("mq_cli_test_operator_0123456789"),
    );
    assert_eq!(s, 200, "{log}");
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    assert_eq!(log["data"][0]["remote"], "cli");
}

#[test]
fn a_generated_admin_key_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first = Server::start(&["--data-dir", data], &[]);
    let line = first
        .stdout
        .iter()
        .find(|l| l.contains("admin key"))
        .expect("admin key printed on first start")
        .clone();
    let key = line.rsplit(' ').next().unwrap().to_string();
    assert!(key.starts_with("mq_ak_"));
    let (s, _) = first.get("/v1/admin/tenants", Some(&key));
    assert_eq!(s, 200);
    drop(first);
    let second = Server::start(&["--data-dir", data], &[]);
    assert!(
        !second.stdout.iter().any(|l| l.contains("admin key")),
        "printed only once: {:?}",
        second.stdout
    );
    let (s, _) = second.get("/v1/admin/tenants", Some(&key));
    assert_eq!(s, 200);
}

#[test]
fn movielens_100k_import_serves_unseen_items_and_sensible_neighbours() {
    let ml = shared_data().join("ml-100k");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let started = Instant::now();
    run_ok(marquee().args([
        "import",
        "movielens",
        ml.to_str().unwrap(),
        "--tenant",
        "ml",
        "--data-dir",
        data,
    ]));
    let import_secs = started.elapsed().as_secs_f64();
    assert!(import_secs < 60.0, "import took {import_secs:.1}s");
    let key = run_ok(marquee().args([
        "keys",
        "create",
        "--tenant",
        "ml",
        "--kind",
        "secret",
        "--data-dir",
        data,
    ]));
    let key = key.trim();

    // Training from the CLI reports a version.
    let report: Value = serde_json::from_str(&run_ok(marquee().args([
        "train",
        "--tenant",
        "ml",
        "--data-dir",
        data,
    ])))
    .unwrap();
    assert_eq!(report["items"], 1682);
    assert_eq!(report["interactions"], 100_000);

    let server = Server::start(&["--data-dir", data], &[]);
    server.wait_ready();
    // The server started from the model the CLI trained, without retraining.
    let (_, status) = server.get("/v1/training", Some(key));
    assert_eq!(status["current"]["version"], report["version"], "{status}");
    assert_eq!(status["versions"].as_array().unwrap().len(), 1, "{status}");

    // Every user's recommendations exclude what they rated.
    let mut rated: HashMap<String, HashSet<String>> = HashMap::new();
    for line in std::fs::read_to_string(ml.join("u.data")).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        rated
            .entry(f[0].to_string())
            .or_default()
            .insert(f[1].to_string());
    }
    assert_eq!(rated.len(), 943);
    for (user, seen) in &rated {
        let (s, recs) = server.get(&format!("/v1/recommend/{user}?n=10"), Some(key));
        assert_eq!(s, 200);
        let recs = recs.as_array().unwrap();
        assert_eq!(recs.len(), 10, "user {user}");
        for r in recs {
            let id = r["item_id"].as_str().unwrap();
            assert!(
                !seen.contains(id),
                "user {user} was recommended {id}, which they rated"
            );
            assert!(r["title"].is_string());
        }
    }

    // Star Wars (1977) is item 50: its neighbours are its sequels and Raiders.
    let (s, similar) = server.get("/v1/items/50/similar?n=5", Some(key));
    assert_eq!(s, 200);
    let titles: Vec<&str> = similar
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["title"].as_str().unwrap())
        .collect();
    for expected in [
        "Return of the Jedi (1983)",
        "Empire Strikes Back, The (1980)",
        "Raiders of the Lost Ark (1981)",
    ] {
        assert!(
            titles.contains(&expected),
            "{expected} not among {titles:?}"
        );
    }
    // Genres became categories.
    let (_, item) = server.get("/v1/items/50", Some(key));
    assert_eq!(
        item["categories"],
        json!(["Action", "Adventure", "Romance", "Sci-Fi", "War"])
    );

    // A model trained by the CLI while the server runs is adopted by the server.
    let knn: Value = serde_json::from_str(&run_ok(marquee().args([
        "train",
        "--tenant",
        "ml",
        "--data-dir",
        data,
        "--model",
        r#"{"algorithm":"item_knn","neighbors":50,"shrinkage":10}"#,
    ])))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, status) = server.get("/v1/training", Some(key));
        if status["current"]["version"] == knn["version"] {
            assert_eq!(status["current"]["algorithm"]["algorithm"], "item_knn");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the CLI's model was not adopted: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (s, recs) = server.get("/v1/recommend/1?n=10", Some(key));
    assert_eq!(s, 200);
    assert_eq!(recs.as_array().unwrap().len(), 10);
}

#[test]
fn generic_interaction_logs_import() {
    let lastfm = shared_data().join("hetrec2011-lastfm-2k/user_artists.dat");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = marquee()
        .args([
            "import",
            "interactions",
            lastfm.to_str().unwrap(),
            "--tenant",
            "music",
            "--type",
            "play",
            "--data-dir",
            data,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("92834 feedback events"));
    // A malformed file names its line and imports nothing.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "user,item,value\nu1,i1,1\nu2,i2,lots\n").unwrap();
    let out = marquee()
        .args([
            "import",
            "interactions",
            bad.to_str().unwrap(),
            "--tenant",
            "other",
            "--data-dir",
            data,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.csv:3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_import_into_a_running_server_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    run_ok(marquee().args(["tenants", "create", "live", "--data-dir", data]));
    let key = run_ok(marquee().args([
        "keys",
        "create",
        "--tenant",
        "live",
        "--kind",
        "secret",
        "--data-dir",
        data,
    ]));
    let key = key.trim();
    let server = Server::start(&["--data-dir", data], &[]);
    assert_eq!(server.get("/v1/items/i1", Some(key)).0, 404);
    let log = dir.path().join("log.csv");
    std::fs::write(
        &log,
        "user,item,type\nu1,i1,view\nu1,i2,view\nu2,i1,view\nu2,i3,view\nu3,i2,like\n",
    )
    .unwrap();
    run_ok(marquee().args([
        "import",
        "interactions",
        log.to_str().unwrap(),
        "--tenant",
        "live",
        "--data-dir",
        data,
    ]));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (s, recs) = server.get("/v1/recommend/u3?n=2", Some(key));
        if s == 200 && recs.as_array().is_some_and(|a| a.len() == 2) {
            let ids: Vec<&str> = recs
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["item_id"].as_str().unwrap())
                .collect();
            assert!(!ids.contains(&"i2"), "u3's own item is excluded: {ids:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import did not reach the running server: {recs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.get("/v1/items/i1", Some(key)).0, 200);
}

/// The models directory `scripts/test` pulls into (`marquee models pull`).
fn models_dir() -> PathBuf {
    let dir = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(marquee_models::pull::default_models_dir);
    assert!(
        dir.join("smollm2-135m-instruct").is_dir(),
        "the models are not in {}: run `marquee models pull` (scripts/test does)",
        dir.display()
    );
    dir
}

#[test]
fn the_openai_python_package_works_against_marquee() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    run_ok(marquee().args(["tenants", "create", "studio", "--data-dir", data]));
    let key = run_ok(marquee().args([
        "keys",
        "create",
        "--tenant",
        "studio",
        "--kind",
        "secret",
        "--data-dir",
        data,
    ]));
    let models = models_dir();
    let server = Server::start(
        &["--data-dir", data, "--models-dir", models.to_str().unwrap()],
        &[],
    );
    server.wait_ready();
    let (s, ready) = server.get("/readyz", None);
    assert_eq!(s, 200, "{ready}");
    assert_eq!(ready["models"].as_array().unwrap().len(), 5, "{ready}");
    let python = std::env::var("MARQUEE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py"))
        .env("MARQUEE_BASE", &server.base)
        .env(
            "MARQUEE_SAMPLES",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples"),
        )
        .env("MARQUEE_KEY", key.trim())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the openai client script failed (is `openai` installed? scripts/test installs it): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_demo_answers_the_specification_snippet() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&["--demo", "--data-dir", dir.path().to_str().unwrap()], &[]);
    assert!(
        server.stdout.iter().any(|l| l.contains("curl http://")),
        "prints an example: {:?}",
        server.stdout
    );
    server.wait_ready();
    // A secret key of the demo tenant is printed for the SDK examples; it reads profiles.
    let demo_key = server
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("Demo tenant key: "))
        .unwrap_or_else(|| panic!("prints the demo key: {:?}", server.stdout))
        .to_string();
    let (s, profile) = server.get("/v1/users/1/profile", Some(&demo_key));
    assert_eq!(s, 200, "{profile}");
    assert!(profile["item_id"].is_string(), "{profile}");
    assert!(
        !profile["interests"].as_array().unwrap().is_empty(),
        "{profile}"
    );

    // User 1 of ml-latest-small and one of their films (Toy Story): 10 real titles, none rated by them.
    let ratings = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/ml-latest-small/ratings.csv"),
    )
    .unwrap();
    let seen: HashSet<String> = ratings
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("1,"))
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();
    assert!(seen.contains("1"));

    let snippet = format!(
        r#"
import requests

def recommend(user_id, item_id):
    # call the API, get the user's recommendation list
    response = requests.get(f'{base}/recommend/{{user_id}}/{{item_id}}')
    return response.json()

def main():
    user_data = {{"user_id": 1, "item_id": 1}}
    recommendations = recommend(user_data['user_id'], user_data['item_id'])
    for item in recommendations:
        print(item['item_id'] + "\t" + item['title'])

main()
"#,
        base = server.base
    );
    let python = std::env::var("MARQUEE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(&snippet)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the snippet failed (is `requests` installed? scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 10, "{printed}");
    let movies = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo/ml-latest-small/movies.csv"),
    )
    .unwrap();
    for line in lines {
        let (id, title) = line.split_once('\t').unwrap();
        assert!(!seen.contains(id), "{title} was already rated by user 1");
        assert!(
            movies.contains(title),
            "{title:?} is a real title of the catalogue"
        );
    }
    // Only the read-only recommend routes are public.
    assert_eq!(server.get("/v1/recommend/1", None).0, 200);
    assert_eq!(server.get("/v1/items/1/similar", None).0, 200);
    assert_eq!(server.get("/v1/popular", None).0, 200);
    assert_eq!(server.get("/v1/items", None).0, 401);
    assert_eq!(server.get("/v1/users/1", None).0, 401);
    let resp = client()
        .post(format!("{}/v1/feedback", server.base))
        .json(&json!([{"user_id": "1", "item_id": "1", "type": "view"}]))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&["--data-dir", dir.path().to_str().unwrap()], &[]);
    assert_eq!(server.get("/healthz", None).0, 200);
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn eval_follows_its_contract() {
    let ml = shared_data().join("ml-100k/u.data");
    let out = marquee()
        .args([
            "eval",
            "--ratings",
            ml.to_str().unwrap(),
            "--format",
            "movielens-100k",
            "--protocol",
            "item-stratified",
            "--model",
            "ease",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("only JSON on stdout");
    for field in [
        "model",
        "users",
        "items",
        "train_interactions",
        "test_users",
        "ndcg@10",
        "precision@10",
        "recall@10",
        "recall@20",
        "train_seconds",
    ] {
        assert!(!report[field].is_null(), "{field} missing: {report}");
    }
    assert!(report["ndcg@10"].as_f64().unwrap() > 0.45, "{report}");

    // Bad input: exit code 2, a message on stderr, nothing on stdout.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "1\t2\t3\n1\tx\n").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "--ratings".into(),
            bad.to_str().unwrap().into(),
            "--format".into(),
            "triples".into(),
            "--protocol".into(),
            "user-holdout".into(),
        ],
        vec![
            "--ratings".into(),
            "/nonexistent".into(),
            "--format".into(),
            "triples".into(),
            "--protocol".into(),
            "user-holdout".into(),
        ],
        vec![
            "--ratings".into(),
            ml.to_str().unwrap().into(),
            "--format".into(),
            "parquet".into(),
            "--protocol".into(),
            "user-holdout".into(),
        ],
        vec![
            "--ratings".into(),
            ml.to_str().unwrap().into(),
            "--format".into(),
            "triples".into(),
            "--protocol".into(),
            "random".into(),
        ],
        vec![
            "--ratings".into(),
            ml.to_str().unwrap().into(),
            "--format".into(),
            "movielens-100k".into(),
            "--protocol".into(),
            "user-holdout".into(),
            "--model".into(),
            "magic".into(),
        ],
    ];
    for args in cases {
        let out = marquee()
            .arg("eval")
            .args(&args)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
        assert!(!out.stderr.is_empty());
    }
    let out = marquee()
        .args([
            "eval",
            "--ratings",
            bad.to_str().unwrap(),
            "--format",
            "triples",
            "--protocol",
            "user-holdout",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(":2:"),
        "names the line: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
