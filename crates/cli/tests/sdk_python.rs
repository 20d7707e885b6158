//! The Python SDK (`sdk/python`) against the real `marquee` binary: its unittest suite on a
//! fresh server with a small catalogue, its model calls on a server with the models loaded, the
//! specification's flow (`import marquee as example_sdk`) on `marquee serve --demo`, and a strict
//! type check of its sources (`mypy --strict`).
//!
//! The suite imports the package as its users do: this tree, installed by `pip install` into a
//! fresh directory (never `sdk/python/src` on `sys.path`), so it also tests the packaging
//! (`py.typed`). It needs `httpx`, which `pip install ./sdk/python` brings, and the type check
//! needs mypy (scripts/test installs both).

use std::collections::HashSet;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

mod common;
use common::{client, spawn_serve, wait_ready};

const ADMIN_KEY: &str = "mq_sdk_python_operator_0123456789";
const TENANT: &str = "sdk";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> String {
    std::env::var("MARQUEE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails with what to do when the SDK's one dependency is missing.
fn require_httpx() {
    let out = Command::new(python())
        .args(["-c", "import httpx"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Python SDK needs httpx, which is not installed for {}: run \
         `python3 -m pip install ./sdk/python` (scripts/test does)\n{}",
        python(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// This tree's SDK as `pip install` installs it, in a fresh directory under the target directory
/// (its `site`: what `PYTHONPATH` names for the tests). Built once per test process, from a copy
/// of the sources, since pip builds in the source tree.
fn installed_sdk() -> &'static Path {
    static SITE: OnceLock<PathBuf> = OnceLock::new();
    SITE.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_installs(tmp);
        let root = tmp.join(format!("sdk-python-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let source = root.join("source");
        let tree = repo().join("sdk/python");
        std::fs::create_dir_all(&source).unwrap();
        for file in ["pyproject.toml", "README.md"] {
            std::fs::copy(tree.join(file), source.join(file)).unwrap();
        }
        copy_sources(&tree.join("src"), &source.join("src"));
        let site = root.join("site");
        let out = Command::new(python())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-deps", "--target"])
            .arg(&site)
            .arg(&source)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "pip install of sdk/python failed:\n{}",
            transcript(&out)
        );
        assert!(
            site.join("marquee/py.typed").is_file(),
            "the installed package has no py.typed (see [tool.setuptools.package-data])"
        );
        site
    })
}

/// `src` without what builds and runs leave there.
fn copy_sources(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name == "__pycache__" || name.ends_with(".egg-info") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_sources(&entry.path(), &to.join(&*name));
        } else {
            std::fs::copy(entry.path(), to.join(&*name)).unwrap();
        }
    }
}

/// Installs that earlier runs left (a test process cannot remove its own at exit).
fn remove_stale_installs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| {
            SystemTime::now()
                .duration_since(t)
                .is_ok_and(|age| age > Duration::from_secs(6 * 3600))
        });
        if stale
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with("sdk-python-")
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A `marquee serve` process on an ephemeral port; killed on drop.
struct Server {
    child: Child,
    base: String,
    stdout: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        // No tuning in the background: the tests' expectations hold for the default model, and
        // a tuned one could be swapped in at any moment.
        let config = dir.path().join("marquee.toml");
        std::fs::write(&config, "[service]\nauto_tune = false\n").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_marquee"));
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("MARQUEE_DATA_DIR")
            .env_remove("MARQUEE_DATABASE_URL")
            .env_remove("MARQUEE_MASTER_KEY")
            .env_remove("MARQUEE_MASTER_KEY_FILE")
            .env("MARQUEE_ADMIN_KEY", ADMIN_KEY)
            // The master key file goes here, not into the home of whoever runs the tests.
            .env("XDG_CONFIG_HOME", dir.path().join("config"));
        let (child, base, stdout) = spawn_serve(cmd, Duration::from_secs(180));
        Server {
            child,
            base,
            stdout,
            _dir: dir,
        }
    }

    fn wait_ready(&self) {
        wait_ready(&self.base, Duration::from_secs(300));
    }

    fn send(&self, method: &str, path: &str, key: &str, body: Value) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = client()
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Tenant `sdk` with a secret and a publishable key, eight films, six viewers, trained.
    /// (`sdk/python/tests/_support.py` describes the same catalogue.)
    fn seed(&self) -> (String, String) {
        self.send(
            "POST",
            "/v1/admin/tenants",
            ADMIN_KEY,
            json!({"name": TENANT}),
        );
        let key = |kind: &str| {
            self.send(
                "POST",
                &format!("/v1/admin/tenants/{TENANT}/keys"),
                ADMIN_KEY,
                json!({"kind": kind, "name": format!("python sdk tests ({kind})")}),
            )["key"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (secret, publishable) = (key("secret"), key("publishable"));
        self.send(
            "POST",
            "/v1/items",
            &secret,
            json!([
                {"id": "alien", "title": "Alien", "categories": ["Sci-Fi", "Horror"], "metadata": {"year": 1979}},
                {"id": "aliens", "title": "Aliens", "categories": ["Sci-Fi", "Action"], "metadata": {"year": 1986}},
                {"id": "terminator", "title": "The Terminator", "categories": ["Sci-Fi", "Action"], "metadata": {"year": 1984}},
                {"id": "t2", "title": "Terminator 2", "categories": ["Sci-Fi", "Action"], "metadata": {"year": 1991}},
                {"id": "heat", "title": "Heat", "categories": ["Crime", "Drama"], "metadata": {"year": 1995}},
                {"id": "casino", "title": "Casino", "categories": ["Crime", "Drama"], "metadata": {"year": 1995}},
                {"id": "amelie", "title": "Amélie", "categories": ["Comedy", "Romance"], "metadata": {"year": 2001}},
                {"id": "clueless", "title": "Clueless", "categories": ["Comedy"], "metadata": {"year": 1995}}
            ]),
        );
        let views: &[(&str, &[&str])] = &[
            ("ann", &["alien", "aliens", "terminator"]),
            ("bob", &["alien", "aliens", "t2", "terminator"]),
            ("cat", &["heat", "casino", "amelie"]),
            ("dan", &["heat", "casino", "clueless", "amelie"]),
            ("fay", &["heat", "casino"]),
            ("eve", &["aliens", "t2", "terminator"]),
        ];
        let mut events = Vec::new();
        for (user, items) in views {
            for (n, item) in items.iter().enumerate() {
                events.push(json!({"user_id": user, "item_id": item, "type": "view",
                                   "timestamp": 1_700_000_000 + n as i64}));
            }
        }
        self.send("POST", "/v1/feedback", &secret, Value::Array(events));
        self.send("POST", "/v1/models/train?wait=true", &secret, json!({}));
        (secret, publishable)
    }

    /// Runs the SDK's unittest suite (`pattern` selects modules) against this server.
    fn run_suite(&self, secret: &str, publishable: &str, pattern: &str, models: bool) -> String {
        let mut cmd = Command::new(python());
        cmd.current_dir(repo())
            .args(["-m", "unittest", "discover", "-s", "sdk/python/tests"])
            .args(["-p", pattern, "-v"])
            .env("MARQUEE_BASE_URL", &self.base)
            .env("MARQUEE_API_KEY", secret)
            .env("MARQUEE_PUBLISHABLE_KEY", publishable)
            .env("MARQUEE_ADMIN_KEY", ADMIN_KEY)
            .env("MARQUEE_TENANT", TENANT)
            .env("MARQUEE_SAMPLES", repo().join("../shared/samples"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // The installed package, and `_support.py` checks that it is the one imported.
            .env("PYTHONPATH", installed_sdk())
            .env("MARQUEE_SDK_INSTALLED", installed_sdk())
            .env_remove("MARQUEE_USER_ID");
        if models {
            cmd.env("MARQUEE_TEST_MODELS", "1");
        } else {
            cmd.env_remove("MARQUEE_TEST_MODELS");
        }
        let out = cmd.output().expect("python3 runs");
        let text = transcript(&out);
        assert!(
            out.status.success(),
            "the Python SDK's tests failed:\n{text}"
        );
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn transcript(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The tests unittest skipped, from its `-v` transcript.
fn skipped(transcript: &str) -> Vec<&str> {
    transcript
        .lines()
        .filter(|l| l.contains(" ... skipped"))
        .collect()
}

#[test]
fn the_python_sdk_suite_passes_against_a_real_server() {
    require_httpx();
    let server = Server::start(&["--no-models"]);
    let (secret, publishable) = server.seed();
    let out = server.run_suite(&secret, &publishable, "test_*.py", false);
    // Everything ran but the model calls, which have their own server below.
    let skipped = skipped(&out);
    assert!(
        skipped.iter().all(|l| l.contains("test_models.")),
        "only the model tests may be skipped here:\n{out}"
    );
    assert!(
        out.contains("test_client.") && out.contains("test_async.") && out.contains("\nOK"),
        "{out}"
    );
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
fn the_python_sdk_calls_the_models() {
    require_httpx();
    let models = models_dir();
    let server = Server::start(&["--models-dir", models.to_str().unwrap()]);
    server.wait_ready();
    let (secret, publishable) = server.seed();
    let out = server.run_suite(&secret, &publishable, "test_models.py", true);
    assert!(skipped(&out).is_empty(), "nothing skipped:\n{out}");
    assert!(out.contains("\nOK"), "{out}");
}

#[test]
fn the_specification_flow_runs_against_the_demo() {
    require_httpx();
    let server = Server::start(&["--demo", "--no-models"]);
    let key = server
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("Demo tenant key: "))
        .unwrap_or_else(|| panic!("the demo prints its key: {:?}", server.stdout))
        .trim()
        .to_string();
    assert!(key.starts_with("mq_sk_"), "{key}");
    server.wait_ready();

    // Titles of the catalogue, and of the films user 1 rated (never recommended to them).
    let demo = repo().join("demo/ml-latest-small");
    let mut titles = std::collections::HashMap::new();
    for row in csv::Reader::from_path(demo.join("movies.csv"))
        .unwrap()
        .records()
    {
        let row = row.unwrap();
        titles.insert(row[0].to_string(), row[1].to_string());
    }
    let mut rated = HashSet::new();
    for row in csv::Reader::from_path(demo.join("ratings.csv"))
        .unwrap()
        .records()
    {
        let row = row.unwrap();
        if &row[0] == "1" {
            rated.insert(titles[&row[1]].clone());
        }
    }
    let known: HashSet<&String> = titles.values().collect();

    // The snippet as written (a bare `recommend`), and the same through the module.
    let flows = [
        "import marquee as example_sdk\nfrom marquee import recommend\n\n\
         user_data = example_sdk.get_user_data()           # the user's interests and history\n\
         recommendations = recommend(user_data['user_id'], user_data['item_id'])\n\
         for item in recommendations:\n    print(item['title'])\n",
        "import marquee as example_sdk\n\n\
         user_data = example_sdk.get_user_data()\n\
         recommendations = example_sdk.recommend(user_data['user_id'], user_data['item_id'])\n\
         for item in recommendations:\n    print(item['title'])\n",
    ];
    for flow in flows {
        let out = Command::new(python())
            .args(["-c", flow])
            .env("PYTHONPATH", installed_sdk())
            .env("MARQUEE_BASE_URL", &server.base)
            .env("MARQUEE_API_KEY", &key)
            .env("MARQUEE_USER_ID", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "the flow failed:\n{}",
            transcript(&out)
        );
        let printed = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 10, "ten titles:\n{printed}");
        assert_eq!(
            lines.iter().collect::<HashSet<_>>().len(),
            10,
            "distinct:\n{printed}"
        );
        for title in lines {
            assert!(
                known.contains(&title.to_string()),
                "{title:?} is a title of the catalogue"
            );
            assert!(!rated.contains(title), "{title:?} was rated by user 1");
        }
    }
}

/// mypy, which scripts/test installs (pinned), runs as `python3 -m mypy`.
fn require_mypy() {
    let out = Command::new(python())
        .args(["-m", "mypy", "--version"])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Python SDK's type check needs mypy, which is not installed for {}: run \
         `python3 -m pip install mypy==2.4.1` (scripts/test does)\n{}",
        python(),
        transcript(&out)
    );
}

#[test]
fn the_python_sdk_type_checks_strictly() {
    require_httpx();
    require_mypy();
    let cache = tempfile::tempdir().unwrap();
    // From sdk/python, so that pyproject.toml's [tool.mypy] applies.
    let out = Command::new(python())
        .current_dir(repo().join("sdk/python"))
        .args(["-m", "mypy", "--strict", "--cache-dir"])
        .arg(cache.path())
        .arg("src/marquee")
        .env_remove("MYPYPATH")
        .env_remove("PYTHONPATH")
        .output()
        .expect("python3 runs");
    let text = transcript(&out);
    assert!(
        out.status.success(),
        "mypy --strict on sdk/python/src:\n{text}"
    );
    assert!(text.contains("Success: no issues found"), "{text}");
}
