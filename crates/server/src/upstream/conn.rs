//! Plain-HTTP/1.1 connections to upstream engines, driven by the task of the request using them.
//!
//! Why not a pooled client such as reqwest's for these: it runs each connection in a task of its
//! own, so one proxied request crosses tasks four times or more (the request to the connection's
//! task, the response head back, each body chunk back), and each crossing can be a thread
//! wake-up. Here the request's task polls the connection itself, next to the response it waits
//! for, so the only wake-ups left are the socket's. Idle connections wait in a small pool, as in
//! any client. TLS upstreams (`https://`) still go through reqwest.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type Io = TokioIo<TcpStream>;

/// Longest a connection waits unused in the pool; servers close idle ones on their own
/// (uvicorn after 5 s), which the pool notices when it next looks (see [`Pool::take`]).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per upstream address.
const MAX_IDLE_PER_HOST: usize = 32;

/// One connection: the handle requests are sent on, and the state machine doing its I/O.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    io: Pin<Box<http1::Connection<Io, Full<Bytes>>>>,
    closed: bool,
    idle_since: Instant,
}

impl Conn {
    /// Lets the connection do the reading and writing it can; false once it has ended.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.closed && self.io.as_mut().poll(cx).is_ready() {
            self.closed = true;
        }
        !self.closed
    }
}

/// Why a request to an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("connect to {0}: timed out")]
    ConnectTimeout(String),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Idle connections per upstream address (`host:port`).
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
}

/// An upstream's answer: its head, and the body read through [`Answer::chunk`].
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    /// The connection, going back to the pool once the body has been read to its end.
    conn: Option<Conn>,
    pool: Arc<Pool>,
    address: String,
}

impl Pool {
    /// Sends a request built by `request` (called again when a pooled connection turns out
    /// to have been closed by the upstream before it answered, and the request is retried on
    /// a new one) to `address`.
    pub async fn send(
        self: &Arc<Self>,
        address: &str,
        connect_timeout: Duration,
        request: impl Fn() -> Request<Full<Bytes>>,
    ) -> Result<Answer, ConnError> {
        loop {
            let (mut conn, reused) = match self.take(address) {
                Some(conn) => (conn, true),
                None => (connect(address, connect_timeout).await?, false),
            };
            let ready = poll_fn(|cx| {
                conn.drive(cx);
                conn.sender.poll_ready(cx)
            })
            .await;
            let result = match ready {
                Ok(()) => {
                    let mut response = pin!(conn.sender.send_request(request()));
                    poll_fn(|cx| {
                        conn.drive(cx);
                        response.as_mut().poll(cx)
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(response) => {
                    let (head, body) = response.into_parts();
                    return Ok(Answer {
                        status: head.status,
                        headers: head.headers,
                        body,
                        conn: Some(conn),
                        pool: Arc::clone(self),
                        address: address.to_string(),
                    });
                }
                // The upstream closed a kept-alive connection (its idle timeout) as the request
                // went out: nothing was answered, so it goes again on a new connection.
                Err(e) if reused && (e.is_canceled() || e.is_incomplete_message()) => {
                    tracing::debug!(address, error = %e, "pooled upstream connection was closed; retrying");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// An idle connection to `address` still open, most recently used first.
    fn take(&self, address: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.get_mut(address)?;
        let mut noop = Context::from_waker(Waker::noop());
        while let Some(mut conn) = conns.pop() {
            // A connection the upstream has closed reads its end-of-file here.
            if conn.idle_since.elapsed() < IDLE_TIMEOUT
                && conn.drive(&mut noop)
                && !conn.sender.is_closed()
            {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, address: &str, mut conn: Conn) {
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.entry(address.to_string()).or_default();
        conns.retain(|c| c.idle_since.elapsed() < IDLE_TIMEOUT);
        if conns.len() < MAX_IDLE_PER_HOST {
            conns.push(conn);
        }
    }
}

async fn connect(address: &str, timeout: Duration) -> Result<Conn, ConnError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Err(_) => return Err(ConnError::ConnectTimeout(address.to_string())),
        Ok(Err(e)) => return Err(ConnError::Connect(address.to_string(), e)),
        Ok(Ok(stream)) => stream,
    };
    // Requests and answers are small writes each awaited by the other side.
    let _ = stream.set_nodelay(true);
    let (sender, io) = http1::handshake(TokioIo::new(stream)).await?;
    Ok(Conn {
        sender,
        io: Box::pin(io),
        closed: false,
        idle_since: Instant::now(),
    })
}

impl Answer {
    /// The body's length when the upstream announced it.
    pub fn content_length(&self) -> Option<u64> {
        self.body.size_hint().exact()
    }

    /// The next piece of the body; `None` at its end (and the connection goes back to the
    /// pool).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        loop {
            let frame = poll_fn(|cx| {
                if let Some(conn) = &mut self.conn {
                    conn.drive(cx);
                }
                Pin::new(&mut self.body).poll_frame(cx)
            })
            .await;
            match frame {
                None => {
                    self.release();
                    return Ok(None);
                }
                Some(Ok(frame)) => {
                    // Trailers are not passed on.
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
                Some(Err(e)) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
    }

    fn release(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // One more turn lets the connection see that the message ended and turn idle.
            let open = conn.drive(&mut Context::from_waker(Waker::noop()));
            if open && !conn.sender.is_closed() {
                self.pool.put(&self.address, conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{Method, header};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// How the test upstream treats each connection after answering.
    #[derive(Clone, Copy)]
    enum Upstream {
        /// Keeps it open for the next request.
        KeepAlive,
        /// Closes it after one answer (as an idle timeout would).
        CloseAfterOne,
        /// Answers the first request, then closes on reading the second without answering.
        DropSecond,
    }

    /// A minimal HTTP/1.1 upstream echoing each request's body; returns its address and the
    /// number of connections it accepted.
    async fn upstream(kind: Upstream) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    for served in 0.. {
                        let Some(body) = read_request(&mut socket, &mut buffer).await else {
                            return;
                        };
                        if matches!(kind, Upstream::DropSecond) && served == 1 {
                            return;
                        }
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        socket.write_all(answer.as_bytes()).await.unwrap();
                        socket.write_all(&body).await.unwrap();
                        if matches!(kind, Upstream::CloseAfterOne) {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buffer.len() >= end + 4 + length {
                    let body = buffer[end + 4..end + 4 + length].to_vec();
                    buffer.drain(..end + 4 + length);
                    return Some(body);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
    }

    async fn echo(pool: &Arc<Pool>, address: &str, text: &'static str) -> Bytes {
        let request = || {
            let mut r = Request::new(Full::new(Bytes::from_static(text.as_bytes())));
            *r.method_mut() = Method::POST;
            r.headers_mut()
                .insert(header::HOST, address.parse().unwrap());
            r
        };
        let mut answer = pool
            .send(address, Duration::from_secs(5), request)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.content_length(), Some(text.len() as u64));
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
        }
        Bytes::from(body)
    }

    #[tokio::test]
    async fn one_connection_serves_requests_in_turn() {
        let (address, accepted) = upstream(Upstream::KeepAlive).await;
        let pool = Arc::new(Pool::default());
        for text in ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"] {
            assert_eq!(echo(&pool, &address, text).await, text.as_bytes());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_reused() {
        let (address, accepted) = upstream(Upstream::CloseAfterOne).await;
        let pool = Arc::new(Pool::default());
        for text in ["{\"a\":1}", "{\"b\":2}"] {
            assert_eq!(echo(&pool, &address, text).await, text.as_bytes());
            // Let the upstream's end-of-file arrive.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_cut_off_on_a_reused_connection_goes_again_on_a_new_one() {
        let (address, accepted) = upstream(Upstream::DropSecond).await;
        let pool = Arc::new(Pool::default());
        assert_eq!(echo(&pool, &address, "{\"a\":1}").await, &b"{\"a\":1}"[..]);
        assert_eq!(echo(&pool, &address, "{\"b\":2}").await, &b"{\"b\":2}"[..]);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = Arc::new(Pool::default());
        let result = pool
            .send(&address, Duration::from_secs(5), || {
                Request::new(Full::new(Bytes::new()))
            })
            .await;
        assert!(matches!(result, Err(ConnError::Connect(..))));
    }
}
