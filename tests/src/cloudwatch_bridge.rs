//! A loopback bridge between the Rust `aws-sdk-cloudwatch`, which speaks only the RPCv2 CBOR
//! protocol, and moto, which answers CloudWatch in its JSON (and Query) protocol.
//!
//! `POST /service/GraniteServiceVersion20100801/operation/<Op>` with a CBOR body becomes
//! `POST /` with `X-Amz-Target: GraniteServiceVersion20100801.<Op>` and the same document as
//! JSON (CBOR timestamps, tag 1, become epoch seconds); moto's JSON answer goes back as CBOR,
//! with the timestamp members (`...Timestamp`, `...Timestamps`, `StartTime`, `EndTime`)
//! tagged again. The signature is passed on untouched: moto reads the service from it and does
//! not check it. Every operation translates the same way, so the test's own set-up
//! (`PutMetricAlarm`, `SetAlarmState`) goes through the bridge too.
//!
//! Point the SDK at it with `AWS_ENDPOINT_URL_CLOUDWATCH`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ciborium::Value as Cbor;
use serde_json::Value as Json;

const TARGET_PREFIX: &str = "GraniteServiceVersion20100801";

/// The running bridge; it serves until the test process ends.
#[derive(Debug)]
pub struct CloudWatchBridge {
    /// `http://127.0.0.1:<port>`, the CloudWatch endpoint to give the SDK.
    pub url: String,
    operations: Arc<Mutex<Vec<String>>>,
}

impl CloudWatchBridge {
    /// Starts a bridge in front of moto at `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> CloudWatchBridge {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the bridge");
        let url = format!("http://{}", listener.local_addr().expect("bridge address"));
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let operations = Arc::new(Mutex::new(Vec::new()));
        let seen = operations.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, seen) = (upstream.clone(), seen.clone());
                std::thread::spawn(move || serve(client, &upstream, &seen));
            }
        });
        CloudWatchBridge { url, operations }
    }

    /// The operations translated so far, in order.
    pub fn operations(&self) -> Vec<String> {
        self.operations
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default()
    }
}

/// One HTTP request: the head's lines and the body.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn serve(mut client: TcpStream, upstream: &str, seen: &Mutex<Vec<String>>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let Some(request) = read_request(&mut client) else {
        return;
    };
    let Some(operation) = request
        .path
        .strip_prefix(&format!("/service/{TARGET_PREFIX}/operation/"))
        .map(str::to_owned)
    else {
        respond(
            &mut client,
            404,
            &error_body("UnknownOperation", "not a CloudWatch RPCv2 path"),
        );
        return;
    };
    if let Ok(mut seen) = seen.lock() {
        seen.push(operation.clone());
    }
    let input = if request.body.is_empty() {
        Json::Object(Default::default())
    } else {
        match ciborium::de::from_reader::<Cbor, _>(request.body.as_slice()) {
            Ok(value) => cbor_to_json(value),
            Err(err) => {
                respond(
                    &mut client,
                    400,
                    &error_body("SerializationException", &err.to_string()),
                );
                return;
            }
        }
    };
    let Some((status, answer)) = call_moto(upstream, &operation, &request, &input) else {
        respond(
            &mut client,
            502,
            &error_body("BridgeError", "moto did not answer"),
        );
        return;
    };
    let json: Json = serde_json::from_slice(&answer).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&answer).into_owned();
        serde_json::json!({ "__type": "InternalFailure", "message": text })
    });
    let mut body = Vec::new();
    if ciborium::ser::into_writer(&json_to_cbor("", json), &mut body).is_err() {
        respond(
            &mut client,
            500,
            &error_body("BridgeError", "cannot encode the answer"),
        );
        return;
    }
    respond(&mut client, status, &body);
}

fn read_request(client: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut request = Request {
        path,
        headers,
        body: Vec::new(),
    };
    let length: u64 = request.header("content-length")?.parse().ok()?;
    client.take(length).read_to_end(&mut request.body).ok()?;
    Some(request)
}

/// Sends `input` to moto as `operation` in the JSON protocol; the status and body of the answer.
fn call_moto(
    upstream: &str,
    operation: &str,
    request: &Request,
    input: &Json,
) -> Option<(u16, Vec<u8>)> {
    let body = input.to_string();
    let mut server = TcpStream::connect(upstream).ok()?;
    server
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let mut head = format!(
        "POST / HTTP/1.0\r\nHost: {upstream}\r\nX-Amz-Target: {TARGET_PREFIX}.{operation}\r\n\
         Content-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n",
        body.len()
    );
    for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
        if let Some(value) = request.header(name) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    server.write_all(head.as_bytes()).ok()?;
    server.write_all(body.as_bytes()).ok()?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).ok()?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(answer.get(9..12)?).ok()?.parse().ok()?;
    Some((status, answer[end + 4..].to_vec()))
}

fn respond(client: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} Bridged\r\nsmithy-protocol: rpc-v2-cbor\r\nContent-Type: application/cbor\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = client.write_all(head.as_bytes());
    let _ = client.write_all(body);
}

fn error_body(code: &str, message: &str) -> Vec<u8> {
    let value = Cbor::Map(vec![
        (Cbor::Text("__type".into()), Cbor::Text(code.into())),
        (Cbor::Text("message".into()), Cbor::Text(message.into())),
    ]);
    let mut body = Vec::new();
    let _ = ciborium::ser::into_writer(&value, &mut body);
    body
}

/// A CBOR document as JSON: tags dropped (a timestamp becomes its epoch seconds).
pub fn cbor_to_json(value: Cbor) -> Json {
    match value {
        Cbor::Integer(i) => {
            let i = i128::from(i);
            i64::try_from(i)
                .map(Json::from)
                .unwrap_or_else(|_| Json::from(i as f64))
        }
        Cbor::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        Cbor::Text(t) => Json::String(t),
        Cbor::Bytes(b) => Json::String(String::from_utf8_lossy(&b).into_owned()),
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Null => Json::Null,
        Cbor::Tag(_, inner) => cbor_to_json(*inner),
        Cbor::Array(items) => Json::Array(items.into_iter().map(cbor_to_json).collect()),
        Cbor::Map(entries) => Json::Object(
            entries
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k, cbor_to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Json::Null,
    }
}

fn is_timestamp(key: &str) -> bool {
    key.ends_with("Timestamp")
        || key.ends_with("Timestamps")
        || key == "StartTime"
        || key == "EndTime"
}

/// A JSON document as CBOR; numbers under timestamp members become tag-1 epoch seconds.
pub fn json_to_cbor(key: &str, value: Json) -> Cbor {
    match value {
        Json::Number(n) if is_timestamp(key) => {
            Cbor::Tag(1, Box::new(Cbor::Float(n.as_f64().unwrap_or_default())))
        }
        Json::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Cbor::Text(s),
        Json::Bool(b) => Cbor::Bool(b),
        Json::Null => Cbor::Null,
        Json::Array(items) => {
            Cbor::Array(items.into_iter().map(|v| json_to_cbor(key, v)).collect())
        }
        Json::Object(map) => Cbor::Map(
            map.into_iter()
                .map(|(k, v)| {
                    let value = json_to_cbor(&k, v);
                    (Cbor::Text(k), value)
                })
                .collect(),
        ),
    }
}
