//! The wire: HTTP/1.1 requests read from the client (keep-alive), passed on to moto one per
//! connection, answers written back with their length recomputed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The `X-Amz-Target` prefix of every ECS operation.
pub(crate) const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// Longest request or answer head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// One HTTP request or answer: a first line, headers and a whole body.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// `POST / HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub first: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The ECS operation named by `X-Amz-Target`, or "" when there is none.
    pub fn operation(&self) -> &str {
        let target = self.header("x-amz-target").unwrap_or_default();
        target.strip_prefix(TARGET_PREFIX).unwrap_or(target)
    }

    /// The status code of an answer (0 when the first line has none).
    pub fn status(&self) -> u16 {
        self.first
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// This request again for another operation with another body, same headers otherwise
    /// (moto reads the region from the `Authorization` header, which is kept).
    pub fn with(&self, operation: &str, body: &serde_json::Value) -> Message {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(key, _)| !key.eq_ignore_ascii_case("x-amz-target"))
            .cloned()
            .collect();
        headers.push(("X-Amz-Target".into(), format!("{TARGET_PREFIX}{operation}")));
        Message {
            first: self.first.clone(),
            headers,
            body: body.to_string().into_bytes(),
        }
    }

    /// This request signed anew (SigV4 for `service`) with `keys` (access key id, secret):
    /// what a double asks moto as the AWS service itself, which an IAM-enforcing moto must
    /// not judge by the caller's policy (and whose body no longer matches the caller's
    /// signature).
    pub fn signed(mut self, service: &str, keys: &(String, String)) -> Message {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        self.headers.retain(|(key, _)| {
            let key = key.to_ascii_lowercase();
            !is_hop_header(&key)
                && !matches!(
                    key.as_str(),
                    "authorization"
                        | "x-amz-date"
                        | "x-amz-security-token"
                        | "x-amz-content-sha256"
                        | "content-length"
                )
        });
        let mut parts = self.first.split(' ');
        let method = parts.next().unwrap_or("POST").to_owned();
        let path = parts.next().unwrap_or("/").to_owned();
        let url = format!(
            "http://{}{path}",
            self.header("host").unwrap_or("localhost")
        );
        let identity =
            aws_credential_types::Credentials::new(&keys.0, &keys.1, None, None, "double").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(crate::REGION)
            .name(service)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing parameters")
            .into();
        let headers = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let signable =
            SignableRequest::new(&method, &url, headers, SignableBody::Bytes(&self.body))
                .expect("a signable request");
        let (instructions, _) = sign(signable, &params).expect("signed").into_parts();
        for (name, value) in instructions.headers() {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// A request of `target` (`X-Amz-Target`, e.g. `CodeDeploy_20141006.GetDeploymentGroup`)
    /// with `body`, the other headers of this request kept.
    pub fn with_target(&self, target: &str, body: &serde_json::Value) -> Message {
        let mut message = self.with("", body);
        for (key, value) in &mut message.headers {
            if key.eq_ignore_ascii_case("x-amz-target") {
                value.clone_from(&target.to_owned());
            }
        }
        message
    }

    /// A fresh ECS request for moto (`host`), signed for `region` with a dummy signature
    /// (moto reads the service and the region from the `Authorization` header).
    pub fn ecs_request(
        host: &str,
        region: &str,
        operation: &str,
        body: &serde_json::Value,
    ) -> Message {
        Message {
            first: "POST / HTTP/1.1".into(),
            headers: vec![
                ("Host".into(), host.to_owned()),
                ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                ("X-Amz-Target".into(), format!("{TARGET_PREFIX}{operation}")),
                (
                    "Authorization".into(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential=ANOTREAL/20260101/{region}/ecs/aws4_request, \
                         SignedHeaders=host, Signature=0"
                    ),
                ),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    /// A `200` answer with `body`, keeping the other headers of this answer.
    pub fn with_json(&self, body: &serde_json::Value) -> Message {
        Message {
            first: self.first.clone(),
            headers: self.headers.clone(),
            body: body.to_string().into_bytes(),
        }
    }

    /// A `200` JSON answer.
    pub fn ok(body: &serde_json::Value) -> Message {
        Message {
            first: "HTTP/1.1 200 OK".into(),
            headers: vec![("Content-Type".into(), "application/x-amz-json-1.1".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// An ECS error answer, as ECS sends it: `{"__type": ..., "message": ...}`.
    pub fn error(status: u16, kind: &str, message: &str) -> Message {
        let body = serde_json::json!({ "__type": kind, "message": message });
        Message {
            first: format!("HTTP/1.1 {status} Error"),
            headers: vec![
                ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                ("x-amzn-ErrorType".into(), kind.into()),
            ],
            body: body.to_string().into_bytes(),
        }
    }

    /// Whether the connection stays open after this request.
    pub fn keep_alive(&self) -> bool {
        self.first.ends_with("HTTP/1.1")
            && !self
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

fn is_hop_header(key: &str) -> bool {
    [
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "expect",
    ]
    .iter()
    .any(|hop| key.eq_ignore_ascii_case(hop))
}

/// Reads one message; `None` at the end of the stream or on anything malformed.
pub(crate) fn read_message(reader: &mut impl BufRead, until_eof: bool) -> Option<Message> {
    let mut first = String::new();
    while first.trim().is_empty() {
        first.clear();
        if reader.read_line(&mut first).ok()? == 0 {
            return None;
        }
    }
    let mut headers = Vec::new();
    let mut size = first.len();
    loop {
        let mut line = String::new();
        size += reader.read_line(&mut line).ok()?;
        if size > MAX_HEAD || line.is_empty() {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (key, value) = line.split_once(':')?;
        headers.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    let mut message = Message {
        first: first.trim_end().to_owned(),
        headers,
        body: Vec::new(),
    };
    message.body = read_body(reader, &message, until_eof).ok()?;
    Some(message)
}

fn read_body(reader: &mut impl BufRead, head: &Message, until_eof: bool) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = size.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16)
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut end = String::new();
            reader.read_line(&mut end)?;
            if size == 0 {
                return Ok(body);
            }
        }
    }
    if let Some(length) = head.header("content-length") {
        let length: u64 = length
            .parse()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
        reader.take(length).read_to_end(&mut body)?;
    } else if until_eof {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Writes `message` with its own length and the connection header given.
pub(crate) fn write_message(out: &mut impl Write, message: &Message, keep: bool) -> io::Result<()> {
    let mut head = format!("{}\r\n", message.first);
    for (key, value) in message.headers.iter().filter(|(k, _)| !is_hop_header(k)) {
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    let connection = if keep { "keep-alive" } else { "close" };
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
        message.body.len()
    ));
    out.write_all(head.as_bytes())?;
    out.write_all(&message.body)?;
    out.flush()
}

/// Sends `request` to `upstream` (`host:port`) on a connection of its own and reads the answer.
pub(crate) fn exchange(upstream: &str, request: &Message) -> io::Result<Message> {
    let mut server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(Duration::from_secs(60)))?;
    write_message(&mut server, request, false)?;
    read_message(&mut BufReader::new(server), true)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed answer from moto"))
}
