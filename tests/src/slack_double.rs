//! A local server standing in for Slack: incoming webhooks (any path: `ok`) and the Web API's
//! `chat.postMessage` (answers `{"ok": true, "ts": ...}`) and `chat.update`. Every request is
//! kept (path, `Authorization`, JSON body). It can be made slow or rate limited (`429` with
//! `Retry-After`), as Slack documents; [`down_url`] is a loopback URL nothing listens on.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::ecs_double::http::{Message, read_message, write_message};

/// How the double answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// At once, as Slack does.
    Answer,
    /// After this long.
    Slow(Duration),
    /// `429 Too Many Requests` with `Retry-After` in seconds.
    RateLimited(u64),
}

/// One request the double received.
#[derive(Debug, Clone)]
pub struct SlackRequest {
    /// The request path (`/hooks/...`, `/api/chat.postMessage`).
    pub path: String,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: Value,
}

/// The running double.
#[derive(Debug, Clone)]
pub struct SlackDouble {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<Mutex<Vec<SlackRequest>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl SlackDouble {
    /// Starts a double on loopback; it stops with the test process.
    pub fn start(behaviour: Behaviour) -> SlackDouble {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Slack double");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let double = SlackDouble {
            url,
            requests: Arc::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
        };
        let shared = double.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(client));
            }
        });
        double
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<SlackRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn serve(&self, client: TcpStream) {
        let Ok(reader) = client.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(reader);
        let mut out = client;
        let _ = out.set_read_timeout(Some(Duration::from_secs(30)));
        while let Some(request) = read_message(&mut reader, false) {
            let answer = self.answer(&request);
            if write_message(&mut out, &answer, request.keep_alive()).is_err() {
                return;
            }
        }
    }

    fn answer(&self, request: &Message) -> Message {
        let path = request
            .first
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let n = {
            let mut requests = self.requests.lock().expect("requests");
            requests.push(SlackRequest {
                path: path.clone(),
                authorization: request.header("authorization").map(str::to_owned),
                body: request.json(),
            });
            requests.len()
        };
        let behaviour = *self.behaviour.lock().expect("behaviour");
        match behaviour {
            Behaviour::Answer => {}
            Behaviour::Slow(delay) => std::thread::sleep(delay),
            Behaviour::RateLimited(seconds) => {
                let mut limited = Message::error(429, "ratelimited", "rate limited");
                limited
                    .headers
                    .push(("Retry-After".into(), seconds.to_string()));
                return limited;
            }
        }
        if path.ends_with("/chat.postMessage") {
            Message::ok(&json!({ "ok": true, "ts": format!("1700000000.{n:06}") }))
        } else if path.ends_with("/chat.update") {
            Message::ok(&json!({ "ok": true }))
        } else {
            Message {
                first: "HTTP/1.1 200 OK".into(),
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: b"ok".to_vec(),
            }
        }
    }
}

/// A loopback URL nothing listens on: Slack down.
pub fn down_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}
