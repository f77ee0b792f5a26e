//! The dispatcher's HTTPS client, for operators and workers alike: one method per API call
//! (see [`crate::api`]), errors that say what went wrong for a person.
//!
//! One [`Client`] keeps a pool of HTTP/1.1 connections to its dispatcher, with mutual TLS
//! (the certificate files of [`TlsFiles`]). Ordinary calls give up after
//! [`Client::REQUEST_TIMEOUT`]; a poll waits its `wait_ms` and then some; streams have no
//! time limit, since a followed job may stay quiet for hours.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::*;
use crate::tls::TlsFiles;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The dispatcher could not be reached, or the connection broke (worth retrying).
    #[error("cannot reach the dispatcher at {url}: {message}")]
    Connect { url: String, message: String },
    /// The TLS handshake refused a certificate (the dispatcher's, or this client's): final,
    /// since trying again meets the same certificates, and no request was taken.
    #[error("cannot talk to the dispatcher at {url}: {message}")]
    Refused { url: String, message: String },
    /// The dispatcher answered with an error status; `message` is its [`ApiError`].
    #[error("the dispatcher refused: {message} (HTTP {status})")]
    Status { status: u16, message: String },
    /// The answer could not be read.
    #[error("unexpected answer from the dispatcher: {0}")]
    Decode(String),
    /// The certificate files could not be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The client could not be set up: the dispatcher's URL is not one.
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// Whether the dispatcher is away rather than refusing: the connection failed or broke,
    /// or it answered with a server error (5xx). Calls that failed so are worth repeating.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { .. } => true,
            ClientError::Status { status, .. } => *status >= 500,
            ClientError::Refused { .. }
            | ClientError::Decode(_)
            | ClientError::Tls(_)
            | ClientError::Invalid(_) => false,
        }
    }
}

/// A stream of records that ends when the dispatcher ends it.
pub type RecordStream<T> = Pin<Box<dyn Stream<Item = Result<T, ClientError>> + Send>>;

/// A connection pool to a dispatcher, or to whichever of several leads.
///
/// Given several URLs (`https://d1:8443,https://d2:8443`), calls go to the current one; when
/// it cannot be reached, or answers that no dispatcher leads, the next is tried, and a call
/// waits up to [`Client::TAKEOVER_PATIENCE`] for a takeover to end. A standby's redirect is
/// followed, and its leader becomes the current URL when it is one of them.
#[derive(Clone)]
pub struct Client {
    /// Each dispatcher: its URL as given (without a trailing `/`), and the URL that endpoint
    /// paths are appended to.
    dispatchers: Arc<Vec<(String, Url)>>,
    /// The one calls go to now.
    current: Arc<AtomicUsize>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.url()).finish()
    }
}

impl Client {
    /// How long an ordinary call may take, connecting included.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    /// How long connecting (TCP and TLS) may take.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// How much longer than its `wait_ms` a poll may take before it is given up.
    pub const POLL_GRACE: Duration = Duration::from_secs(15);

    /// How long a call waits, trying each dispatcher in turn, while none leads (a takeover
    /// takes about a lease).
    pub const TAKEOVER_PATIENCE: Duration = Duration::from_secs(20);

    /// `url` is `https://HOST:PORT` (a trailing `/` is fine), or several, comma-separated:
    /// dispatchers sharing one database, of which one leads.
    pub fn new(url: &str, files: &TlsFiles) -> Result<Client, ClientError> {
        let tls = crate::tls::client_config(files)?;
        Client::build(url, tls, false)
    }

    /// A client with a TLS configuration made elsewhere. With `allow_http`, `http://` URLs
    /// are accepted too (for tests of the HTTP side alone).
    #[cfg(test)]
    pub(crate) fn with_tls_config(
        url: &str,
        tls: rustls::ClientConfig,
        allow_http: bool,
    ) -> Result<Client, ClientError> {
        Client::build(url, tls, allow_http)
    }

    fn build(
        url: &str,
        tls: rustls::ClientConfig,
        allow_http: bool,
    ) -> Result<Client, ClientError> {
        let dispatchers = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                Ok((
                    u.trim_end_matches('/').to_string(),
                    parse_url(u, allow_http)?,
                ))
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        if dispatchers.is_empty() {
            return Err(ClientError::Invalid(
                "no dispatcher URL given; expected https://HOST:PORT".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .connect_timeout(Client::CONNECT_TIMEOUT)
            // The dispatcher is reached directly: a proxy from the environment would only
            // stand between the two ends of the mutual TLS.
            .no_proxy()
            .user_agent(concat!("pogo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ClientError::Invalid(format!(
                    "cannot set up the HTTPS client for {url}: {}",
                    describe(&e)
                ))
            })?;
        Ok(Client {
            dispatchers: Arc::new(dispatchers),
            current: Arc::new(AtomicUsize::new(0)),
            http,
        })
    }

    /// The URL of the dispatcher calls go to now, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.dispatchers[self.index()].0
    }

    fn index(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.dispatchers.len()
    }

    fn root(&self) -> Url {
        self.dispatchers[self.index()].1.clone()
    }

    /// After a failed call to dispatcher `from`: the next one gets the calls (unless another
    /// call moved on already).
    fn move_on(&self, from: usize) {
        let next = (from + 1) % self.dispatchers.len();
        let _ = self
            .current
            .compare_exchange(from, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A call answered from `answered` (after a standby's redirect): the leader there gets
    /// the calls from now on, when it is one of the dispatchers.
    fn learn(&self, answered: &Url) {
        let same = |root: &Url| {
            root.scheme() == answered.scheme()
                && root.host_str() == answered.host_str()
                && root.port_or_known_default() == answered.port_or_known_default()
        };
        if let Some(at) = self.dispatchers.iter().position(|(_, root)| same(root)) {
            self.current.store(at, Ordering::Relaxed);
        }
    }

    // Operators.

    /// `POST /v1/jobs`.
    pub async fn submit(&self, job: &SubmitJob) -> Result<JobSummary, ClientError> {
        self.call(Method::POST, &["jobs"], Some(job)).await
    }

    /// `GET /v1/jobs`: newest first.
    pub async fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.call(Method::GET, &["jobs"], None::<&()>).await
    }

    /// `GET /v1/jobs/{job}`.
    pub async fn job(&self, id: &str) -> Result<JobDetail, ClientError> {
        self.call(Method::GET, &["jobs", id], None::<&()>).await
    }

    /// `GET /v1/jobs/{job}/plan`: the plan the job runs.
    pub async fn plan(&self, id: &str) -> Result<pogo_model::Plan, ClientError> {
        self.call(Method::GET, &["jobs", id, "plan"], None::<&()>)
            .await
    }

    /// Sends `method PATH_AND_QUERY` (under `/v1/`, as a browser asked `pogo ui` for it) with
    /// `body` as JSON, and gives back the answer whatever its status, its body unread: `pogo
    /// ui` relays it, streams included. Only the connection failing is an error.
    pub async fn forward(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> Result<Response, ClientError> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        if !is_operator_path(path) {
            return Err(ClientError::Invalid(format!(
                "not an operator's endpoint: {path_and_query}"
            )));
        }
        let mut url = self.root();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{path}"));
        url.set_query(query);
        // Checked again as the parser resolved it (it reads `\` as `/`, for one).
        let resolved = url.path().strip_prefix(&base).unwrap_or_default();
        if !is_operator_path(resolved) {
            return Err(ClientError::Invalid(format!(
                "not an operator's endpoint: {path_and_query}"
            )));
        }
        let mut request = self.http.request(method, url);
        if !body.is_empty() {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        request
            .send()
            .await
            .map_err(|e| connect_error(self.url(), &e))
    }

    /// The job's events after sequence number `after`; with `follow`, new ones as they
    /// happen, until the job ends.
    pub async fn events(
        &self,
        id: &str,
        after: u64,
        follow: bool,
    ) -> Result<RecordStream<EventRecord>, ClientError> {
        let mut url = self.endpoint(&["jobs", id, "events"]);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string())
            .append_pair("follow", if follow { "true" } else { "false" });
        let response = self.send(self.http.get(url.clone()), &url).await?;
        Ok(ndjson(
            response,
            self.url().to_string(),
            url.path().to_string(),
        ))
    }

    /// Output lines of the job (of one host when `host` is given) after sequence number
    /// `after`; with `follow`, new ones until the job ends.
    pub async fn output(
        &self,
        id: &str,
        host: Option<&str>,
        after: u64,
        follow: bool,
    ) -> Result<RecordStream<OutputRecord>, ClientError> {
        let mut url = self.endpoint(&["jobs", id, "output"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(host) = host {
                query.append_pair("host", host);
            }
            query
                .append_pair("after", &after.to_string())
                .append_pair("follow", if follow { "true" } else { "false" });
        }
        let response = self.send(self.http.get(url.clone()), &url).await?;
        Ok(ndjson(
            response,
            self.url().to_string(),
            url.path().to_string(),
        ))
    }

    /// `GET /v1/jobs/{job}/why`: why these hosts have not started, or (`hosts` empty) the
    /// heads of the job's threads.
    pub async fn why(&self, id: &str, hosts: &[String]) -> Result<Vec<HostWhy>, ClientError> {
        let mut url = self.endpoint(&["jobs", id, "why"]);
        if !hosts.is_empty() {
            url.query_pairs_mut().append_pair("hosts", &hosts.join(","));
        }
        let request = self.http.get(url.clone()).timeout(Client::REQUEST_TIMEOUT);
        let response = self.send(request, &url).await?;
        self.decode(response, &url).await
    }

    /// `POST /v1/jobs/{job}/halt`.
    pub async fn halt(&self, id: &str, body: &HaltJob) -> Result<JobSummary, ClientError> {
        self.call(Method::POST, &["jobs", id, "halt"], Some(body))
            .await
    }

    /// `POST /v1/jobs/{job}/resume`.
    pub async fn resume(&self, id: &str, body: &ResumeJob) -> Result<JobSummary, ClientError> {
        self.call(Method::POST, &["jobs", id, "resume"], Some(body))
            .await
    }

    /// `POST /v1/jobs/{job}/retry`.
    pub async fn retry(&self, id: &str, body: &RetryJob) -> Result<JobSummary, ClientError> {
        self.call(Method::POST, &["jobs", id, "retry"], Some(body))
            .await
    }

    /// `POST /v1/jobs/{job}/approve`: approves a step the job waits at.
    pub async fn approve(&self, id: &str, step: &str) -> Result<JobSummary, ClientError> {
        let body = ApproveStep {
            step: step.to_string(),
        };
        self.call(Method::POST, &["jobs", id, "approve"], Some(&body))
            .await
    }

    /// `POST /v1/jobs/{job}/close`.
    pub async fn close(&self, id: &str) -> Result<JobSummary, ClientError> {
        self.call(
            Method::POST,
            &["jobs", id, "close"],
            Some(&serde_json::json!({})),
        )
        .await
    }

    /// `GET /v1/fleets`: each fleet's current revision.
    pub async fn fleets(&self) -> Result<Vec<FleetRevisionInfo>, ClientError> {
        self.call(Method::GET, &["fleets"], None::<&()>).await
    }

    /// `POST /v1/fleets/{fleet}`.
    pub async fn push_fleet(
        &self,
        fleet: &str,
        body: &PushFleet,
    ) -> Result<FleetRevisionInfo, ClientError> {
        self.call(Method::POST, &["fleets", fleet], Some(body))
            .await
    }

    /// `GET /v1/fleets/{fleet}`: every revision, oldest first.
    pub async fn fleet_revisions(
        &self,
        fleet: &str,
    ) -> Result<Vec<FleetRevisionInfo>, ClientError> {
        self.call(Method::GET, &["fleets", fleet], None::<&()>)
            .await
    }

    /// `GET /v1/fleets/{fleet}/revisions/{n}`; `None`: the current one.
    pub async fn fleet_revision(
        &self,
        fleet: &str,
        revision: Option<u32>,
    ) -> Result<FleetRevision, ClientError> {
        let revision = revision.map_or("current".to_string(), |n| n.to_string());
        self.call(
            Method::GET,
            &["fleets", fleet, "revisions", &revision],
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/workers`.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        self.call(Method::GET, &["workers"], None::<&()>).await
    }

    /// `GET /v1/audit`: the operators' actions after `after`, oldest first, every page.
    pub async fn audit(&self, after: u64) -> Result<Vec<AuditRecord>, ClientError> {
        let mut all: Vec<AuditRecord> = Vec::new();
        let mut after = after;
        loop {
            let mut url = self.endpoint(&["audit"]);
            url.query_pairs_mut()
                .append_pair("after", &after.to_string());
            let request = self.http.get(url.clone()).timeout(Client::REQUEST_TIMEOUT);
            let response = self.send(request, &url).await?;
            let page: Vec<AuditRecord> = self.decode(response, &url).await?;
            let Some(last) = page.last() else {
                return Ok(all);
            };
            after = last.seq;
            all.extend(page);
        }
    }

    // Workers.

    /// `POST /v1/worker/poll`: waits up to `body.wait_ms` for tasks (and gives up
    /// [`Client::POLL_GRACE`] later).
    pub async fn poll(&self, body: &Poll) -> Result<Tasks, ClientError> {
        let timeout = Duration::from_millis(body.wait_ms) + Client::POLL_GRACE;
        let url = self.endpoint(&["worker", "poll"]);
        let request = self.http.post(url.clone()).json(body).timeout(timeout);
        let response = self.send(request, &url).await?;
        self.decode(response, &url).await
    }

    /// `POST /v1/worker/output`.
    pub async fn send_output(&self, body: &OutputChunk) -> Result<(), ClientError> {
        let url = self.endpoint(&["worker", "output"]);
        let request = self
            .http
            .post(url.clone())
            .json(body)
            .timeout(Client::REQUEST_TIMEOUT);
        let response = self.send(request, &url).await?;
        // Read the (empty) body to the end, so that the connection goes back to the pool.
        response
            .bytes()
            .await
            .map_err(|e| connect_error(self.url(), &e))?;
        Ok(())
    }

    /// `POST /v1/worker/results`.
    pub async fn send_results(&self, body: &Results) -> Result<Accepted, ClientError> {
        self.call(Method::POST, &["worker", "results"], Some(body))
            .await
    }

    /// `POST /v1/worker/heartbeat`.
    pub async fn heartbeat(&self, body: &Heartbeat) -> Result<HeartbeatReply, ClientError> {
        self.call(Method::POST, &["worker", "heartbeat"], Some(body))
            .await
    }

    /// The URL of `/v1/SEGMENTS...`, each segment percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.root();
        // `parse_url` made sure that the URL can take a path.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty()
                .push(PREFIX.trim_start_matches('/'))
                .extend(segments);
        }
        url
    }

    /// An ordinary call: JSON in (when there is a body), JSON out.
    async fn call<B, T>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let give_up = tokio::time::Instant::now() + Client::TAKEOVER_PATIENCE;
        loop {
            // One round: each dispatcher once, from the current one.
            let mut last = None;
            for _ in 0..self.dispatchers.len() {
                let url = self.endpoint(segments);
                let mut request = self
                    .http
                    .request(method.clone(), url.clone())
                    .timeout(Client::REQUEST_TIMEOUT);
                if let Some(body) = body {
                    request = request.json(body);
                }
                match self.send(request, &url).await {
                    Ok(response) => return self.decode(response, &url).await,
                    Err(error) if self.dispatchers.len() > 1 && fails_over(&error) => {
                        last = Some(error)
                    }
                    Err(error) => return Err(error),
                }
            }
            let error = last.expect("at least one dispatcher");
            // Several dispatchers and none leads: a takeover is under way.
            if !leaderless(&error) || tokio::time::Instant::now() >= give_up {
                return Err(error);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Sends a request; an answer with an error status becomes [`ClientError::Status`]. A
    /// dispatcher out of reach, or without a leader, passes the next calls to the next one.
    async fn send(&self, request: RequestBuilder, url: &Url) -> Result<Response, ClientError> {
        let from = self.index();
        let sent = request
            .send()
            .await
            .map_err(|e| connect_error(&self.dispatchers[from].0, &e));
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                if fails_over(&error) {
                    self.move_on(from);
                }
                return Err(error);
            }
        };
        if response.url() != url {
            self.learn(response.url());
        }
        if response.status().is_success() {
            Ok(response)
        } else {
            let error = status_error(response, url).await;
            if fails_over(&error) {
                self.move_on(from);
            }
            Err(error)
        }
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        response: Response,
        url: &Url,
    ) -> Result<T, ClientError> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| connect_error(self.url(), &e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Decode(format!("{}: {e}", url.path())))
    }
}

/// Whether a call that failed so is worth trying on another dispatcher: it could not be
/// reached, or it had no leader to send the call to.
fn fails_over(error: &ClientError) -> bool {
    matches!(error, ClientError::Connect { .. }) || leaderless(error)
}

/// A standby's answer while no dispatcher leads.
fn leaderless(error: &ClientError) -> bool {
    matches!(error, ClientError::Status { status: 503, message } if message.starts_with("no dispatcher leads"))
}

/// Whether `path` names an operator's endpoint of the API: under `/v1/`, not the workers',
/// and without a segment that a URL parser would take as a step up or a step in place
/// (`..`, `.`, or their percent-encoded forms), which could lead elsewhere once resolved.
fn is_operator_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return false;
    };
    let dotted = |segment: &str| {
        let plain = segment.to_ascii_lowercase().replace("%2e", ".");
        plain == "." || plain == ".."
    };
    let lower = rest.to_ascii_lowercase();
    !lower.contains('\\')
        && !lower.contains("%5c")
        && !rest.starts_with("worker/")
        && rest != "worker"
        && !rest.split('/').any(dotted)
}

/// Checks the dispatcher's URL: `https://HOST[:PORT][/PATH]` (`http://` too with
/// `allow_http`).
fn parse_url(url: &str, allow_http: bool) -> Result<Url, ClientError> {
    let invalid = |why: String| {
        ClientError::Invalid(format!(
            "invalid dispatcher URL `{url}`: {why}; expected https://HOST:PORT"
        ))
    };
    let mut parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(invalid(
                "the dispatcher speaks HTTPS only (mutual TLS)".into(),
            ))
        }
        other => return Err(invalid(format!("unknown scheme `{other}`"))),
    }
    if parsed.host_str().is_none_or(str::is_empty) || parsed.cannot_be_a_base() {
        return Err(invalid("no host name".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid(
            "user names and passwords have no place in it (certificates say who you are)".into(),
        ));
    }
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok(parsed)
}

/// An answer with an error status, as a [`ClientError::Status`] with the dispatcher's
/// [`ApiError`] message (or whatever text came, or the status's name).
async fn status_error(response: Response, url: &Url) -> ClientError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let message = match serde_json::from_str::<ApiError>(&text) {
        Ok(api) => api.error,
        Err(_) => {
            let text = text.trim();
            if text.is_empty() {
                format!(
                    "{} {}",
                    status.canonical_reason().unwrap_or("error"),
                    url.path()
                )
            } else {
                shorten(text, 300)
            }
        }
    };
    ClientError::Status {
        status: status.as_u16(),
        message,
    }
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

fn connect_error(base: &str, error: &reqwest::Error) -> ClientError {
    let refused = causes(error)
        .iter()
        .any(|cause| is_certificate_refusal(cause.downcast_ref::<rustls::Error>()));
    let (url, message) = (base.to_string(), describe(error));
    if refused {
        ClientError::Refused { url, message }
    } else {
        ClientError::Connect { url, message }
    }
}

/// A certificate refused in the handshake, by either side: not a connection that broke.
fn is_certificate_refusal(error: Option<&rustls::Error>) -> bool {
    matches!(
        error,
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::AlertReceived(_))
    )
}

/// What went wrong with a connection, for a person: the innermost cause, with a hint when
/// TLS failed (which is nearly always a matter of certificates).
fn describe(error: &reqwest::Error) -> String {
    let chain = causes(error);
    if let Some(tls) = chain
        .iter()
        .find_map(|cause| cause.downcast_ref::<rustls::Error>())
    {
        return describe_tls(tls);
    }
    let innermost = chain.last().map(ToString::to_string).unwrap_or_default();
    let message = if error.is_timeout() && !innermost.contains("timed out") {
        format!("timed out ({innermost})")
    } else {
        innermost
    };
    lowercase_first(&message)
}

fn describe_tls(error: &rustls::Error) -> String {
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(_) => format!(
            "TLS handshake failed: the dispatcher's certificate was not accepted ({error}); \
             check that the CA file is the deployment's CA and that the URL names the \
             dispatcher as its certificate does"
        ),
        E::AlertReceived(_) => format!(
            "TLS handshake failed: the dispatcher did not accept this client's certificate \
             ({error}); check that the certificate and key files were issued by the \
             deployment's CA and have not expired"
        ),
        _ => format!("TLS failed ({error}); check the certificate, key and CA files"),
    }
}

/// The error and its causes, outermost first. An `io::Error` wrapping another error hides it
/// from `source()` (it returns the inner error's source), so it is looked into here.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut chain: Vec<&(dyn StdError + 'static)> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        chain.push(cause);
        if chain.len() > 32 {
            break;
        }
        next = match cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => {
                let inner: &(dyn StdError + 'static) = inner;
                // The wrapped error says the same as the io::Error's own message.
                chain.pop();
                Some(inner)
            }
            None => cause.source(),
        };
    }
    chain
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_ascii_uppercase() && !second.is_uppercase() => {
            let mut out = String::with_capacity(text.len());
            out.push(first.to_ascii_lowercase());
            out.push_str(&text[1..]);
            out
        }
        _ => text.to_string(),
    }
}

/// Splits a byte stream into lines: newline-delimited JSON arrives in arbitrary pieces.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    start: usize,
}

impl LineSplitter {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete line, without its line feed (and carriage return).
    pub(crate) fn next_line(&mut self) -> Option<Vec<u8>> {
        let newline = self.buffer[self.start..].iter().position(|&b| b == b'\n')?;
        let mut line = self.buffer[self.start..self.start + newline].to_vec();
        self.start += newline + 1;
        if self.start > 64 * 1024 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }

    /// What is left once the stream ended: a last line without a line feed.
    pub(crate) fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = self.buffer.split_off(self.start);
        self.buffer.clear();
        self.start = 0;
        (!rest.is_empty()).then_some(rest)
    }
}

/// Reads a response of newline-delimited JSON as a stream of records. Blank lines are skipped;
/// a line that does not parse is a [`ClientError::Decode`] item, and the stream goes on.
fn ndjson<T>(response: Response, base: String, path: String) -> RecordStream<T>
where
    T: DeserializeOwned + Send + 'static,
{
    struct State {
        body: Pin<Box<dyn Stream<Item = reqwest::Result<hyper::body::Bytes>> + Send>>,
        lines: LineSplitter,
        line_number: u64,
        ended: bool,
        base: String,
        path: String,
    }

    impl State {
        /// The record of one line; `None` for a blank one.
        fn parse<T: DeserializeOwned>(&mut self, line: &[u8]) -> Option<Result<T, ClientError>> {
            self.line_number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            Some(serde_json::from_slice(line).map_err(|e| {
                ClientError::Decode(format!("{}: line {}: {e}", self.path, self.line_number))
            }))
        }
    }

    let state = State {
        body: Box::pin(response.bytes_stream()),
        lines: LineSplitter::default(),
        line_number: 0,
        ended: false,
        base,
        path,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            loop {
                if let Some(line) = state.lines.next_line() {
                    match state.parse(&line) {
                        Some(item) => return Some((item, state)),
                        None => continue,
                    }
                }
                if state.ended {
                    return None;
                }
                match state.body.next().await {
                    Some(Ok(bytes)) => state.lines.push(&bytes),
                    Some(Err(e)) => {
                        state.ended = true;
                        let error = connect_error(&state.base, &e);
                        return Some((Err(error), state));
                    }
                    None => {
                        state.ended = true;
                        let line = state.lines.finish()?;
                        if let Some(item) = state.parse(&line) {
                            return Some((item, state));
                        }
                        return None;
                    }
                }
            }
        },
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn only_operators_endpoints_are_forwarded() {
        assert!(is_operator_path("/v1/jobs"));
        assert!(is_operator_path("/v1/jobs/job-1/events"));
        for path in [
            "/v1/worker/poll",
            "/v1/worker",
            "/v2/jobs",
            "/ui/",
            "/v1/jobs/../worker/poll",
            "/v1/%2E%2E/worker/poll",
            "/v1/./worker/poll",
            "/v1/jobs/..\\worker/poll",
            "/v1/jobs/..%5Cworker/poll",
        ] {
            assert!(!is_operator_path(path), "{path}");
        }
    }

    #[test]
    fn lines_are_split_however_the_bytes_arrive() {
        let mut lines = LineSplitter::default();
        lines.push(b"{\"a\":1}\n{\"b\"");
        assert_eq!(lines.next_line().unwrap(), b"{\"a\":1}");
        assert_eq!(lines.next_line(), None);
        lines.push(b":2}\r\n\n{\"c\"");
        assert_eq!(lines.next_line().unwrap(), b"{\"b\":2}");
        assert_eq!(lines.next_line().unwrap(), b"");
        assert_eq!(lines.next_line(), None);
        lines.push(b":3}");
        assert_eq!(lines.finish().unwrap(), b"{\"c\":3}");
        assert_eq!(lines.finish(), None);
    }

    #[test]
    fn urls_are_checked_and_paths_encoded() {
        let tls = test_tls_config();
        let client = Client::with_tls_config("https://dispatch.example:8443/", tls, false).unwrap();
        assert_eq!(client.url(), "https://dispatch.example:8443");
        assert_eq!(
            client
                .endpoint(&["jobs", "job-1/../x?y#z", "events"])
                .as_str(),
            "https://dispatch.example:8443/v1/jobs/job-1%2F..%2Fx%3Fy%23z/events"
        );
        let under = Client::with_tls_config("https://h/pogo/", test_tls_config(), false).unwrap();
        assert_eq!(under.endpoint(&["jobs"]).as_str(), "https://h/pogo/v1/jobs");

        for (url, why) in [
            ("dispatch.example:8443", "unknown scheme"),
            ("http://dispatch.example", "HTTPS only"),
            ("https://", "empty host"),
            ("https://user:pw@h:1", "user names"),
            ("no url at all", "relative URL"),
        ] {
            let error = Client::with_tls_config(url, test_tls_config(), false)
                .err()
                .unwrap()
                .to_string();
            assert!(error.contains(why), "{url}: {error}");
            assert!(error.contains("expected https://HOST:PORT"), "{error}");
        }
    }

    #[test]
    fn connection_failures_are_worth_retrying_and_refusals_are_not() {
        let connect = ClientError::Connect {
            url: "https://h".into(),
            message: "connection refused".into(),
        };
        let status = |status| ClientError::Status {
            status,
            message: "no".into(),
        };
        assert!(connect.is_transient());
        assert!(status(503).is_transient());
        assert!(!status(403).is_transient());
        assert!(!status(404).is_transient());
        assert!(!ClientError::Decode("x".into()).is_transient());
    }

    #[test]
    fn messages_start_in_lowercase_unless_they_shout() {
        assert_eq!(
            lowercase_first("Connection refused (os error 111)"),
            "connection refused (os error 111)"
        );
        assert_eq!(lowercase_first("TLS failed"), "TLS failed");
        assert_eq!(shorten("abcdef", 3), "abc...");
        assert_eq!(shorten("abc", 3), "abc");
    }

    // Calls against stand-ins on loopback: plain HTTP for what HTTP does, real TLS with the
    // deployment's certificates for what TLS does.

    use std::net::SocketAddr;

    use axum::body::Body;
    use axum::http::{StatusCode, Uri};
    use axum::routing::get;
    use axum::Router;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::certs::{self, InitOptions, Role, Validity};

    struct Server {
        addr: SocketAddr,
        shutdown: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        async fn start(router: Router) -> Server {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
            Server {
                addr,
                shutdown,
                task,
            }
        }

        fn client(&self) -> Client {
            Client::with_tls_config(&format!("http://{}", self.addr), test_tls_config(), true)
                .unwrap()
        }

        async fn stop(self) {
            let _ = self.shutdown.send(());
            let mut task = self.task;
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    fn record(seq: u64, text: &str) -> String {
        serde_json::to_string(&OutputRecord {
            seq,
            host: "web1".into(),
            attempt: 1,
            stream: "stdout".into(),
            text: text.into(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn error_answers_carry_the_dispatchers_message() {
        let router = Router::new()
            .route(
                "/v1/jobs/{job}",
                get(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        axum::Json(ApiError {
                            error: "no job `job-x`".into(),
                        }),
                    )
                }),
            )
            .route(
                "/v1/jobs",
                get(|| async { (StatusCode::BAD_GATEWAY, "  upstream is down\n") }),
            )
            .route(
                "/v1/workers",
                get(|| async { StatusCode::SERVICE_UNAVAILABLE }),
            )
            .route(
                "/v1/worker/heartbeat",
                axum::routing::post(|| async { "this is not json" }),
            );
        let server = Server::start(router).await;
        let client = server.client();

        let error = client.job("job-x").await.unwrap_err();
        assert!(
            matches!(&error, ClientError::Status { status: 404, message } if message == "no job `job-x`"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "the dispatcher refused: no job `job-x` (HTTP 404)"
        );
        let error = client.jobs().await.unwrap_err();
        assert!(
            matches!(&error, ClientError::Status { status: 502, message } if message == "upstream is down"),
            "{error:?}"
        );
        assert!(error.is_transient());
        let error = client.workers().await.unwrap_err();
        assert!(
            matches!(&error, ClientError::Status { status: 503, message } if message == "Service Unavailable /v1/workers"),
            "{error:?}"
        );
        let error = client.heartbeat(&Heartbeat::default()).await.unwrap_err();
        assert!(
            matches!(&error, ClientError::Decode(message) if message.starts_with("/v1/worker/heartbeat: expected")),
            "{error:?}"
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn streams_come_line_by_line_however_the_bytes_are_cut() {
        // The answer names the request's URI, so that its encoding shows.
        let router = Router::new().route(
            "/v1/jobs/{job}/output",
            get(|uri: Uri| async move {
                let body = format!(
                    "{}\n\n{}\r\nnot json\n{}",
                    record(1, &uri.to_string()),
                    record(2, "second"),
                    record(3, "last, without a line feed"),
                );
                // Pieces of 7 bytes: records arrive cut anywhere.
                let pieces: Vec<Result<Vec<u8>, std::io::Error>> = body
                    .into_bytes()
                    .chunks(7)
                    .map(|c| Ok(c.to_vec()))
                    .collect();
                Body::from_stream(futures_util::stream::iter(pieces))
            }),
        );
        let server = Server::start(router).await;
        let client = server.client();
        let items: Vec<Result<OutputRecord, ClientError>> = client
            .output("job 1/..", Some("web1&x=é"), 7, true)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(items.len(), 4, "{items:?}");
        assert_eq!(
            items[0].as_ref().unwrap().text,
            "/v1/jobs/job%201%2F../output?host=web1%26x%3D%C3%A9&after=7&follow=true"
        );
        assert_eq!(items[1].as_ref().unwrap().seq, 2);
        assert!(
            matches!(&items[2], Err(ClientError::Decode(m)) if m.starts_with("/v1/jobs/job%201%2F../output: line 4: expected")),
            "{:?}",
            items[2]
        );
        assert_eq!(items[3].as_ref().unwrap().text, "last, without a line feed");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_dispatcher_that_is_not_there_is_a_connection_error() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let client = Client::with_tls_config(&url, test_tls_config(), true).unwrap();
        let error = client.jobs().await.unwrap_err();
        match &error {
            ClientError::Connect { url: at, message } => {
                assert_eq!(*at, url);
                assert!(message.starts_with("connection refused"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(error.is_transient());
    }

    /// A deployment's certificates in a temporary directory.
    fn deployment(dir: &std::path::Path) -> (TlsFiles, TlsFiles) {
        certs::init(
            dir,
            &InitOptions {
                dispatcher_names: vec!["127.0.0.1".into(), "localhost".into()],
                workers: vec!["w1".into()],
                operators: Vec::new(),
                validity: Validity::days_from_now(1),
            },
        )
        .unwrap();
        let ca = dir.join(certs::CA_CERT);
        let files = |role, name| {
            let issued = certs::issued_paths(dir, role, name);
            TlsFiles {
                cert: issued.cert,
                key: issued.key,
                ca: ca.clone(),
            }
        };
        (
            files(Role::Dispatcher, "dispatcher"),
            files(Role::Worker, "w1"),
        )
    }

    /// A TLS server that answers every request with `[]`; returns its address.
    async fn tls_server(files: &TlsFiles) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::tls::server_config(files).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                              content-length: 2\r\nconnection: close\r\n\r\n[]",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn tls_failures_say_so_and_point_at_the_certificates() {
        let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (dispatcher, worker) = deployment(ours.path());
        let (_, stranger) = deployment(theirs.path());
        let (addr, server) = tls_server(&dispatcher).await;
        let url = format!("https://127.0.0.1:{}", addr.port());

        // The deployment's own worker gets in.
        let client = Client::new(&url, &worker).unwrap();
        assert!(client.workers().await.unwrap().is_empty());

        // A worker of another deployment: the dispatcher's certificate is not from its CA,
        // and its own is not from the dispatcher's.
        let error = Client::new(&url, &stranger)
            .unwrap()
            .workers()
            .await
            .unwrap_err();
        let message = error.to_string();
        // Final: a handshake that refused a certificate is not retried.
        assert!(matches!(error, ClientError::Refused { .. }), "{error:?}");
        assert!(!error.is_transient());
        assert!(
            message.contains("TLS handshake failed: the dispatcher's certificate was not accepted")
                && message.contains("CA file"),
            "{message}"
        );

        // The right CA, but a certificate the dispatcher does not know.
        let impostor = TlsFiles {
            ca: worker.ca.clone(),
            ..stranger.clone()
        };
        let error = Client::new(&url, &impostor)
            .unwrap()
            .workers()
            .await
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, ClientError::Refused { .. }), "{error:?}");
        assert!(!error.is_transient());
        assert!(
            message.contains("the dispatcher did not accept this client's certificate"),
            "{message}"
        );
        server.abort();
    }

    pub(crate) fn test_tls_config() -> rustls::ClientConfig {
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
    }
}
