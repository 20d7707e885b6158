//! TLS termination in Marquee itself, for operators without a reverse proxy in front.
//!
//! The certificate chain and key are read once at start-up ([`load_tls_config`]) so that a bad
//! file stops the server with a message naming the file, rather than failing every handshake.
//! [`serve_tls`] mirrors [`crate::serve`]: each connection's handshake runs in its own task with a
//! deadline, so a slow or hostile client never holds up the accept loop, and shutdown stops
//! accepting, then lets the requests in flight finish.
//!
//! Only the `ring` provider is used (never the process default), so this works whether or not
//! [`crate::install_tls_provider`] ran and never pulls aws-lc in.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::Service as _;

/// Longest a client may take to complete the TLS handshake before its connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS configuration could not be loaded; every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {role} file {}: {source}", path.display())]
    Read {
        /// `certificate` or `private key`.
        role: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the TLS {role} file {} is not usable: {reason}", path.display())]
    Invalid {
        /// `certificate` or `private key`.
        role: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "the TLS private key in {} does not belong to the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
}

const CERT_ROLE: &str = "certificate";
const KEY_ROLE: &str = "private key";

fn read_file(path: &Path, role: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        role,
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(path: &Path, role: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        role,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Loads a PEM certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1) into
/// a server configuration offering HTTP/2 and HTTP/1.1 over ALPN.
///
/// Fails, naming the file, when a file is unreadable, holds no PEM block of the right kind, holds
/// a key `ring` cannot use (or an encrypted one), or when the key is not the certificate's.
pub fn load_tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_pem = read_file(cert, CERT_ROLE)?;
    let key_pem = read_file(key, KEY_ROLE)?;

    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert, CERT_ROLE, format!("malformed PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(
            cert,
            CERT_ROLE,
            "no `BEGIN CERTIFICATE` block found (a PEM certificate chain is expected)",
        ));
    }

    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound if contains(&key_pem, b"ENCRYPTED PRIVATE KEY") => invalid(
            key,
            KEY_ROLE,
            "the key is encrypted; give an unencrypted PKCS#8, PKCS#1 or SEC1 key",
        ),
        pem::Error::NoItemsFound => invalid(
            key,
            KEY_ROLE,
            "no private key block found (PEM PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` \
             or SEC1 `EC PRIVATE KEY` is expected)",
        ),
        other => invalid(key, KEY_ROLE, format!("malformed PEM: {other}")),
    })?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Parsed here first so that a corrupt key is blamed on the key file, not the certificate.
    provider
        .key_provider
        .load_private_key(key_der.clone_key())
        .map_err(|e| invalid(key, KEY_ROLE, format!("unsupported or corrupt key: {e}")))?;

    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                }
            }
            other => invalid(cert, CERT_ROLE, other.to_string()),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Accept errors that concern one connection only; anything else (out of file descriptors)
/// is worth a pause before accepting again.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

/// Like [`crate::serve`], over TLS: serves `router` on `listener` until `shutdown` resolves,
/// then stops accepting and waits for the connections' in-flight requests to finish. Handlers
/// see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let builder = auto::Builder::new(TokioExecutor::new());
    // `true` once shutdown begins; every connection task holds a receiver, so the sender's
    // `closed()` resolves when the last connection has finished.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot accept a connection; retrying in 1 s");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        // Answers go out as soon as they are written (see `crate::serve`).
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            acceptor.clone(),
            builder.clone(),
            router.clone(),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    drop(stop_rx);
    // Fails only when no connection task is left, which is fine.
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
    Ok(())
}

/// Resolves once shutdown begins (or the server is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held across the caller's awaits.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Handshakes, then serves one connection until it closes or shutdown begins (then finishes
/// the request in flight and closes).
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let tls_stream = tokio::select! {
        // Shutdown (or the server gone): a connection still handshaking has no request yet.
        () = stopping(&mut stop) => return,
        result = handshake => match result {
            Ok(Ok(tls_stream)) => tls_stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };

    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            router.call(request)
        });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
