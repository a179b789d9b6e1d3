//! A small client for the API: build a call, send it, read a [`Reply`].

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A request being built.
pub struct Call {
    request: reqwest::RequestBuilder,
}

impl Call {
    pub(crate) fn new(client: &reqwest::Client, method: Method, url: String) -> Self {
        Self {
            request: client.request(method, url),
        }
    }

    /// Sends `X-API-Key`.
    pub fn key(self, key: &str) -> Self {
        Self {
            request: self.request.header("x-api-key", key),
        }
    }

    /// Sends a header.
    pub fn header(self, name: &str, value: &str) -> Self {
        Self {
            request: self.request.header(name, value),
        }
    }

    /// Sends `body` as JSON.
    pub fn json(self, body: &Value) -> Self {
        Self {
            request: self.request.json(body),
        }
    }

    /// Sends raw bytes with the given content type.
    pub fn raw(self, content_type: &str, body: impl Into<reqwest::Body>) -> Self {
        Self {
            request: self.request.header("content-type", content_type).body(body),
        }
    }

    /// Sends raw bytes with no `Content-Type` at all.
    pub fn body(self, body: impl Into<reqwest::Body>) -> Self {
        Self {
            request: self.request.body(body),
        }
    }

    /// Sends the request and reads the whole reply.
    pub async fn send(self) -> Reply {
        let response = self.request.send().await.expect("send request");
        let path = response.url().path().to_owned();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
            path,
        }
    }
}

/// A reply, with its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON (`Null` if it is not JSON).
    pub body: Value,
    /// The body as text.
    pub text: String,
    /// The path the request was sent to, as sent (percent-encoded).
    pub path: String,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an RFC 9457 problem with this status, and returns it.
    #[track_caller]
    pub fn problem(&self, status: u16) -> &Value {
        self.expect(status);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        for field in ["type", "title", "status", "detail", "instance"] {
            assert!(
                self.body.get(field).is_some(),
                "problem without `{field}`: {}",
                self.text
            );
        }
        assert_eq!(self.body["status"], status);
        // A trailing slash gets the answer of the path without it.
        let path = match self.path.trim_end_matches('/') {
            "" => "/",
            trimmed => trimmed,
        };
        assert_eq!(self.body["instance"], path, "{}", self.text);
        &self.body
    }

    /// The offending fields of a 422.
    #[track_caller]
    pub fn invalid_fields(&self) -> Vec<String> {
        let problem = self.problem(422);
        problem["errors"]
            .as_array()
            .expect("a 422 lists its errors")
            .iter()
            .map(|error| error["field"].as_str().expect("field").to_owned())
            .collect()
    }

    /// The `detail` of a problem with this status.
    #[track_caller]
    pub fn detail(&self, status: u16) -> String {
        let problem = self.problem(status);
        problem["detail"].as_str().expect("detail").to_owned()
    }

    /// The names of a list's items, in order.
    #[track_caller]
    pub fn names(&self) -> Vec<String> {
        self.expect(200);
        self.body["items"]
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {}", self.text))
            .iter()
            .map(|item| item["name"].as_str().expect("name").to_owned())
            .collect()
    }

    /// A string field of the body.
    #[track_caller]
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{field}` in {}", self.text))
            .to_owned()
    }
}

/// A bare TCP connection to the API, for what an HTTP client never sends:
/// a request cut short, a body shorter than it announced.
pub struct RawConnection {
    stream: tokio::net::TcpStream,
}

impl RawConnection {
    /// Connects to `addr` and sends `bytes`, nothing more.
    pub async fn open(addr: std::net::SocketAddr, bytes: &str) -> Self {
        use tokio::io::AsyncWriteExt;

        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(bytes.as_bytes()).await.expect("send");
        Self { stream }
    }

    /// Sends more of the request.
    pub async fn send(&mut self, bytes: &str) {
        use tokio::io::AsyncWriteExt;

        self.stream.write_all(bytes.as_bytes()).await.expect("send");
    }

    /// The reply's status line, headers and body, or `None` if no whole
    /// reply arrives within `within`.
    pub async fn reply(&mut self, within: std::time::Duration) -> Option<String> {
        use tokio::io::AsyncReadExt;

        let mut received = Vec::new();
        let read = async {
            let mut chunk = [0; 4096];
            while !is_whole_reply(&received) {
                let count = self.stream.read(&mut chunk).await.ok()?;
                if count == 0 {
                    return None;
                }
                received.extend_from_slice(&chunk[..count]);
            }
            Some(())
        };
        tokio::time::timeout(within, read).await.ok()??;
        Some(String::from_utf8_lossy(&received).into_owned())
    }

    /// Whether the API closes the connection, sending nothing, within
    /// `within`.
    pub async fn closed_within(&mut self, within: std::time::Duration) -> bool {
        use tokio::io::AsyncReadExt;

        let mut chunk = [0; 64];
        let read = tokio::time::timeout(within, self.stream.read(&mut chunk)).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    }
}

/// Whether `received` holds a head and as much body as it announced.
fn is_whole_reply(received: &[u8]) -> bool {
    let text = String::from_utf8_lossy(received);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}
