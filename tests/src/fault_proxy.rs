//! A loopback proxy in front of a registry that injects faults at a set rate, drawn from a
//! seeded generator: a `503` answer, a connection reset before the request reaches the
//! registry, or a reset after the registry acted (its answer is lost). One request per
//! connection; answers are read whole before they are passed on (test images are small).
//! Request bodies must carry `Content-Length` (the registry client always sends one).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `503 Service Unavailable`, the request not passed on.
    Unavailable,
    /// The connection is reset before the request reaches the registry.
    ResetBefore,
    /// The request is passed on and the registry answers, then the connection is reset: the
    /// registry acted, the client never hears about it.
    ResetAfter,
}

impl Fault {
    /// Every kind.
    pub const ALL: [Fault; 3] = [Fault::Unavailable, Fault::ResetBefore, Fault::ResetAfter];

    fn index(self) -> usize {
        match self {
            Fault::Unavailable => 0,
            Fault::ResetBefore => 1,
            Fault::ResetAfter => 2,
        }
    }
}

/// Which faults, how often.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Share of requests that get a fault, 0.0 to 1.0.
    pub rate: f64,
    /// The kinds drawn from (evenly).
    pub kinds: Vec<Fault>,
    /// Seed of the generator.
    pub seed: u64,
}

#[derive(Debug)]
struct State {
    upstream: String,
    me: String,
    faults: Faults,
    rng: Mutex<u64>,
    requests: AtomicU32,
    injected: [AtomicU32; 3],
}

impl State {
    /// The fault for the next request, if it gets one.
    fn draw(&self) -> Option<Fault> {
        let mut state = self.rng.lock().ok()?;
        let mut next = || {
            // xorshift64*
            *state ^= *state >> 12;
            *state ^= *state << 25;
            *state ^= *state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let roll = (next() >> 11) as f64 / (1u64 << 53) as f64;
        if roll >= self.faults.rate || self.faults.kinds.is_empty() {
            return None;
        }
        let pick = usize::try_from(next() % self.faults.kinds.len() as u64).unwrap_or(0);
        self.faults.kinds.get(pick).copied()
    }
}

impl Faults {
    /// No faults: the proxy only counts requests.
    pub fn none() -> Faults {
        Faults {
            rate: 0.0,
            kinds: Vec::new(),
            seed: 1,
        }
    }
}

/// A running fault-injecting proxy; it lives until the test process ends.
#[derive(Debug)]
pub struct FaultProxy {
    /// `127.0.0.1:<port>` to use instead of the registry.
    pub host: String,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`host:port`).
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(State {
            upstream: upstream.to_owned(),
            me: host.clone(),
            rng: Mutex::new(faults.seed | 1),
            faults,
            requests: AtomicU32::new(0),
            injected: Default::default(),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(client, &state));
            }
        });
        FaultProxy { host, state }
    }

    /// Requests received so far.
    pub fn requests(&self) -> u32 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Faults of `kind` injected so far.
    pub fn injected(&self, kind: Fault) -> u32 {
        self.state.injected[kind.index()].load(Ordering::SeqCst)
    }
}

/// Resets the connection: a `RST`, not an orderly close.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// The request head (up to the blank line) as text.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            return Some(head);
        }
    }
}

fn content_length(head: &str) -> u64 {
    head.split("\r\n")
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// `head` with `Connection: close`, so each side closes after one exchange.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn serve(client: TcpStream, state: &State) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(reader) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let Some(head) = read_head(&mut reader) else {
        return;
    };
    state.requests.fetch_add(1, Ordering::SeqCst);
    let fault = state.draw();
    if let Some(fault) = fault {
        state.injected[fault.index()].fetch_add(1, Ordering::SeqCst);
    }
    let length = content_length(&head);
    match fault {
        Some(Fault::ResetBefore) => return reset(client),
        Some(Fault::Unavailable) => {
            let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
            let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}"#;
            let mut client = client;
            let _ = write!(
                client,
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.shutdown(std::net::Shutdown::Both);
            return;
        }
        _ => {}
    }
    let Some(answer) = forward(&head, &mut reader, length, &state.upstream) else {
        return reset(client);
    };
    if fault == Some(Fault::ResetAfter) {
        return reset(client);
    }
    let mut client = client;
    let _ = client.write_all(&rewrite(&answer, &state.upstream, &state.me));
    let _ = client.shutdown(std::net::Shutdown::Both);
}

/// Sends the request to the registry and reads its whole answer.
fn forward(
    head: &str,
    body: &mut BufReader<TcpStream>,
    length: u64,
    upstream: &str,
) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect(upstream).ok()?;
    server
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    server.write_all(closing(head).as_bytes()).ok()?;
    let copied = std::io::copy(&mut body.take(length), &mut server).ok()?;
    if copied != length {
        return None;
    }
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).ok()?;
    Some(answer)
}

/// The answer with the registry's address in its head (`Location`, a token realm) replaced by
/// the proxy's, as a reverse proxy does.
fn rewrite(answer: &[u8], upstream: &str, me: &str) -> Vec<u8> {
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |at| at + 4);
    let (head, body) = answer.split_at(split);
    let head = String::from_utf8_lossy(head).replace(upstream, me);
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A loopback HTTP server answering every request with what a script returns for its head
/// (see [`reply`]), and recording each request line: a registry that misbehaves on purpose.
#[derive(Debug)]
pub struct ScriptedServer {
    /// `127.0.0.1:<port>`.
    pub host: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ScriptedServer {
    /// Starts the server; it lives until the test process ends.
    pub fn start(script: impl Fn(&str) -> String + Send + Sync + 'static) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let script = Arc::new(script);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (seen, script) = (seen.clone(), script.clone());
                std::thread::spawn(move || {
                    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
                    let Ok(reader) = client.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(reader);
                    let Some(head) = read_head(&mut reader) else {
                        return;
                    };
                    let length = content_length(&head);
                    let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(head.lines().next().unwrap_or_default().to_owned());
                    }
                    let mut client = client;
                    let _ = client.write_all(script(&head).as_bytes());
                    let _ = client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        ScriptedServer { host, lines }
    }

    /// The request lines received so far (`PUT /v2/... HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A whole HTTP/1.1 answer: `status` (`"404 Not Found"`), extra header lines (each ending in
/// `\r\n`) and a body; the connection closes after it.
pub fn reply(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
