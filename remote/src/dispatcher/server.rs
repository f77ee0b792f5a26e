//! The HTTPS side: TLS with a required client certificate, the peer's role read from it, and
//! the `/v1` routes, each allowed to one role.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::core::{ApiErr, Cmd, CoreHandle, Who};
use crate::api::*;
use crate::certs::{self, Identity, Role};
use crate::ui;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest plan a dispatcher takes.
const MAX_PLAN_BYTES: usize = 512 << 20;
/// At most this many records in one read of the database for a stream.
const PAGE: usize = 1000;

/// Who is on the other end of a connection, or why their certificate gives them no role.
#[derive(Clone)]
struct Peer(Result<Identity, String>);

/// The name in the certificate of a request that [`authorize`] let through for its role.
#[derive(Clone)]
struct Caller(String);

/// The address a connection came from.
#[derive(Clone, Copy)]
struct Origin(SocketAddr);

#[derive(Clone)]
pub struct AppState {
    pub core: CoreHandle,
    /// Counts commits: streams wake when it moves.
    pub commits: watch::Receiver<u64>,
    /// Becomes true when the dispatcher stops: streams end.
    pub closing: watch::Receiver<bool>,
    /// Whether this dispatcher leads: a standby sends every request to the leader.
    pub serving: watch::Receiver<super::Serving>,
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(ApiError {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// Checks that the peer holds `role`.
fn allow(peer: &Peer, role: Role) -> Result<String, ApiErr> {
    match &peer.0 {
        Err(problem) => Err(ApiErr::new(
            403,
            format!("your certificate gives no pogo role: {problem}"),
        )),
        Ok(identity) if identity.role == role => Ok(identity.name.clone()),
        Ok(identity) => Err(ApiErr::new(
            403,
            format!(
                "this endpoint is for {}s, and the certificate of `{}` is a {}'s",
                role, identity.name, identity.role
            ),
        )),
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        // A plan of 100,000 hosts is tens of megabytes of JSON; axum's default cap is 2 MB.
        .route(
            "/v1/jobs",
            post(submit)
                .get(jobs)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_PLAN_BYTES)),
        )
        .route("/v1/jobs/{job}", get(job))
        .route("/v1/jobs/{job}/plan", get(plan))
        .route("/v1/jobs/{job}/why", get(why))
        .route("/v1/jobs/{job}/events", get(events))
        .route("/v1/jobs/{job}/output", get(output))
        .route("/v1/jobs/{job}/halt", post(halt))
        .route("/v1/jobs/{job}/resume", post(resume))
        .route("/v1/jobs/{job}/retry", post(retry))
        .route("/v1/jobs/{job}/close", post(close))
        .route("/v1/jobs/{job}/approve", post(approve))
        .route("/v1/workers", get(workers))
        .route("/v1/audit", get(audit))
        .route("/v1/fleets", get(fleets))
        .route(
            "/v1/fleets/{fleet}",
            post(push_fleet)
                .get(fleet_revisions)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_PLAN_BYTES)),
        )
        .route(
            "/v1/fleets/{fleet}/revisions/{revision}",
            get(fleet_revision),
        )
        .route("/v1/worker/poll", post(poll))
        .route("/v1/worker/output", post(put_output))
        .route("/v1/worker/results", post(results))
        .route("/v1/worker/heartbeat", post(heartbeat))
        // The dashboard, for operators (the role check below holds for it too).
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(ui_page))
        .route("/ui/{file}", get(ui_page))
        .fallback(|| async {
            ApiErr::new(
                404,
                "no such endpoint in the dispatcher's API (version 1: /v1/...)",
            )
        })
        // Before anything else, the body included: a certificate of the wrong role is refused
        // without the dispatcher reading (up to 512 MB of) what it sent.
        .layer(axum::middleware::from_fn(csrf))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            leader_only,
        ))
        .layer(axum::middleware::from_fn(authorize))
        .with_state(state)
}

/// A standby answers every request with a redirect to the leader (307: the method and the
/// body are kept), or 503 while none leads. It never proxies: the leader must see the
/// caller's own certificate.
async fn leader_only(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let serving = state.serving.borrow().clone();
    match serving {
        super::Serving::Leading => next.run(request).await,
        super::Serving::Standby {
            leader: Some(leader),
        } => {
            let target = format!(
                "{}{}",
                leader.trim_end_matches('/'),
                request.uri().path_and_query().map_or("/", |pq| pq.as_str())
            );
            let body = Json(ApiError {
                error: format!("this dispatcher is a standby; the leader is {leader}"),
            });
            (
                StatusCode::TEMPORARY_REDIRECT,
                [
                    (header::LOCATION, target),
                    (header::HeaderName::from_static(LEADER_HEADER), leader),
                ],
                body,
            )
                .into_response()
        }
        super::Serving::Standby { leader: None } => ApiErr::new(
            503,
            "no dispatcher leads now (a takeover is under way); try again in a few seconds",
        )
        .into_response(),
    }
}

/// The header of a standby's redirect that names the leader's URL.
pub const LEADER_HEADER: &str = "pogo-leader";

/// Refuses a request whose certificate does not hold the role of its endpoint: `/v1/worker/...`
/// is the workers', everything else the operators'.
async fn authorize(
    Extension(peer): Extension<Peer>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiErr> {
    let role = if request.uri().path().starts_with("/v1/worker/") {
        Role::Worker
    } else {
        Role::Operator
    };
    let name = allow(&peer, role)?;
    let mut request = request;
    request.extensions_mut().insert(Caller(name));
    Ok(next.run(request).await)
}

/// Refuses a request that changes something unless its body is declared JSON (a form on
/// another site cannot declare it without the dispatcher's consent, which it never gives), and,
/// when it comes from a browser, unless it carries its session's CSRF token (see
/// [`crate::ui::csrf_allows`]). Runs after [`authorize`].
async fn csrf(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if request.method() != axum::http::Method::GET {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !json {
            return ApiErr::new(
                415,
                "the body of a request must be JSON (Content-Type: application/json)",
            )
            .into_response();
        }
        if !ui::csrf_allows(request.headers()) {
            return ApiErr::new(
                403,
                "a request from a browser needs the CSRF token of its dashboard session \
                 (the X-Pogo-Csrf header, equal to the pogo_csrf cookie)",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// `GET /ui/` and its files.
async fn ui_page(file: Option<Path<String>>, headers: axum::http::HeaderMap) -> Response {
    let name = file.map(|Path(name)| name).unwrap_or_default();
    let config = ui::UiConfig {
        mode: "dispatcher",
        jobs: true,
        runs: false,
        dispatcher: None,
        actions: true,
    };
    ui::page(&name, &headers, &config, true)
}

/// A JSON body, or a 400 that says what is wrong with it.
struct Body_<T>(T);

impl<T, S> axum::extract::FromRequest<S> for Body_<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiErr;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiErr> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiErr::new(400, format!("cannot read the request: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(Body_)
            .map_err(|e| ApiErr::new(400, format!("invalid request body: {e}")))
    }
}

async fn submit(
    State(app): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Extension(Origin(from)): Extension<Origin>,
    Body_(body): Body_<SubmitJob>,
) -> Result<Response, ApiErr> {
    let summary = app
        .core
        .call_as(
            Who {
                name: by.clone(),
                from: from.ip().to_string(),
            },
            |reply| Cmd::Submit {
                job: Box::new(body),
                by,
                reply,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(summary)).into_response())
}

async fn jobs(State(app): State<AppState>) -> Result<Json<Vec<JobSummary>>, ApiErr> {
    Ok(Json(app.core.call(|reply| Cmd::Jobs { reply }).await?))
}

async fn job(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, ApiErr> {
    Ok(Json(app.core.call(|reply| Cmd::Job { id, reply }).await?))
}

async fn plan(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<pogo_model::Plan>, ApiErr> {
    Ok(Json(app.core.call(|reply| Cmd::Plan { id, reply }).await?))
}

async fn why(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<WhyQuery>,
) -> Result<Json<Vec<HostWhy>>, ApiErr> {
    let hosts = query.hosts();
    Ok(Json(
        app.core.call(|reply| Cmd::Why { id, hosts, reply }).await?,
    ))
}

async fn events(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiErr> {
    let limit = query.page_size(PAGE);
    let fetch = {
        let core = app.core.clone();
        move |id: String, after: u64| {
            let core = core.clone();
            async move {
                let (records, ended) = core
                    .call(|reply| Cmd::Events {
                        id,
                        after,
                        limit,
                        reply,
                    })
                    .await?;
                Ok::<_, ApiErr>(lines(records, |r| r.seq, ended))
            }
        }
    };
    stream(app, id, query, fetch).await
}

async fn output(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiErr> {
    let host = query.host.clone();
    let limit = query.page_size(PAGE);
    let fetch = {
        let core = app.core.clone();
        move |id: String, after: u64| {
            let core = core.clone();
            let host = host.clone();
            async move {
                let (records, ended) = core
                    .call(|reply| Cmd::Output {
                        id,
                        host,
                        after,
                        limit,
                        reply,
                    })
                    .await?;
                Ok::<_, ApiErr>(lines(records, |r| r.seq, ended))
            }
        }
    };
    stream(app, id, query, fetch).await
}

/// A page of records as NDJSON: the text, the last sequence number, whether the page was
/// full, and whether the job had ended when it was read.
struct Page {
    text: String,
    last: Option<u64>,
    full: bool,
    ended: bool,
}

fn lines<T: serde::Serialize>(records: Vec<T>, seq: impl Fn(&T) -> u64, ended: bool) -> Page {
    let mut text = String::new();
    let full = records.len() >= PAGE;
    let last = records.last().map(&seq);
    for record in &records {
        if let Ok(line) = serde_json::to_string(record) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    Page {
        text,
        last,
        full,
        ended,
    }
}

/// Answers with the records after `after`; with `follow`, goes on sending new ones as they
/// are committed until the job (or the host) has ended and everything was sent.
async fn stream<F, Fut>(
    app: AppState,
    id: String,
    query: StreamQuery,
    fetch: F,
) -> Result<Response, ApiErr>
where
    F: Fn(String, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Page, ApiErr>> + Send,
{
    // The first page is read before answering, so an unknown job is a 404, not an empty
    // stream.
    let mut commits = app.commits.clone();
    commits.mark_unchanged();
    let first = fetch(id.clone(), query.after).await?;
    let (paged, follow) = (query.is_paged(), query.follows());
    let closing = app.closing.clone();
    let fetch = Arc::new(fetch);
    let state = (Some(first), query.after, commits, closing, false);
    let body = futures_util::stream::unfold(
        state,
        move |(page, mut after, mut commits, mut closing, done)| {
            let fetch = Arc::clone(&fetch);
            let id = id.clone();
            async move {
                if done {
                    return None;
                }
                let mut page = match page {
                    Some(page) => page,
                    None => loop {
                        tokio::select! {
                            changed = commits.changed() => if changed.is_err() { return None },
                            _ = closing.changed() => return None,
                        }
                        match fetch(id.clone(), after).await {
                            Ok(page) if page.last.is_some() || page.ended => break page,
                            Ok(_) => continue,
                            Err(_) => return None,
                        }
                    },
                };
                if let Some(last) = page.last {
                    after = last;
                }
                // Read again at once while pages are full; otherwise wait for a commit.
                let finished = !follow || (page.ended && !page.full);
                let text = std::mem::take(&mut page.text);
                let next = if page.full && !paged {
                    match fetch(id.clone(), after).await {
                        Ok(next) => Some(next),
                        Err(_) => return None,
                    }
                } else {
                    None
                };
                let done = finished && next.is_none();
                Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from(text)),
                    (next, after, commits, closing, done),
                ))
            }
        },
    );
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// `GET /v1/audit?after=SEQ&limit=N`: the audit trail, oldest first.
async fn audit(
    State(app): State<AppState>,
    Query(page): Query<AuditPage>,
) -> Result<Json<Vec<AuditRecord>>, ApiErr> {
    let (after, limit) = (
        page.after.unwrap_or(0),
        page.limit.unwrap_or(PAGE).min(PAGE),
    );
    Ok(Json(
        app.core
            .call(|reply| Cmd::Audit {
                after,
                limit,
                reply,
            })
            .await?,
    ))
}

#[derive(serde::Deserialize)]
struct AuditPage {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn halt(
    State(app): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Extension(Origin(from)): Extension<Origin>,
    Path(id): Path<String>,
    Body_(body): Body_<HaltJob>,
) -> Result<Json<JobSummary>, ApiErr> {
    tracing::info!(job = %id, "job {id}: halt{} asked by {by}",
        if body.kill { " with kill" } else { "" }
    );
    Ok(Json(
        app.core
            .call_as(
                Who {
                    name: by.clone(),
                    from: from.ip().to_string(),
                },
                |reply| Cmd::Halt {
                    id,
                    kill: body.kill,
                    reply,
                },
            )
            .await?,
    ))
}

async fn resume(
    State(app): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Extension(Origin(from)): Extension<Origin>,
    Path(id): Path<String>,
    Body_(body): Body_<ResumeJob>,
) -> Result<Json<JobSummary>, ApiErr> {
    Ok(Json(
        app.core
            .call_as(
                Who {
                    name: by.clone(),
                    from: from.ip().to_string(),
                },
                |reply| Cmd::Resume {
                    id,
                    password: body.password,
                    retry: None,
                    reply,
                },
            )
            .await?,
    ))
}

async fn retry(
    State(app): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Extension(Origin(from)): Extension<Origin>,
    Path(id): Path<String>,
    Body_(body): Body_<RetryJob>,
) -> Result<Json<JobSummary>, ApiErr> {
    Ok(Json(
        app.core
            .call_as(
                Who {
                    name: by.clone(),
                    from: from.ip().to_string(),
                },
                |reply| Cmd::Resume {
                    id,
                    password: body.password,
                    retry: Some(body.hosts),
                    reply,
                },
            )
            .await?,
    ))
}

async fn approve(
    State(app): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Extension(Origin(from)): Extension<Origin>,
    Path(id): Path<String>,
    Body_(body): Body_<ApproveStep>,
) -> Result<Json<JobSummary>, ApiErr> {
    let step = body.step;
    Ok(Json(
        app.core
            .call_as(
                Who {
                    name: by.clone(),
                    from: from.ip().to_string(),
                },
                |reply| Cmd::Approve {
                    id,
                    step,
                    by,
                    reply,
                },
            )
            .await?,
    ))
}

async fn close(
    State(app): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Extension(Origin(from)): Extension<Origin>,
    Path(id): Path<String>,
) -> Result<Json<JobSummary>, ApiErr> {
    Ok(Json(
        app.core
            .call_as(
                Who {
                    name: by.clone(),
                    from: from.ip().to_string(),
                },
                |reply| Cmd::Close { id, by, reply },
            )
            .await?,
    ))
}

async fn fleets(State(app): State<AppState>) -> Result<Json<Vec<FleetRevisionInfo>>, ApiErr> {
    Ok(Json(app.core.call(|reply| Cmd::Fleets { reply }).await?))
}

async fn push_fleet(
    State(app): State<AppState>,
    Extension(Caller(by)): Extension<Caller>,
    Extension(Origin(from)): Extension<Origin>,
    Path(fleet): Path<String>,
    Body_(body): Body_<PushFleet>,
) -> Result<Response, ApiErr> {
    let info = app
        .core
        .call_as(
            Who {
                name: by.clone(),
                from: from.ip().to_string(),
            },
            |reply| Cmd::PushFleet {
                fleet,
                push: Box::new(body),
                by,
                reply,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn fleet_revisions(
    State(app): State<AppState>,
    Path(fleet): Path<String>,
) -> Result<Json<Vec<FleetRevisionInfo>>, ApiErr> {
    Ok(Json(
        app.core
            .call(|reply| Cmd::FleetRevisions { fleet, reply })
            .await?,
    ))
}

async fn fleet_revision(
    State(app): State<AppState>,
    Path((fleet, revision)): Path<(String, String)>,
) -> Result<Json<FleetRevision>, ApiErr> {
    let revision = match revision.as_str() {
        "current" => 0,
        text => text.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
            ApiErr::new(
                400,
                format!("`{text}` is not a revision: a number from 1, or `current`"),
            )
        })?,
    };
    Ok(Json(
        app.core
            .call(|reply| Cmd::FleetRevision {
                fleet,
                revision,
                reply,
            })
            .await?,
    ))
}

async fn workers(State(app): State<AppState>) -> Result<Json<Vec<WorkerInfo>>, ApiErr> {
    Ok(Json(app.core.call(|reply| Cmd::Workers { reply }).await?))
}

async fn poll(
    State(app): State<AppState>,
    Extension(Caller(worker)): Extension<Caller>,
    Body_(body): Body_<Poll>,
) -> Result<Json<Tasks>, ApiErr> {
    Ok(Json(
        app.core
            .call(|reply| Cmd::Poll {
                worker,
                poll: body,
                reply,
            })
            .await?,
    ))
}

async fn put_output(
    State(app): State<AppState>,
    Extension(Caller(worker)): Extension<Caller>,
    Body_(body): Body_<OutputChunk>,
) -> Result<StatusCode, ApiErr> {
    app.core
        .call(|reply| Cmd::PutOutput {
            worker,
            chunk: body,
            reply,
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn results(
    State(app): State<AppState>,
    Extension(Caller(worker)): Extension<Caller>,
    Body_(body): Body_<Results>,
) -> Result<Json<Accepted>, ApiErr> {
    Ok(Json(
        app.core
            .call(|reply| Cmd::Results {
                worker,
                results: body,
                reply,
            })
            .await?,
    ))
}

async fn heartbeat(
    State(app): State<AppState>,
    Extension(Caller(worker)): Extension<Caller>,
    Body_(body): Body_<Heartbeat>,
) -> Result<Json<HeartbeatReply>, ApiErr> {
    Ok(Json(
        app.core
            .call(|reply| Cmd::Heartbeat {
                worker,
                heartbeat: body,
                reply,
            })
            .await?,
    ))
}

/// Accepts connections until `closing` becomes true; each connection is served over TLS with
/// the peer's identity attached to its requests.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut closing: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = JoinSet::new();
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors, typically: wait a little rather than spin.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = closing.changed() => break,
        };
        while connections.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut closing = closing.clone();
        connections.spawn(async move {
            let _ = tcp.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::warn!("refused a connection from {addr}: {error}");
                    return;
                }
                Err(_) => return,
            };
            let peer = Peer(peer_identity(tls.get_ref().1));
            let service = TowerToHyperService::new(
                router.layer(Extension(peer)).layer(Extension(Origin(addr))),
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closing.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
                }
            }
        });
    }
    connections.shutdown().await;
}

fn peer_identity(conn: &rustls::ServerConnection) -> Result<Identity, String> {
    let certs = conn
        .peer_certificates()
        .ok_or_else(|| "no client certificate".to_string())?;
    let first = certs
        .first()
        .ok_or_else(|| "no client certificate".to_string())?;
    certs::identity_of(first.as_ref()).map_err(|e| e.to_string())
}

/// Where the dispatcher listens.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
