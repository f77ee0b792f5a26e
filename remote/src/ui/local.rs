//! `pogo ui`: the dashboard on the operator's own machine.
//!
//! A plain-HTTP server on loopback only, as `kubectl proxy` is: the browser talks to it, and it
//! talks to the dispatcher with the operator's certificate, so the browser needs no certificate
//! and the key never leaves its file. It also serves the runs of the local state dir.
//!
//! Loopback is not a wall on a shared machine, and a web page in the same browser can send
//! requests to it, so:
//!
//! - It opens with a one-time token in the URL it prints; the first request that brings it gets
//!   an HttpOnly, SameSite=Strict session cookie in exchange and is sent on without the token
//!   (out of the address bar and the history). The token then no longer works, and every
//!   request needs the cookie.
//! - It answers only to its own name in the `Host` header (`127.0.0.1:PORT`, `localhost:PORT`,
//!   `[::1]:PORT`): a page whose DNS name is turned to 127.0.0.1 (DNS rebinding) is refused.
//! - A request that changes something needs the session's CSRF token ([`super::csrf_allows`]).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use tokio::sync::watch;

use super::runs::{event_record, read_lines, LocalRuns, LogReader, RunsError};
use super::{cookie, csrf_allows, page, random_token, same, secure_headers, UiConfig};
use crate::api::{ApiError, StreamQuery};
use crate::client::Client;

/// The cookie of a `pogo ui` session, followed by the port: browsers keep one set of cookies
/// for every port of a host, and a second `pogo ui` must not replace the first one's session.
pub const SESSION_COOKIE: &str = "pogo_session_";
/// How often a followed local run is read again.
const POLL: Duration = Duration::from_millis(250);
/// At most this many lines in one read of a local file.
const PAGE: usize = 1000;
/// The largest request body a page sends (an action's JSON).
const MAX_BODY: usize = 1 << 20;

/// What `pogo ui` serves.
pub struct LocalUiConfig {
    /// Where to listen: a loopback address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The dispatcher, reached with the operator's certificate; `None` for local runs only.
    pub dispatcher: Option<Client>,
    /// The local state dir's runs; `None` to show none.
    pub runs: Option<LocalRuns>,
}

/// A running `pogo ui`.
pub struct LocalUi {
    addr: SocketAddr,
    token: String,
    closing: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct App {
    dispatcher: Option<Client>,
    runs: Option<LocalRuns>,
    /// The names the `Host` header may hold, the address it listens on first.
    hosts: Arc<[String]>,
    port: u16,
    sessions: Arc<Mutex<Sessions>>,
    closing: watch::Receiver<bool>,
}

struct Sessions {
    /// The one-time token, until it is used.
    token: Option<String>,
    /// The cookies of the sessions it opened.
    open: HashSet<String>,
}

impl LocalUi {
    /// Binds (loopback only) and serves in the background.
    pub async fn start(config: LocalUiConfig) -> Result<LocalUi, String> {
        if !config.listen.ip().is_loopback() {
            return Err(format!(
                "pogo ui listens on loopback only (127.0.0.1 or ::1), not on {}: it serves \
                 the dispatcher with your certificate to whoever reaches it",
                config.listen.ip()
            ));
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let port = addr.port();
        let token = random_token();
        let (closing, closing_rx) = watch::channel(false);
        let app = App {
            dispatcher: config.dispatcher,
            runs: config.runs,
            hosts: [
                addr.to_string(),
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ]
            .into(),
            port,
            sessions: Arc::new(Mutex::new(Sessions {
                token: Some(token.clone()),
                open: HashSet::new(),
            })),
            closing: closing_rx.clone(),
        };
        let router = router(app);
        let mut stop = closing_rx;
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|closing| *closing).await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                eprintln!("pogo ui: the server stopped: {error}");
            }
        });
        Ok(LocalUi {
            addr,
            token,
            closing,
            server,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address to open, with the one-time token.
    pub fn url(&self) -> String {
        format!("http://{}/ui/?token={}", self.addr, self.token)
    }

    /// Stops serving: open streams end.
    pub async fn shutdown(self) {
        self.closing.send_replace(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { redirect("/ui/") }))
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/", get(ui_page))
        .route("/ui/{file}", get(ui_page))
        .route("/v1/{*rest}", any(forward))
        .route("/local/v1/runs", get(runs_list))
        .route("/local/v1/runs/{id}", get(run_detail))
        .route("/local/v1/runs/{id}/plan", get(run_plan))
        .route("/local/v1/runs/{id}/events", get(run_events))
        .route("/local/v1/runs/{id}/output", get(run_output))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page or endpoint") })
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// The checks every request passes, in order: the `Host` header, the one-time token or the
/// session cookie, and the CSRF token of a request that changes something.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !app.hosts.iter().any(|name| name == host) {
        return error(
            StatusCode::FORBIDDEN,
            &format!(
                "pogo ui answers to http://{} only, not to the host `{host}`",
                app.hosts[0]
            ),
        );
    }
    if let Some(given) = token_in(request.uri().query()) {
        return exchange(&app, &given);
    }
    let name = format!("{SESSION_COOKIE}{}", app.port);
    let known = cookie(request.headers(), &name).is_some_and(|session| {
        let sessions = app.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.open.iter().any(|open| same(open, session))
    });
    if !known {
        return error(
            StatusCode::UNAUTHORIZED,
            "no session: open the address with the token that `pogo ui` printed (it works \
             once; start `pogo ui` again for a new one)",
        );
    }
    if request.method() != Method::GET && !csrf_allows(request.headers()) {
        return error(
            StatusCode::FORBIDDEN,
            "a request that changes something needs the CSRF token of its session (the \
             X-Pogo-Csrf header, equal to the pogo_csrf cookie)",
        );
    }
    let mut response = next.run(request).await;
    secure_headers(response.headers_mut());
    response
}

fn token_in(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "token")
        .map(|(_, value)| value.to_string())
}

/// Swaps the one-time token for a session cookie, and sends the browser to the dashboard
/// without the token in its address.
fn exchange(app: &App, given: &str) -> Response {
    let mut sessions = app.sessions.lock().unwrap_or_else(|e| e.into_inner());
    let valid = sessions
        .token
        .as_deref()
        .is_some_and(|token| same(token, given));
    if !valid {
        return error(
            StatusCode::UNAUTHORIZED,
            "this token is not (or no longer) valid: it works once; start `pogo ui` again \
             for a new one",
        );
    }
    sessions.token = None;
    let session = random_token();
    sessions.open.insert(session.clone());
    let mut response = redirect("/ui/");
    let cookie = format!(
        "{SESSION_COOKIE}{}={session}; Path=/; HttpOnly; SameSite=Strict",
        app.port
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    let mut response = (
        status,
        Json(ApiError {
            error: message.to_string(),
        }),
    )
        .into_response();
    secure_headers(response.headers_mut());
    response
}

async fn ui_page(
    State(app): State<App>,
    file: Option<Path<String>>,
    headers: HeaderMap,
) -> Response {
    let name = file.map(|Path(name)| name).unwrap_or_default();
    let config = UiConfig {
        mode: "local",
        jobs: app.dispatcher.is_some(),
        runs: app.runs.is_some(),
        dispatcher: app.dispatcher.as_ref().map(|c| c.url().to_string()),
        actions: app.dispatcher.is_some(),
    };
    page(&name, &headers, &config, false)
}

/// `/v1/...`: to the dispatcher, with the operator's certificate; the answer comes back as it
/// is, streams included.
async fn forward(State(app): State<App>, request: Request) -> Response {
    let Some(client) = app.dispatcher.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "pogo ui was started without a dispatcher: it shows local runs only",
        );
    };
    let method = request.method().clone();
    let target = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body = match axum::body::to_bytes(request.into_body(), MAX_BODY).await {
        Ok(body) => body.to_vec(),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request: {e}"),
            )
        }
    };
    let method = match reqwest::Method::from_bytes(method.as_str().as_bytes()) {
        Ok(method) => method,
        Err(_) => return error(StatusCode::METHOD_NOT_ALLOWED, "unsupported method"),
    };
    // A stream follows for as long as it has to; any other answer comes in the time of an
    // ordinary call, so a dispatcher that stalls does not hang the page's polls.
    let follows = target.contains("follow=true");
    let call = client.forward(method, &target, body);
    let answered = if follows {
        Ok(call.await)
    } else {
        tokio::time::timeout(Client::REQUEST_TIMEOUT, call).await
    };
    let answer = match answered.unwrap_or_else(|_| {
        Err(crate::client::ClientError::Invalid(format!(
            "the dispatcher did not answer within {} s",
            Client::REQUEST_TIMEOUT.as_secs()
        )))
    }) {
        Ok(answer) => answer,
        Err(e) => return error(StatusCode::BAD_GATEWAY, &e.to_string()),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

fn runs_error(e: RunsError) -> Response {
    let status = match e {
        RunsError::Off | RunsError::NotFound(_) => StatusCode::NOT_FOUND,
        RunsError::Unreadable(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &e.to_string())
}

/// Runs `read` on the state dir's runs, off the async threads (it reads files).
async fn read_runs<T: Send + 'static>(
    app: &App,
    read: impl FnOnce(&LocalRuns) -> Result<T, RunsError> + Send + 'static,
) -> Result<T, RunsError> {
    let runs = app.runs.clone().ok_or(RunsError::Off)?;
    tokio::task::spawn_blocking(move || read(&runs))
        .await
        .unwrap_or_else(|_| {
            Err(RunsError::Unreadable(
                "a read of the state dir failed".into(),
            ))
        })
}

/// Answers with what `read` gives, as JSON.
async fn runs_json<T: serde::Serialize + Send + 'static>(
    app: &App,
    read: impl FnOnce(&LocalRuns) -> Result<T, RunsError> + Send + 'static,
) -> Response {
    match read_runs(app, read).await {
        Ok(value) => Json(value).into_response(),
        Err(e) => runs_error(e),
    }
}

async fn runs_list(State(app): State<App>) -> Response {
    runs_json(&app, LocalRuns::list).await
}

async fn run_detail(State(app): State<App>, Path(id): Path<String>) -> Response {
    runs_json(&app, move |runs| runs.detail(&id)).await
}

async fn run_plan(State(app): State<App>, Path(id): Path<String>) -> Response {
    runs_json(&app, move |runs| runs.plan(&id)).await
}

/// How a line of a followed file (its number, its text) becomes a JSON record, if it is one.
type ToRecord = Box<dyn FnMut(u64, String) -> Option<String> + Send>;

async fn run_events(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Response {
    let found = {
        let id = id.clone();
        read_runs(&app, move |runs| runs.journal(&id)).await
    };
    let (path, runs) = match (found, app.runs.clone()) {
        (Ok((path, _)), Some(runs)) => (path, runs),
        (Err(e), _) => return runs_error(e),
        (_, None) => return runs_error(RunsError::Off),
    };
    let lines: ToRecord = Box::new(|seq, line| {
        event_record(seq, &line).and_then(|record| serde_json::to_string(&record).ok())
    });
    follow_file(app, path, query, lines, move || {
        runs.journal(&id).map(|(_, ended)| ended)
    })
}

async fn run_output(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Response {
    let Some(host) = query.host.clone() else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the host whose output to show: ?host=NAME",
        );
    };
    let found = {
        let (id, host) = (id.clone(), host.clone());
        read_runs(&app, move |runs| runs.log(&id, &host)).await
    };
    let (path, runs) = match (found, app.runs.clone()) {
        (Ok((path, _)), Some(runs)) => (path, runs),
        (Err(e), _) => return runs_error(e),
        (_, None) => return runs_error(RunsError::Off),
    };
    let mut reader = LogReader::new(&host);
    let lines: ToRecord = Box::new(move |seq, line| {
        reader
            .record(seq, line)
            .and_then(|record| serde_json::to_string(&record).ok())
    });
    follow_file(app, path, query, lines, move || {
        runs.log(&id, &host).map(|(_, ended)| ended)
    })
}

/// Answers with the records of the lines of `path` after line `after` as NDJSON; with
/// `follow`, reads the file again every [`POLL`] until `ended` says the run has ended and
/// every line was sent; with `limit`, sends at most that many lines' records and ends.
fn follow_file(
    app: App,
    path: std::path::PathBuf,
    query: StreamQuery,
    lines: ToRecord,
    ended: impl Fn() -> Result<bool, RunsError> + Send + Sync + 'static,
) -> Response {
    let (paged, follow) = (query.is_paged(), query.follows());
    let limit = query.page_size(PAGE);
    let ended = Arc::new(ended);
    let tail = Tail {
        path,
        offset: 0,
        number: 0,
        after: query.after,
        lines,
    };
    let closing = app.closing.clone();
    let state = (Some(tail), closing);
    let body = futures_util::stream::unfold(state, move |(tail, mut closing)| {
        let ended = Arc::clone(&ended);
        async move {
            let mut tail = tail?;
            loop {
                // Whether the run had ended before this read: then what it reads is all.
                let was_ended = {
                    let ended = Arc::clone(&ended);
                    tokio::task::spawn_blocking(move || ended())
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .unwrap_or(true)
                };
                let read = tokio::task::spawn_blocking(move || {
                    let read = tail.read(limit);
                    (tail, read)
                })
                .await;
                let Ok((back, Ok((text, at_end)))) = read else {
                    return None;
                };
                tail = back;
                let done = paged || (at_end && (!follow || was_ended));
                if !text.is_empty() || done {
                    let next = (!done).then_some(tail);
                    return Some((
                        Ok::<_, std::convert::Infallible>(Bytes::from(text)),
                        (next, closing),
                    ));
                }
                if !at_end {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = closing.changed() => return None,
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Where a followed file has been read to.
struct Tail {
    path: std::path::PathBuf,
    /// The byte offset and the number of the last complete line read.
    offset: u64,
    number: u64,
    /// Lines up to this number are read (a log's attempt markers count) but not sent.
    after: u64,
    lines: ToRecord,
}

impl Tail {
    /// Reads on: the records (NDJSON) of the lines after `after`, at most `limit` of them, and
    /// whether the end of the file was reached. A line that is no record (an attempt marker)
    /// does not count against `limit`.
    fn read(&mut self, limit: usize) -> std::io::Result<(String, bool)> {
        let mut text = String::new();
        let mut records = 0;
        loop {
            let want = if self.number < self.after {
                usize::try_from(self.after - self.number).map_or(PAGE, |n| n.min(PAGE))
            } else {
                limit - records
            };
            let read = read_lines(&self.path, self.offset, self.number, want)?;
            let got = read.lines.len();
            (self.offset, self.number) = (read.offset, read.number);
            for (seq, line) in read.lines {
                if let Some(json) = (self.lines)(seq, line) {
                    if seq > self.after {
                        text.push_str(&json);
                        text.push('\n');
                        records += 1;
                    }
                }
            }
            if got < want {
                return Ok((text, true));
            }
            if records >= limit {
                return Ok((text, false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pogo_executor::events::Event;
    use pogo_executor::rundir::{RunDir, RunSpec};
    use pogo_executor::transport::TransportSpec;
    use pogo_model::Plan;

    fn event(value: serde_json::Value) -> Event {
        serde_json::from_value(value).unwrap()
    }

    /// `pogo ui` on the runs of `state`, and a session of it: the server, a client, the
    /// session's cookie and the server's address.
    async fn open(state: &std::path::Path) -> (LocalUi, reqwest::Client, String, String) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ui = LocalUi::start(LocalUiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            dispatcher: None,
            runs: Some(LocalRuns::new(state)),
        })
        .await
        .unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let opened = http.get(ui.url()).send().await.unwrap();
        assert_eq!(opened.status(), 303);
        let session = opened.headers()[reqwest::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let base = format!("http://{}", ui.local_addr());
        (ui, http, session, base)
    }

    /// A run of `hosts` in `state` whose process has ended: its id.
    fn ended_run(state: &std::path::Path, hosts: &str) -> String {
        let spec = RunSpec {
            transport: TransportSpec::Local,
            retry_delay_ms: 0,
            limits: Default::default(),
            overrides: Vec::new(),
        };
        let new =
            RunDir::create(state, &Plan::sketch(hosts), &spec, std::time::UNIX_EPOCH).unwrap();
        new.dir.id().to_string()
    }

    /// Output in pages: an attempt marker is no line of output and does not shorten a page,
    /// and a page that starts after it still knows which attempt its lines are of.
    #[tokio::test]
    async fn output_pages_count_lines_of_output_and_keep_their_attempt() {
        let state = tempfile::tempdir().unwrap();
        let id = ended_run(state.path(), "a");
        let dir = RunDir::find(state.path(), &id).unwrap();
        std::fs::create_dir_all(dir.log_dir()).unwrap();
        std::fs::write(
            dir.log_path("a"),
            "one\n--- attempt 2 ---\nstderr: two\nthree\n",
        )
        .unwrap();
        let (ui, http, session, base) = open(state.path()).await;
        let page = |after: u64| {
            let request = http
                .get(format!(
                    "{base}/local/v1/runs/{id}/output?host=a&after={after}&limit=2"
                ))
                .header(reqwest::header::COOKIE, &session);
            async move {
                let text = request.send().await.unwrap().text().await.unwrap();
                text.lines()
                    .map(|l| serde_json::from_str::<crate::api::OutputRecord>(l).unwrap())
                    .map(|r| (r.seq, r.attempt, r.stream, r.text))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            page(0).await,
            [
                (1, 1, "stdout".to_string(), "one".to_string()),
                (3, 2, "stderr".to_string(), "two".to_string())
            ]
        );
        assert_eq!(
            page(3).await,
            [(4, 2, "stdout".to_string(), "three".to_string())]
        );
        assert_eq!(page(4).await, []);
        // Past the end: nothing, and lines written later keep their own numbers.
        assert_eq!(page(9).await, []);
        ui.shutdown().await;
    }

    /// A followed local run's events come as its journal grows, and the stream ends once its
    /// process let go of it and every line was sent.
    #[tokio::test]
    async fn a_followed_local_run_streams_as_its_journal_grows_and_ends_with_it() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let state = tempfile::tempdir().unwrap();
        let spec = RunSpec {
            transport: TransportSpec::Local,
            retry_delay_ms: 0,
            limits: Default::default(),
            overrides: Vec::new(),
        };
        let new = RunDir::create(
            state.path(),
            &Plan::sketch("a b"),
            &spec,
            std::time::UNIX_EPOCH,
        )
        .unwrap();
        let (lock, mut journal, id) = (new.lock, new.journal, new.dir.id().to_string());
        journal
            .append(&[event(
                serde_json::json!({"event": "run_started", "run_id": id,
                "hosts": 2, "command": "true", "resumed": false, "at_ms": 0}),
            )])
            .unwrap();
        let (ui, http, session, base) = open(state.path()).await;
        let mut stream = http
            .get(format!(
                "{base}/local/v1/runs/{id}/events?after=0&follow=true"
            ))
            .header(reqwest::header::COOKIE, &session)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        let mut seen = String::new();
        let mut next = async || {
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
                .await
                .expect("a chunk in time")
                .unwrap();
            chunk.map(|c| String::from_utf8_lossy(&c).into_owned())
        };
        seen.push_str(&next().await.unwrap());
        assert!(seen.contains(r#""seq":1,"event":"run_started""#), "{seen}");
        // The run goes on: what it journals comes, numbered on.
        journal
            .append(&[event(
                serde_json::json!({"event": "host_started", "host": "a", "at_ms": 1}),
            )])
            .unwrap();
        let more = next().await.unwrap();
        assert!(more.contains(r#""seq":2,"event":"host_started""#), "{more}");
        // It finishes and its process ends: the rest comes, then the stream ends.
        journal
            .append(&[event(
                serde_json::json!({"event": "run_finished", "result": "succeeded",
                "succeeded": 2, "failed": 0, "timed_out": 0, "unreachable": 0, "skipped": 0,
                "cancelled": 0, "at_ms": 2}),
            )])
            .unwrap();
        drop(lock);
        let mut rest = String::new();
        while let Some(chunk) = next().await {
            rest.push_str(&chunk);
        }
        assert!(rest.contains(r#""seq":3,"event":"run_finished""#), "{rest}");
        // After seq 2, only what came after it.
        let after = http
            .get(format!("{base}/local/v1/runs/{id}/events?after=2"))
            .header(reqwest::header::COOKIE, &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(after.lines().count(), 1, "{after}");
        assert!(after.starts_with(r#"{"seq":3,"#), "{after}");
        ui.shutdown().await;
    }
}
