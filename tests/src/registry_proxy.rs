//! A loopback proxy in front of an OCI registry that counts uploads and mounts, fails uploads
//! on demand, and demands bearer tokens as public registries do.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Bearer-token authentication a [`RegistryProxy`] demands, as Docker Hub or GHCR do: requests
/// without a valid token get `401` with a challenge naming the proxy's own `/token` service,
/// which hands out tokens for these basic credentials. Each token is good for `token_uses`
/// requests, then it is expired.
#[derive(Debug, Clone)]
pub struct BearerAuth {
    /// User name the token service accepts.
    pub username: String,
    /// Password the token service accepts.
    pub password: String,
    /// Requests a token is good for.
    pub token_uses: u32,
}

/// What a [`RegistryProxy`] does besides passing requests on.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Fail the first this many blob upload `PUT`s with `503` (`u32::MAX`: all of them).
    pub fail_puts: u32,
    /// Then cut the connection of this many more upload `PUT`s after reading a little of the
    /// body, without an answer (a reset).
    pub reset_puts: u32,
    /// Demand bearer tokens.
    pub auth: Option<BearerAuth>,
    /// Answer `405` to a blob upload `PUT` that carries the blob (a registry that only takes
    /// uploads in `PATCH` requests).
    pub refuse_monolithic: bool,
}

#[derive(Debug, Default)]
struct ProxyCounters {
    failed: AtomicU32,
    forwarded_puts: AtomicU32,
    upload_bytes: std::sync::atomic::AtomicU64,
    mounts: AtomicU32,
    tokens_issued: AtomicU32,
    refused: AtomicU32,
    tokens: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

/// A loopback HTTP proxy in front of a registry, one request per connection, that counts the
/// blob bytes uploaded through it and the mounts asked for, and can fail uploads or demand
/// bearer tokens ([`ProxyOptions`]).
#[derive(Debug)]
pub struct RegistryProxy {
    /// `127.0.0.1:<port>` to use instead of the registry.
    pub host: String,
    counters: std::sync::Arc<ProxyCounters>,
}

impl RegistryProxy {
    /// Starts a proxy with `options`.
    pub fn with(upstream: &str, options: ProxyOptions) -> RegistryProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let counters = std::sync::Arc::new(ProxyCounters::default());
        let shared = counters.clone();
        let upstream = upstream.to_owned();
        let me = host.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, counters, options, me) = (
                    upstream.clone(),
                    shared.clone(),
                    options.clone(),
                    me.clone(),
                );
                std::thread::spawn(move || proxy_one(client, &upstream, &counters, &options, &me));
            }
        });
        RegistryProxy { host, counters }
    }

    /// Blob upload `PUT`s passed on to the registry so far.
    pub fn forwarded_puts(&self) -> u32 {
        self.counters.forwarded_puts.load(Ordering::SeqCst)
    }

    /// Uploads failed on purpose so far.
    pub fn failed(&self) -> u32 {
        self.counters.failed.load(Ordering::SeqCst)
    }

    /// Request body bytes of blob uploads (`PATCH` and `PUT`) passed on so far.
    pub fn upload_bytes(&self) -> u64 {
        self.counters.upload_bytes.load(Ordering::SeqCst)
    }

    /// Cross-repository mounts asked for so far.
    pub fn mounts(&self) -> u32 {
        self.counters.mounts.load(Ordering::SeqCst)
    }

    /// Tokens the token service handed out so far.
    pub fn tokens_issued(&self) -> u32 {
        self.counters.tokens_issued.load(Ordering::SeqCst)
    }

    /// Requests answered `401` so far (no token, an expired one, or bad credentials).
    pub fn refused(&self) -> u32 {
        self.counters.refused.load(Ordering::SeqCst)
    }
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

fn respond(client: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let _ = client.write_all(
        format!(
            "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let _ = client.shutdown(std::net::Shutdown::Both);
}

/// Reads and drops a request body of `content-length` bytes (so a refusal is read by the client).
fn drain_body(client: &mut TcpStream, head: &str) {
    let length: u64 = header_value(head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let _ = std::io::copy(&mut client.take(length), &mut std::io::sink());
}

/// Checks the bearer token of a request (`Ok`), or answers for the proxy: the token service
/// itself, or `401` with a challenge (`Err`).
fn check_bearer(
    client: &mut TcpStream,
    head: &str,
    auth: &BearerAuth,
    counters: &ProxyCounters,
    me: &str,
) -> Result<(), ()> {
    let path = head.split(' ').nth(1).unwrap_or_default();
    if path.starts_with("/token") {
        let expected = format!(
            "Basic {}",
            aws_smithy_types::base64::encode(format!("{}:{}", auth.username, auth.password))
        );
        if header_value(head, "authorization") != Some(expected.as_str()) {
            counters.refused.fetch_add(1, Ordering::SeqCst);
            respond(
                client,
                "401 Unauthorized",
                "",
                r#"{"details":"bad credentials"}"#,
            );
            return Err(());
        }
        let n = counters.tokens_issued.fetch_add(1, Ordering::SeqCst);
        let token = format!("token-{n}");
        if let Ok(mut tokens) = counters.tokens.lock() {
            tokens.insert(token.clone(), auth.token_uses);
        }
        respond(
            client,
            "200 OK",
            "content-type: application/json\r\n",
            &format!(r#"{{"token":"{token}","expires_in":60}}"#),
        );
        return Err(());
    }
    let presented = header_value(head, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let valid = presented.is_some_and(|token| {
        counters
            .tokens
            .lock()
            .is_ok_and(|mut tokens| match tokens.get_mut(&token) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    true
                }
                _ => false,
            })
    });
    if valid {
        return Ok(());
    }
    counters.refused.fetch_add(1, Ordering::SeqCst);
    drain_body(client, head);
    respond(
        client,
        "401 Unauthorized",
        &format!(
            "www-authenticate: Bearer realm=\"http://{me}/token\",service=\"test-registry\"\r\n"
        ),
        r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
    );
    Err(())
}

fn proxy_one(
    mut client: TcpStream,
    upstream: &str,
    counters: &ProxyCounters,
    options: &ProxyOptions,
    me: &str,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some(text) = read_head(&mut client) else {
        return;
    };
    if let Some(auth) = &options.auth
        && check_bearer(&mut client, &text, auth, counters, me).is_err()
    {
        return;
    }
    let Some(client) = intercept(client, &text, counters, options) else {
        return;
    };
    let is_upload = text.contains("/blobs/uploads/");
    let is_upload_body = is_upload && (text.starts_with("PUT ") || text.starts_with("PATCH "));
    if let Some(sent) = forward(client, &text, upstream)
        && is_upload_body
    {
        counters.upload_bytes.fetch_add(sent, Ordering::SeqCst);
    }
}

/// The request head, up to the blank line; `None` when the client went away first.
fn read_head(client: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Counts mounts and answers the faults `options` asks for (a refused monolithic upload, a
/// 503, a reset); the client back when the request is to be passed on.
fn intercept(
    mut client: TcpStream,
    text: &str,
    counters: &ProxyCounters,
    options: &ProxyOptions,
) -> Option<TcpStream> {
    let is_upload = text.contains("/blobs/uploads/");
    let is_upload_put = text.starts_with("PUT ") && is_upload;
    if text.starts_with("POST ") && is_upload && text.contains("mount=") {
        counters.mounts.fetch_add(1, Ordering::SeqCst);
    }
    let carries_body = header_value(text, "content-length").is_some_and(|v| v != "0");
    if is_upload_put && options.refuse_monolithic && carries_body {
        counters.refused.fetch_add(1, Ordering::SeqCst);
        drain_body(&mut client, text);
        respond(
            &mut client,
            "405 Method Not Allowed",
            "",
            r#"{"errors":[{"code":"UNSUPPORTED"}]}"#,
        );
        return None;
    }
    if is_upload_put && counters.failed.load(Ordering::SeqCst) < options.fail_puts {
        counters.failed.fetch_add(1, Ordering::SeqCst);
        respond(&mut client, "503 Service Unavailable", "", "");
        return None;
    }
    if is_upload_put
        && counters.failed.load(Ordering::SeqCst)
            < options.fail_puts.saturating_add(options.reset_puts)
    {
        counters.failed.fetch_add(1, Ordering::SeqCst);
        let mut some = [0u8; 1024];
        let _ = client.read(&mut some);
        // Closing with unread body bytes in the receive buffer makes the kernel send a reset.
        drop(client);
        return None;
    }
    if is_upload_put {
        counters.forwarded_puts.fetch_add(1, Ordering::SeqCst);
    }
    Some(client)
}

/// Passes the request on to `upstream` and the answer back; the body bytes sent up.
fn forward(mut client: TcpStream, text: &str, upstream: &str) -> Option<u64> {
    // One request per connection: ask both sides to close after it. The registry behind has no
    // authentication of its own.
    let mut lines: Vec<&str> = text
        .trim_end()
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("connection:") && !l.starts_with("authorization:")
        })
        .collect();
    lines.push("Connection: close");
    let head = format!("{}\r\n\r\n", lines.join("\r\n"));
    let mut server = TcpStream::connect(upstream).ok()?;
    server.write_all(head.as_bytes()).ok()?;
    let (Ok(mut client_read), Ok(mut server_write)) = (client.try_clone(), server.try_clone())
    else {
        return None;
    };
    let upload = std::thread::spawn(move || std::io::copy(&mut client_read, &mut server_write));
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
    upload.join().ok()?.ok()
}
