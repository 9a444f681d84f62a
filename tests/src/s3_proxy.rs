//! A fault-injecting HTTP proxy in front of the S3 emulator.
//!
//! Point a client's S3 endpoint at [`S3Proxy::url`] and it passes every request on to moto,
//! except those a [`Rule`] or the random mode picks: those are answered `503 SlowDown`, cut
//! before anything reaches moto, cut after moto answered (the write happened, the answer is
//! lost), or held open until released. One request per connection (`Connection: close` both
//! ways), so a fault never hits a second request by accident.
//!
//! The same proxy stands in front of other AWS endpoints (Lambda, the ECS and CodeDeploy
//! doubles): [`Fault::Unavailable`] and [`Fault::Throttled`] answer in the JSON protocols'
//! error shape, throttling with the status and code [`S3Proxy::throttle_as`] sets.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does to a request instead of passing it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer `503 SlowDown` without passing the request on.
    SlowDown,
    /// Reset the connection before anything reaches the emulator.
    ResetBefore,
    /// Pass the request on, read the emulator's whole answer, then reset the connection
    /// without replying: the change happened but its answer is lost.
    ResetAfter,
    /// Keep the connection open without passing anything on, until [`S3Proxy::release_held`]
    /// (or two minutes), then reset it.
    Hold,
    /// Answer `503` with a JSON `ServiceUnavailableException`, without passing the request on.
    Unavailable,
    /// Answer with the throttling error of the service (see [`S3Proxy::throttle_as`]), without
    /// passing the request on.
    Throttled,
}

impl Fault {
    /// The faults of a JSON-protocol service endpoint: unavailable, throttled, reset before
    /// the server saw the request and reset after it acted.
    pub const SERVICE: [Fault; 4] = [
        Fault::Unavailable,
        Fault::Throttled,
        Fault::ResetBefore,
        Fault::ResetAfter,
    ];
}

/// Faults for requests of one method whose path contains a pattern.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `PUT`, `GET`, ...
    pub method: String,
    /// A substring of the request path (`/bucket/key?query`), e.g. `/lock.json`.
    pub pattern: String,
    /// Matching requests passed on untouched before the faults start.
    pub skip: u32,
    /// Matching requests that get the fault, after `skip`.
    pub times: u32,
    /// The fault.
    pub fault: Fault,
}

impl Rule {
    /// The requests of any method number `skip + 1` to `skip + times` get `fault`.
    pub fn any(fault: Fault, times: u32) -> Rule {
        Rule::new("", "", fault, times)
    }

    /// The first `times` requests of `method` (empty: any) whose path contains `pattern` get
    /// `fault`.
    pub fn new(method: &str, pattern: &str, fault: Fault, times: u32) -> Rule {
        Rule {
            method: method.to_owned(),
            pattern: pattern.to_owned(),
            skip: 0,
            times,
            fault,
        }
    }

    /// Lets the first `skip` matching requests through first.
    pub fn after(mut self, skip: u32) -> Rule {
        self.skip = skip;
        self
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// The fault it got, if any.
    pub fault: Option<Fault>,
    /// The request body's `Content-Length`, when it sent one.
    pub length: Option<u64>,
    /// The `X-Amz-Target` header (the operation of the JSON protocols), when it sent one.
    pub target: Option<String>,
}

#[derive(Debug)]
struct Random {
    percent: u64,
    state: u64,
    pattern: String,
    kinds: Vec<Fault>,
}

impl Random {
    /// splitmix64: small, seeded, good enough to pick faults.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self) -> Option<Fault> {
        if self.next() % 100 >= self.percent {
            return None;
        }
        let count = self.kinds.len().max(1) as u64;
        let pick = usize::try_from(self.next() % count).unwrap_or(0);
        self.kinds.get(pick).copied()
    }
}

#[derive(Debug, Default)]
struct Shared {
    throttle: Mutex<Option<(u16, String)>>,
    rules: Mutex<Vec<(Rule, u32)>>,
    random: Mutex<Option<Random>>,
    seen: Mutex<Vec<Seen>>,
    holding: AtomicU32,
    release: AtomicBool,
}

impl Shared {
    fn decide(&self, method: &str, path: &str, head: &str) -> Option<Fault> {
        let length = header(head, "content-length").and_then(|v| v.parse().ok());
        let target = header(head, "x-amz-target").map(str::to_owned);
        let mut fault = None;
        if let Ok(mut rules) = self.rules.lock() {
            for (rule, matched) in rules.iter_mut() {
                let method_matches = rule.method.is_empty() || rule.method == method;
                if !method_matches || !path.contains(&rule.pattern) {
                    continue;
                }
                *matched += 1;
                if *matched > rule.skip && *matched <= rule.skip.saturating_add(rule.times) {
                    fault = Some(rule.fault);
                    break;
                }
            }
        }
        if fault.is_none()
            && let Ok(mut random) = self.random.lock()
        {
            fault = random
                .as_mut()
                .filter(|r| path.contains(&r.pattern))
                .and_then(Random::pick);
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(Seen {
                method: method.to_owned(),
                path: path.to_owned(),
                fault,
                length,
                target,
            });
        }
        fault
    }
}

/// The proxy; it runs until the test process ends.
#[derive(Debug)]
pub struct S3Proxy {
    /// `http://127.0.0.1:<port>`, to use as the S3 endpoint.
    pub url: String,
    shared: Arc<Shared>,
}

impl S3Proxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`), passing everything on.
    pub fn start(upstream: &str) -> S3Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared::default());
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/');
        let upstream = upstream.to_owned();
        let state = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, state) = (upstream.clone(), state.clone());
                std::thread::spawn(move || serve(client, &upstream, &state));
            }
        });
        S3Proxy { url, shared }
    }

    /// Adds a rule; rules are tried in the order added, the first that picks a request wins.
    pub fn add(&self, rule: Rule) {
        if let Ok(mut rules) = self.shared.rules.lock() {
            rules.push((rule, 0));
        }
    }

    /// From now on, `percent` % of the requests no rule picks get a random fault (`SlowDown`,
    /// `ResetBefore` or `ResetAfter`), drawn from a generator seeded with `seed`.
    pub fn random(&self, percent: u64, seed: u64) {
        self.random_matching(percent, seed, "");
    }

    /// Like [`S3Proxy::random`], for the requests whose path contains `pattern` only.
    pub fn random_matching(&self, percent: u64, seed: u64, pattern: &str) {
        let kinds = [Fault::SlowDown, Fault::ResetBefore, Fault::ResetAfter];
        self.random_of(percent, seed, pattern, &kinds);
    }

    /// Like [`S3Proxy::random_matching`], the faults drawn evenly from `kinds`.
    pub fn random_of(&self, percent: u64, seed: u64, pattern: &str, kinds: &[Fault]) {
        if let Ok(mut random) = self.shared.random.lock() {
            *random = Some(Random {
                percent,
                state: seed,
                pattern: pattern.to_owned(),
                kinds: kinds.to_vec(),
            });
        }
    }

    /// [`Fault::Throttled`] answers `status` with error code `code` (default: `400
    /// ThrottlingException`, as ECS and CodeDeploy do; Lambda says `429
    /// TooManyRequestsException`).
    pub fn throttle_as(&self, status: u16, code: &str) {
        if let Ok(mut throttle) = self.shared.throttle.lock() {
            *throttle = Some((status, code.to_owned()));
        }
    }

    /// Drops every rule and the random mode: everything passes from now on.
    pub fn calm(&self) {
        if let Ok(mut rules) = self.shared.rules.lock() {
            rules.clear();
        }
        if let Ok(mut random) = self.shared.random.lock() {
            *random = None;
        }
    }

    /// Every request seen so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// How many requests got a fault so far.
    pub fn faults(&self) -> usize {
        self.seen().iter().filter(|s| s.fault.is_some()).count()
    }

    /// Requests being held right now.
    pub fn holding(&self) -> u32 {
        self.shared.holding.load(Ordering::SeqCst)
    }

    /// Blocks until a request is held, or panics after `limit`.
    pub fn wait_holding(&self, limit: Duration) {
        let start = Instant::now();
        while self.holding() == 0 {
            assert!(
                start.elapsed() < limit,
                "no request was held within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends every held request (with a reset) and holds no more.
    pub fn release_held(&self) {
        self.shared.release.store(true, Ordering::SeqCst);
    }
}

fn serve(mut client: TcpStream, upstream: &str, shared: &Shared) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some(head) = read_head(&mut client) else {
        return;
    };
    let mut words = head.split(' ');
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    match shared.decide(&method, &path, &head) {
        None => forward(client, &head, upstream, false),
        Some(Fault::ResetAfter) => forward(client, &head, upstream, true),
        Some(Fault::ResetBefore) => reset(&client),
        Some(Fault::SlowDown) => {
            drain_body(&mut client, &head);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>proxy</RequestId></Error>";
            let _ = client.write_all(
                format!(
                    "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::Unavailable) => {
            drain_body(&mut client, &head);
            json_error(&mut client, 503, "ServiceUnavailableException");
        }
        Some(Fault::Throttled) => {
            drain_body(&mut client, &head);
            let (status, code) = shared
                .throttle
                .lock()
                .ok()
                .and_then(|t| t.clone())
                .unwrap_or((400, "ThrottlingException".to_owned()));
            json_error(&mut client, status, &code);
        }
        Some(Fault::Hold) => {
            shared.holding.fetch_add(1, Ordering::SeqCst);
            let start = Instant::now();
            while !shared.release.load(Ordering::SeqCst)
                && start.elapsed() < Duration::from_secs(120)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            shared.holding.fetch_sub(1, Ordering::SeqCst);
            reset(&client);
        }
    }
}

/// An error answer of the JSON protocols (awsJson1_1 and restJson1 read the code from the
/// header or from `__type`).
fn json_error(client: &mut TcpStream, status: u16, code: &str) {
    let body = format!(r#"{{"__type":"{code}","message":"injected by the test proxy"}}"#);
    let _ = client.write_all(
        format!(
            "HTTP/1.1 {status} Injected\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-errortype: {code}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let _ = client.shutdown(Shutdown::Both);
}

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

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// `head` with `Connection: close` in place of any connection header.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// Reads the request body so that an answer is read by the client rather than reset.
fn drain_body(client: &mut TcpStream, head: &str) {
    if let Some(length) = header(head, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        let _ = std::io::copy(&mut client.take(length), &mut std::io::sink());
        return;
    }
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = std::io::copy(client, &mut std::io::sink());
}

/// Closes with `SO_LINGER` 0, which sends a TCP reset instead of a clean close (once the last
/// descriptor of the socket is dropped).
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

fn forward(mut client: TcpStream, head: &str, upstream: &str, lose_answer: bool) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        reset(&client);
        return;
    };
    if server.write_all(closing(head).as_bytes()).is_err() {
        reset(&client);
        return;
    }
    let (Ok(mut client_read), Ok(mut server_write)) = (client.try_clone(), server.try_clone())
    else {
        return;
    };
    let upload = std::thread::spawn(move || std::io::copy(&mut client_read, &mut server_write));
    let mut answer = Vec::new();
    let _ = server.read_to_end(&mut answer);
    if lose_answer {
        reset(&client);
    } else {
        let answer = match answer.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => {
                let head = String::from_utf8_lossy(&answer[..end + 4]).into_owned();
                [closing(&head).into_bytes(), answer[end + 4..].to_vec()].concat()
            }
            None => answer,
        };
        let _ = client.write_all(&answer);
    }
    // Wakes the thread still reading the client (a clone of this socket) without sending
    // anything; once it let go, dropping the last descriptor closes, or resets, the connection.
    let _ = client.shutdown(Shutdown::Read);
    let _ = server.shutdown(Shutdown::Both);
    let _ = upload.join();
    drop(client);
}
