//! A fake model provider speaking the OpenAI and Anthropic wire formats.
//!
//! Tests script what it does *per task text*, so tests running at once never
//! consume each other's behaviours, and it records every request so tests can
//! assert exactly what went over the wire. It serves from a thread and
//! runtime of its own: a test that blocks (waiting on a worker process, say)
//! or pauses its clock does not stall it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

/// Headers worth asserting on; nothing else is recorded.
const RECORDED_HEADERS: [&str; 4] = [
    "authorization",
    "x-api-key",
    "anthropic-version",
    "content-type",
];

/// What the fake does with one request for a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// A normal reply: text echoing the task, and a call of the first tool
    /// sent (if any) with arguments `{"task": <task>}`.
    Succeed,
    /// An error status with the provider's JSON error body, and a
    /// `Retry-After` header in seconds when given.
    Status {
        /// The HTTP status.
        code: u16,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// Never answers; the request stays open until the client gives up or
    /// the fake is dropped.
    Hang,
    /// A 200 whose JSON body is not the documented shape.
    Malformed,
    /// Waits, then succeeds.
    Delay(Duration),
    /// A normal reply whose text is the given content, which its tool call
    /// (when tools were sent) carries too, as its one argument `text`.
    Reply(String),
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The path, e.g. `/v1/chat/completions` or `/v1/messages`.
    pub path: String,
    /// The recorded headers that were present, by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (a JSON string of the raw text if it was not JSON).
    pub body: Value,
    /// The last user message's text, when the body had one.
    pub task: Option<String>,
    /// When it arrived, for asserting the waits between attempts.
    pub received_at: Instant,
}

/// A running fake provider. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeProvider {
    address: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Shared {
    scripts: Mutex<HashMap<String, VecDeque<Behaviour>>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

impl FakeProvider {
    /// Starts the fake on `127.0.0.1`, on a free port.
    pub async fn start() -> FakeProvider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake provider");
        let address = listener.local_addr().expect("the fake provider's address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");

        let shared = Arc::new(Shared::default());
        let (stop, stopped) = watch::channel(false);
        let (ready, is_ready) = oneshot::channel();

        let app = router(Arc::clone(&shared));
        std::thread::Builder::new()
            .name(format!("fake-provider-{}", address.port()))
            .spawn(move || serve(listener, app, stopped, ready))
            .expect("spawn the fake provider's thread");

        is_ready.await.expect("the fake provider started");
        FakeProvider {
            address,
            shared,
            stop,
        }
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The OpenAI base URL, `http://127.0.0.1:PORT/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    /// The Anthropic base URL, `http://127.0.0.1:PORT`.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Queues behaviours for requests whose task is `task`, after any already
    /// queued. Once a task's queue is empty its requests succeed.
    pub fn script(&self, task: &str, behaviours: Vec<Behaviour>) {
        lock(&self.shared.scripts)
            .entry(task.to_owned())
            .or_default()
            .extend(behaviours);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests for `task`, in arrival order.
    pub fn requests_for(&self, task: &str) -> Vec<RecordedRequest> {
        let requests = lock(&self.shared.requests);
        requests
            .iter()
            .filter(|request| request.task.as_deref() == Some(task))
            .cloned()
            .collect()
    }

    /// How many requests for `task` arrived (hung ones included).
    pub fn calls_for(&self, task: &str) -> usize {
        let requests = lock(&self.shared.requests);
        requests
            .iter()
            .filter(|request| request.task.as_deref() == Some(task))
            .count()
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// A panicking test must not take every later assertion down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .with_state(shared)
}

/// Runs the server until the fake is dropped. Dropping the runtime then ends
/// every connection, hung ones included.
fn serve(
    listener: std::net::TcpListener,
    app: Router,
    mut stopped: watch::Receiver<bool>,
    ready: oneshot::Sender<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the fake provider's runtime");

    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        let _ = ready.send(());
        tokio::select! {
            result = axum::serve(listener, app) => {
                if let Err(error) = result {
                    tracing::warn!(%error, "the fake provider stopped serving");
                }
            }
            _ = stopped.wait_for(|stop| *stop) => {}
        }
    });
}

/// The two wire formats the fake speaks.
#[derive(Debug, Clone, Copy)]
enum Wire {
    OpenAi,
    Anthropic,
}

async fn openai(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&shared, Wire::OpenAi, &uri, &headers, &body).await
}

async fn anthropic(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&shared, Wire::Anthropic, &uri, &headers, &body).await
}

async fn handle(
    shared: &Shared,
    wire: Wire,
    uri: &Uri,
    headers: &HeaderMap,
    raw: &[u8],
) -> Response {
    let body = serde_json::from_slice(raw)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(raw).into_owned()));
    let task = last_user_text(&body);
    shared.record(uri, headers, &body, task.as_deref());

    if let Some(refusal) = wire.check_headers(headers) {
        return refusal;
    }
    let Some(task) = task else {
        return wire.error(400, None, "The request has no user message.");
    };

    match shared.next_behaviour(&task) {
        Behaviour::Succeed => wire.success(&body, &task),
        Behaviour::Status { code, retry_after } => wire.error(
            code,
            retry_after,
            &format!("Scripted failure with status {code}."),
        ),
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Malformed => ok_json(json!({"fake": "not the documented shape"})),
        Behaviour::Delay(delay) => {
            tokio::time::sleep(delay).await;
            wire.success(&body, &task)
        }
        Behaviour::Reply(content) => wire.reply(&body, &content, &json!({"text": content})),
    }
}

impl Shared {
    fn record(&self, uri: &Uri, headers: &HeaderMap, body: &Value, task: Option<&str>) {
        let headers = RECORDED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?;
                Some((
                    (*name).to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                ))
            })
            .collect();
        let request = RecordedRequest {
            path: uri.path().to_owned(),
            headers,
            body: body.clone(),
            task: task.map(str::to_owned),
            received_at: Instant::now(),
        };
        lock(&self.requests).push(request);
    }

    fn next_behaviour(&self, task: &str) -> Behaviour {
        let mut scripts = lock(&self.scripts);
        scripts
            .get_mut(task)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Behaviour::Succeed)
    }
}

impl Wire {
    /// Refuses what the real API would: a missing key, or (Anthropic) a
    /// missing API version.
    fn check_headers(self, headers: &HeaderMap) -> Option<Response> {
        let has = |name: &str| headers.get(name).is_some_and(|value| !value.is_empty());
        match self {
            Wire::OpenAi => {
                let bearer = headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok())
                    .is_some_and(|value| value.starts_with("Bearer ") && value.len() > 7);
                (!bearer).then(|| self.error(401, None, "Missing bearer authentication."))
            }
            Wire::Anthropic if !has("x-api-key") => {
                Some(self.error(401, None, "x-api-key header is required."))
            }
            Wire::Anthropic if !has("anthropic-version") => {
                Some(self.error(400, None, "anthropic-version header is required."))
            }
            Wire::Anthropic => None,
        }
    }

    fn success(self, request: &Value, task: &str) -> Response {
        let output = format!("Fake reply to: {task}");
        self.reply(request, &output, &json!({"task": task}))
    }

    /// A reply with `output` as its text and, when tools were sent, one call
    /// of the first with `arguments`.
    fn reply(self, request: &Value, output: &str, arguments: &Value) -> Response {
        let usage = (word_count(request), words(output));
        let call = first_tool_name(self, request).map(|name| (name, arguments));
        let body = match self {
            Wire::OpenAi => openai_completion(request, output, call, usage),
            Wire::Anthropic => anthropic_message(request, output, call, usage),
        };
        ok_json(body)
    }

    fn error(self, code: u16, retry_after: Option<u64>, message: &str) -> Response {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let kind = error_kind(status.as_u16());
        let body = match self {
            Wire::OpenAi => {
                json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            }
            Wire::Anthropic => {
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
        };

        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert("retry-after", seconds.into());
        }
        response
    }
}

fn ok_json(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn openai_completion(
    request: &Value,
    output: &str,
    call: Option<(&str, &Value)>,
    (input_tokens, output_tokens): (u64, u64),
) -> Value {
    let mut message = json!({"role": "assistant", "content": output});
    let mut finish_reason = "stop";
    if let Some((name, arguments)) = call {
        // OpenAI sends arguments as a JSON document inside a string.
        let arguments = arguments.to_string();
        let function = json!({"name": name, "arguments": arguments});
        message["tool_calls"] =
            json!([{"id": "call_fake_1", "type": "function", "function": function}]);
        finish_reason = "tool_calls";
    }

    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens
        }
    })
}

fn anthropic_message(
    request: &Value,
    output: &str,
    call: Option<(&str, &Value)>,
    (input_tokens, output_tokens): (u64, u64),
) -> Value {
    let mut content = vec![json!({"type": "text", "text": output})];
    let mut stop_reason = "end_turn";
    if let Some((name, input)) = call {
        content
            .push(json!({"type": "tool_use", "id": "toolu_fake_1", "name": name, "input": input}));
        stop_reason = "tool_use";
    }

    json!({
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": request.get("model").cloned().unwrap_or(Value::Null),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
    })
}

/// The text of the last user message: a plain string, or the text blocks of
/// a content array joined.
fn last_user_text(body: &Value) -> Option<String> {
    let messages = body.get("messages")?.as_array()?;
    let user = messages
        .iter()
        .rev()
        .find(|message| message["role"] == "user")?;
    match &user["content"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(blocks) => Some(
            blocks
                .iter()
                .filter_map(|block| block["text"].as_str())
                .collect(),
        ),
        _ => None,
    }
}

/// The name of the first tool sent, in either format.
fn first_tool_name(wire: Wire, request: &Value) -> Option<&str> {
    let first = request.get("tools")?.get(0)?;
    let name = match wire {
        Wire::OpenAi => &first["function"]["name"],
        Wire::Anthropic => &first["name"],
    };
    name.as_str()
}

/// Words of the system prompt and every message: a stand-in token count.
fn word_count(request: &Value) -> u64 {
    let system = request["system"].as_str().map_or(0, words);
    let messages = request["messages"].as_array().map_or(0, |messages| {
        messages
            .iter()
            .filter_map(|message| message["content"].as_str())
            .map(words)
            .sum()
    });
    system + messages
}

fn words(text: &str) -> u64 {
    u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX)
}

/// The `type` each provider puts in its error body for a status.
fn error_kind(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}
