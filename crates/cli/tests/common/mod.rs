//! What the CLI's end-to-end tests share: the `marquee` binary in a clean environment, an HTTP
//! client, and starting `marquee serve` and waiting until it reports its address and is ready.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `marquee` binary, without the caller's `MARQUEE_*` settings leaking in.
pub fn marquee() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_marquee"));
    c.env_remove("MARQUEE_DATA_DIR")
        .env_remove("MARQUEE_DATABASE_URL")
        .env_remove("MARQUEE_ADMIN_KEY")
        .env_remove("MARQUEE_MASTER_KEY")
        .env_remove("MARQUEE_MASTER_KEY_FILE")
        // The default master key file goes here, not into the home of whoever runs the tests.
        .env(
            "XDG_CONFIG_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("config"),
        );
    c
}

/// reqwest is built without a default crypto provider (no aws-lc): ring is installed first.
pub fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

/// Starts `cmd` (a `marquee serve … --listen 127.0.0.1:0`) with its stdout piped, waits up to
/// `limit` for "Marquee listening on …", and returns the process, the base URL and the lines
/// printed up to then and just after (the demo's examples and key).
// The child is returned to a caller whose `Drop` kills and waits for it.
#[allow(clippy::zombie_processes)]
pub fn spawn_serve(mut cmd: Command, limit: Duration) -> (Child, String, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("marquee serve starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + limit;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server did not report its address");
        let base = line
            .strip_prefix("Marquee listening on ")
            .map(|b| b.trim().to_string());
        lines.push(line);
        if let Some(base) = base {
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
                lines.push(l);
            }
            return (child, base, lines);
        }
    }
}

/// Waits up to `limit` for `/readyz` to answer 200.
pub fn wait_ready(base: &str, limit: Duration) {
    let client = client();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/readyz")).send()
            && r.status().is_success()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the server at {base} was not ready in time");
}
