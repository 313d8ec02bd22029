//! `podflow serve`: a local web page over the data directory while the pipeline's workers
//! run in the same process (serve holds the runner lock, like `run`). It lists the episodes,
//! shows each one's steps, prompts, player (MP3 with its WebVTT captions) and outputs, takes
//! a person's decision on a proposal, replays dead-lettered prompts and shows the prompt
//! catalog.
//!
//! Server-rendered HTML; one small script writes the spoken caption under the player (the
//! page works without it). Every form POSTs, then redirects (303) back with
//! a one-time flash message; a refused request answers with its status code and the reason
//! in words. A decision only puts its event on the bus: the workers publish it, and the
//! episode page shows how that went.
//!
//! Safety: it listens on 127.0.0.1 by default; on a loopback address it answers only to
//! loopback host names (a DNS-rebinding page cannot read it); every POST carries the
//! process's random token and is refused when the browser says it comes from another site;
//! data is HTML-escaped wherever it is shown; files are served only from under
//! `episodes/<id>/`.

mod files;
mod pages;

use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{Path, Query, Request, State, rejection::FormRejection},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use podflow_core::EpisodeStore;
use podflow_embedded::Db;
use podflow_events::EpisodeApproved;
use prompt_dispatcher::{DispatchHandler, catalog::Catalog};
use publisher::{
    approval::{self, Refusal, Request as Decision, RequestError, TitleChoice},
    cost::PriceTable,
};
use serde::Deserialize;

use crate::{
    commands::EXIT_OK,
    dlq::{self, ReplayChanges, Selection},
    report::EpisodeReport,
    runtime::{Pipeline, Settings},
};

use pages::Flash;

/// Where `podflow serve` listens.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub bind: IpAddr,
    /// 0: any free port (the address is printed).
    pub port: u16,
}

/// Who decisions sent from this page are recorded as.
const DECIDED_BY: &str = "web";

/// The longest title the events carry (`EpisodeApproved.title`).
const MAX_TITLE_CHARS: usize = 300;

/// How long requests under way may go on once serve is told to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Flash messages kept for redirects not yet followed.
const MAX_FLASHES: usize = 64;

/// Listens, starts the pipeline and serves until SIGINT or SIGTERM; then the workers stop
/// as after `run` (exit 0).
/// How often `serve` looks for proposals due a reminder.
const REMINDER_TICK: std::time::Duration = std::time::Duration::from_secs(600);

pub async fn serve(settings: &Settings, options: Options) -> anyhow::Result<i32> {
    // Bound first: a port in use is reported before the data directory is touched.
    let listener = tokio::net::TcpListener::bind((options.bind, options.port))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}",
                SocketAddr::new(options.bind, options.port)
            )
        })?;
    let address = listener.local_addr()?;
    let pipeline = Pipeline::start(settings).await?;
    let state = AppState {
        db: pipeline.db.clone(),
        dispatcher: pipeline.dispatcher.clone(),
        data_dir: settings.data_dir.clone(),
        prompts_dir: settings.prompts_dir.clone(),
        default_model: settings.llm_model.clone(),
        // The pipeline has loaded the same table already: it cannot fail here.
        prices: PriceTable::load(settings.prices.as_deref()).ok(),
        csrf: uuid::Uuid::new_v4().simple().to_string(),
        hosts: allowed_hosts(address),
        flashes: Mutex::new(VecDeque::new()),
        sent: tokio::sync::Mutex::new(HashMap::new()),
    };
    if !address.ip().is_loopback() {
        eprintln!(
            "warning: {address} is reachable from other machines, and the page has no login: anyone who can reach it can approve and replay"
        );
    }
    // Proposals left waiting past approval_reminder_hours get their one reminder.
    let reminders = tokio::spawn({
        let (db, blobs) = (pipeline.db.clone(), pipeline.blobs.clone());
        let (notifier, show) = (pipeline.notifier.clone(), pipeline.show.clone());
        async move {
            loop {
                let sent = publisher::notify::send_reminders(
                    &db,
                    blobs.as_ref(),
                    notifier.as_deref(),
                    &show,
                    podflow_core::now_ms(),
                )
                .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e.report(), "approval reminders");
                }
                tokio::time::sleep(REMINDER_TICK).await;
            }
        }
    });
    println!("serving http://{address}/ (Ctrl-C stops)");
    let signalled = Arc::new(tokio::sync::Notify::new());
    let server = axum::serve(listener, router(Arc::new(state))).with_graceful_shutdown({
        let signalled = signalled.clone();
        async move {
            stopped().await;
            signalled.notify_one();
        }
    });
    // Requests under way may finish, but a player streaming an hour of MP3 does not hold
    // the workers up for long.
    let served = tokio::select! {
        served = server.into_future() => served,
        () = async {
            signalled.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => Ok(()),
    };
    reminders.abort();
    pipeline.shutdown().await;
    served?;
    Ok(EXIT_OK)
}

/// Resolves at Ctrl-C (SIGINT) or SIGTERM; the page's usual way to end.
async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        // No signal handling at all: only killing the process ends it.
        _ => std::future::pending().await,
    }
}

/// The `Host` values a loopback listener answers to (`None`: any, for other binds). A page
/// on another name that resolves to 127.0.0.1 (DNS rebinding) is same-origin to itself, so
/// only the name check keeps it from reading the page and its token.
fn allowed_hosts(address: SocketAddr) -> Option<Vec<String>> {
    if !address.ip().is_loopback() {
        return None;
    }
    let port = address.port();
    let mut hosts = vec![
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ];
    hosts.push(address.to_string());
    Some(hosts)
}

struct AppState {
    db: Db,
    dispatcher: Arc<DispatchHandler>,
    data_dir: PathBuf,
    prompts_dir: Option<PathBuf>,
    default_model: String,
    prices: Option<PriceTable>,
    /// The forms' token: random per process, so a page from an earlier serve is refused too.
    csrf: String,
    hosts: Option<Vec<String>>,
    flashes: Mutex<VecDeque<(String, Flash)>>,
    /// Decisions sent by this process, by episode and proposal, until the publisher records
    /// them: a second form sent meanwhile is refused as a recorded one would be.
    sent: tokio::sync::Mutex<HashMap<(String, u32), String>>,
}

type App = Arc<AppState>;

impl AppState {
    fn store(&self) -> &dyn EpisodeStore {
        &self.db
    }

    /// Keeps a message for the page a redirect goes to; returns its key.
    fn flash(&self, flash: Flash) -> String {
        let key = uuid::Uuid::new_v4().simple().to_string();
        let mut flashes = self.flashes.lock().unwrap_or_else(|p| p.into_inner());
        if flashes.len() >= MAX_FLASHES {
            flashes.pop_front();
        }
        flashes.push_back((key.clone(), flash));
        key
    }

    /// The message a redirect left, once.
    fn take_flash(&self, key: Option<&str>) -> Option<Flash> {
        let key = key?;
        let mut flashes = self.flashes.lock().unwrap_or_else(|p| p.into_inner());
        let at = flashes.iter().position(|(k, _)| k == key)?;
        flashes.remove(at).map(|(_, f)| f)
    }

    /// A 303 to `path` showing `flash` there.
    fn redirect(&self, path: &str, flash: Flash) -> Response {
        let key = self.flash(flash);
        Redirect::to(&format!("{path}?flash={key}")).into_response()
    }
}

fn router(state: App) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/style.css", get(style))
        .route("/player.js", get(player))
        .route("/favicon.svg", get(favicon))
        .route("/episodes/{id}", get(episode))
        .route("/episodes/{id}/files/{*path}", get(file))
        .route("/episodes/{id}/approve", post(approve))
        .route("/episodes/{id}/reject", post(reject))
        .route("/dlq", get(dead_letters))
        .route("/dlq/replay", post(replay))
        .route("/prompts", get(prompts))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Why a request is refused, said on the page with the matching status code.
#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Decision(#[from] RequestError),
    #[error("the data directory could not be read: {0}")]
    Store(String),
}

impl PageError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Decision(RequestError::Refused(refusal)) => match refusal {
                Refusal::UnknownEpisode(_) => StatusCode::NOT_FOUND,
                Refusal::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                Refusal::NothingProposed(_)
                | Refusal::NotTheLatest { .. }
                | Refusal::AlreadyDecided { .. } => StatusCode::CONFLICT,
            },
            Self::Decision(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<podflow_core::PortError> for PageError {
    fn from(e: podflow_core::PortError) -> Self {
        Self::Store(podflow_core::report(&e))
    }
}

impl From<anyhow::Error> for PageError {
    fn from(e: anyhow::Error) -> Self {
        Self::Store(format!("{e:#}"))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "podflow serve");
        }
        (status, Html(pages::error(status, &self.to_string()))).into_response()
    }
}

/// Every request: the host check (loopback binds), the cross-site check (POSTs), and the
/// headers that keep the page and the served files from being framed or sniffed.
async fn guard(State(app): State<App>, request: Request, next: Next) -> Response {
    if let Err(refused) = check_host(app.hosts.as_deref(), request.headers()) {
        return refused.into_response();
    }
    if request.method() != Method::GET
        && request.method() != Method::HEAD
        && let Err(refused) = check_same_origin(request.headers())
    {
        return refused.into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn check_host(allowed: Option<&[String]>, headers: &HeaderMap) -> Result<(), PageError> {
    let Some(allowed) = allowed else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        Ok(())
    } else {
        Err(PageError::Forbidden(format!(
            "this page answers to {} only, not to host `{host}`",
            allowed.join(", ")
        )))
    }
}

/// Refuses a POST the browser says comes from another site: `Sec-Fetch-Site` other than
/// same-origin (another port of localhost is "same-site", and refused too), or an `Origin`
/// other than this server's. Clients that send neither (curl) still need the form token.
fn check_same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let value = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    let cross_site = || {
        PageError::Forbidden(
            "cross-site form posts are refused: send the form from this page".to_owned(),
        )
    };
    if let Some(site) = value(header::HeaderName::from_static("sec-fetch-site"))
        && site != "same-origin"
        && site != "none"
    {
        return Err(cross_site());
    }
    if let Some(origin) = value(header::ORIGIN) {
        let host = value(header::HOST).unwrap_or_default();
        if !origin.eq_ignore_ascii_case(&format!("http://{host}")) {
            return Err(cross_site());
        }
    }
    Ok(())
}

/// Compares the form's token with the process's in constant time.
fn check_token(app: &AppState, form: &[(String, String)]) -> Result<(), PageError> {
    let given = field(form, "csrf").unwrap_or_default();
    let expected = app.csrf.as_bytes();
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(PageError::Forbidden(
            "the form's security token is missing or out of date (podflow serve was restarted?): reload the page and send it again".to_owned(),
        ))
    }
}

/// A form's fields in order; repeated names (checkboxes) stay separate.
type FormFields = Vec<(String, String)>;

fn form_fields(
    form: Result<axum::Form<FormFields>, FormRejection>,
) -> Result<FormFields, PageError> {
    form.map(|axum::Form(fields)| fields)
        .map_err(|e| PageError::BadRequest(format!("the form could not be read: {e}")))
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A textarea's text, with the CRLF line breaks browsers send as `\n`.
fn textarea(form: &[(String, String)], name: &str) -> Option<String> {
    field(form, name).map(|text| text.replace("\r\n", "\n"))
}

/// Every filled-in value of a field that repeats (checkboxes).
fn all_filled(form: &[(String, String)], name: &str) -> Vec<String> {
    form.iter()
        .filter(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect()
}

/// A field that counts only when filled in.
fn filled(form: &[(String, String)], name: &str) -> Option<String> {
    field(form, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[derive(Debug, Deserialize)]
struct FlashQuery {
    flash: Option<String>,
}

fn flash_key(
    query: &Result<Query<FlashQuery>, axum::extract::rejection::QueryRejection>,
) -> Option<&str> {
    query.as_ref().ok().and_then(|q| q.flash.as_deref())
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::STYLE,
    )
}

async fn player() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        pages::PLAYER_JS,
    )
}

async fn favicon() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        pages::FAVICON_SVG,
    )
}

async fn not_found() -> PageError {
    PageError::NotFound("there is no such page here; the episodes are at /".to_owned())
}

async fn index(
    State(app): State<App>,
    query: Result<Query<FlashQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, PageError> {
    let mut episodes = app.store().episodes().await?;
    // Newest first: the one just recorded is the one looked for.
    episodes.sort_by_key(|e| std::cmp::Reverse(e.created_at_ms));
    let mut rows = Vec::new();
    for record in episodes {
        if let Some(report) = EpisodeReport::load(&app.db, &record.episode_id).await? {
            rows.push((report, record.created_at_ms));
        }
    }
    let flash = app.take_flash(flash_key(&query));
    Ok(Html(pages::index(&rows, flash.as_ref(), &app.data_dir)))
}

async fn episode(
    State(app): State<App>,
    Path(id): Path<String>,
    query: Result<Query<FlashQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Some(report) = EpisodeReport::load(&app.db, &id).await? else {
        return Err(unknown_episode(&id));
    };
    let decision = decision_view(&app, &id).await?;
    let dir = app.data_dir.join("episodes").join(&id);
    let outputs = tokio::task::spawn_blocking(move || files::outputs(&dir))
        .await
        .map_err(|e| PageError::Store(e.to_string()))?;
    let flash = app.take_flash(flash_key(&query));
    let page = pages::EpisodePage {
        report: &report,
        csrf: &app.csrf,
        flash: flash.as_ref(),
        decision,
        prices: app.prices.as_ref(),
        language: files::transcript_language(&app.data_dir.join("episodes").join(&id)),
        outputs: &outputs,
    };
    Ok(Html(pages::episode(&page)))
}

fn unknown_episode(id: &str) -> PageError {
    PageError::NotFound(format!(
        "episode {id} is not known here (the episodes are listed at /)"
    ))
}

/// Where an episode's proposal stands, for its page.
async fn decision_view(app: &AppState, id: &str) -> Result<pages::DecisionView, PageError> {
    let Some((proposal, outcome)) = approval::latest(app.store(), id).await? else {
        return Ok(pages::DecisionView::NothingProposed);
    };
    if let Some(taken) = approval::decision(app.store(), id, &outcome).await? {
        return Ok(pages::DecisionView::Decided(taken.describe()));
    }
    if let Some(sent) = app
        .sent
        .lock()
        .await
        .get(&(id.to_owned(), proposal.proposal))
    {
        return Ok(pages::DecisionView::Sent(sent.clone()));
    }
    let prompts = app
        .store()
        .prompts(id)
        .await?
        .into_iter()
        .map(|p| p.prompt_id)
        .collect();
    let original_name = app
        .store()
        .episode(id)
        .await?
        .map(|r| r.original_name)
        .unwrap_or_default();
    Ok(pages::DecisionView::Pending {
        proposal: Box::new(proposal),
        prompts,
        original_name,
    })
}

async fn file(
    State(app): State<App>,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    // Only episodes the store knows: a stray directory under episodes/ is not served.
    match app.store().episode(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return unknown_episode(&id).into_response(),
        Err(e) => return PageError::from(e).into_response(),
    }
    files::serve(&app.data_dir, &id, &path, &headers).await
}

async fn approve(
    State(app): State<App>,
    Path(id): Path<String>,
    form: Result<axum::Form<FormFields>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_fields(form)?;
    check_token(&app, &form)?;
    let title = match (filled(&form, "title_text"), field(&form, "title_choice")) {
        (Some(text), _) => TitleChoice::Written(text),
        (None, Some("first") | None) => TitleChoice::First,
        (None, Some(n)) => match n.trim().parse::<usize>() {
            Ok(n) => TitleChoice::Suggested(n),
            Err(_) => {
                return Err(PageError::BadRequest(format!(
                    "`{n}` is not one of the suggested titles"
                )));
            }
        },
    };
    if let TitleChoice::Written(text) = &title
        && text.chars().count() > MAX_TITLE_CHARS
    {
        return Err(PageError::BadRequest(format!(
            "a title is at most {MAX_TITLE_CHARS} characters; this one has {}",
            text.chars().count()
        )));
    }
    let summary = textarea(&form, "summary");
    let request = Decision::Approve { title, summary };
    let Sent { proposal, title } = send_decision(&app, &id, &form, request).await?;
    let title = title.unwrap_or_default();
    Ok(app.redirect(
        &pages::episode_path(&id),
        Flash::ok(format!(
            "Proposal {proposal} approved as “{title}”: the episode is being published; this page shows when it is done."
        )),
    ))
}

async fn reject(
    State(app): State<App>,
    Path(id): Path<String>,
    form: Result<axum::Form<FormFields>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_fields(form)?;
    check_token(&app, &form)?;
    let rerun = all_filled(&form, "rerun");
    let request = Decision::Reject {
        note: textarea(&form, "note").unwrap_or_default(),
        rerun: rerun.clone(),
        model: filled(&form, "model"),
        prompt_version: filled(&form, "prompt_version"),
    };
    let Sent { proposal, .. } = send_decision(&app, &id, &form, request).await?;
    let next = if rerun.is_empty() {
        "nothing runs again".to_owned()
    } else {
        format!(
            "{} run(s) again and the outcome is proposed anew",
            rerun.join(", ")
        )
    };
    Ok(app.redirect(
        &pages::episode_path(&id),
        Flash::ok(format!("Proposal {proposal} rejected: {next}.")),
    ))
}

/// A decision put on the bus.
struct Sent {
    proposal: u32,
    /// The title an approval publishes under.
    title: Option<String>,
}

/// Checks a decision against the proposal the form was made from and puts its event on
/// the bus.
async fn send_decision(
    app: &AppState,
    id: &str,
    form: &[(String, String)],
    request: Decision,
) -> Result<Sent, PageError> {
    let asked = match field(form, "proposal").map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(
            n.parse::<u32>()
                .map_err(|_| PageError::BadRequest(format!("`{n}` is not a proposal number")))?,
        ),
    };
    // One decision at a time: two forms sent at once cannot both pass the checks.
    let mut sent = app.sent.lock().await;
    let pending = approval::pending(app.store(), id, asked)
        .await
        .map_err(RequestError::from)?;
    let proposal = pending.proposal.proposal;
    if let Some(earlier) = sent.get(&(id.to_owned(), proposal)) {
        return Err(PageError::Conflict(format!(
            "episode {id}: {earlier} already; nothing is published twice"
        )));
    }
    let envelope = approval::decide(app.store(), id, Some(proposal), request, DECIDED_BY).await?;
    app.db
        .publish(std::slice::from_ref(&envelope))
        .map_err(|e| PageError::Store(e.to_string()))?;
    let title = envelope.decode::<EpisodeApproved>().ok().map(|a| a.title);
    let what = match &title {
        Some(title) => format!("proposal {proposal} approved on this page as “{title}”"),
        None => format!("proposal {proposal} rejected on this page"),
    };
    sent.insert((id.to_owned(), proposal), what);
    Ok(Sent { proposal, title })
}

async fn dead_letters(
    State(app): State<App>,
    query: Result<Query<FlashQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Html<String>, PageError> {
    use podflow_core::DeadLetterQueue;
    let letters = app.db.list().await?;
    let flash = app.take_flash(flash_key(&query));
    Ok(Html(pages::dlq(&letters, &app.csrf, flash.as_ref())))
}

async fn replay(
    State(app): State<App>,
    form: Result<axum::Form<FormFields>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form_fields(form)?;
    check_token(&app, &form)?;
    let ids = all_filled(&form, "message_id");
    let all = field(&form, "all").is_some();
    if ids.is_empty() && !all {
        return Err(PageError::BadRequest(
            "choose the messages to replay, or replay all".to_owned(),
        ));
    }
    let prompt_version = filled(&form, "prompt_version")
        .map(|v| crate::parse_replay_version(&v))
        .transpose()
        .map_err(PageError::BadRequest)?;
    let changes = ReplayChanges {
        model: filled(&form, "model"),
        prompt_version,
    };
    let selection = Selection { ids: &ids, all };
    let missing: Vec<&str> = {
        use podflow_core::DeadLetterQueue;
        let waiting = app.db.list().await?;
        ids.iter()
            .filter(|id| !waiting.iter().any(|l| &l.message_id == *id))
            .map(String::as_str)
            .collect()
    };
    let not_waiting = (!missing.is_empty()).then(|| {
        format!(
            "{} not in the dead-letter queue (replayed already?)",
            missing.join(", ")
        )
    });
    if let Some(not_waiting) = &not_waiting
        && !all
        && missing.len() == ids.len()
    {
        return Err(PageError::Conflict(not_waiting.clone()));
    }
    let replayed = dlq::replay(
        &app.db,
        &selection,
        &changes,
        Some(app.dispatcher.as_ref()),
        Some(app.store()),
        true,
    )
    .await?;
    let mut parts = Vec::new();
    if !replayed.report.moved.is_empty() {
        parts.push(format!(
            "replayed {} (the workers run them now)",
            replayed.report.moved.join(", ")
        ));
    }
    for (id, why) in &replayed.report.refused {
        parts.push(format!("{id} not replayed: {why}"));
    }
    if parts.is_empty() {
        parts.push("nothing to replay".to_owned());
    }
    let complete = replayed.report.refused.is_empty() && not_waiting.is_none();
    parts.extend(not_waiting);
    let text = parts.join("; ");
    let flash = if complete {
        Flash::ok(text)
    } else {
        Flash::error(text)
    };
    Ok(app.redirect("/dlq", flash))
}

async fn prompts(State(app): State<App>) -> Result<Html<String>, PageError> {
    let prompts_dir = app.prompts_dir.clone();
    let (catalog, bundled) = tokio::task::spawn_blocking(move || {
        (Catalog::load(prompts_dir.as_deref()), Catalog::load(None))
    })
    .await
    .map_err(|e| PageError::Store(e.to_string()))?;
    // Which versions episodes ran, per prompt: what a replay at another version changes.
    let mut used: std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u32>> =
        Default::default();
    for record in app.store().episodes().await? {
        for p in app.store().prompts(&record.episode_id).await? {
            *used
                .entry(p.prompt_id)
                .or_default()
                .entry(p.prompt_version)
                .or_default() += 1;
        }
    }
    let page = pages::CatalogPage {
        catalog: &catalog,
        bundled: &bundled,
        prompts_dir: app.prompts_dir.as_deref(),
        default_model: &app.default_model,
        used: &used,
    };
    Ok(Html(pages::prompts(&page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                header::HeaderName::from_static(k),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        map
    }

    #[test]
    fn posts_from_another_site_or_port_are_refused() {
        let ok = headers(&[
            ("host", "127.0.0.1:8750"),
            ("origin", "http://127.0.0.1:8750"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(check_same_origin(&ok).is_ok());
        // curl and other clients that say nothing still need the token.
        assert!(check_same_origin(&headers(&[("host", "127.0.0.1:8750")])).is_ok());
        for bad in [
            headers(&[
                ("host", "127.0.0.1:8750"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[
                ("host", "127.0.0.1:8750"),
                ("origin", "http://127.0.0.1:3000"),
            ]),
            headers(&[("host", "127.0.0.1:8750"), ("origin", "null")]),
            headers(&[("host", "127.0.0.1:8750"), ("sec-fetch-site", "same-site")]),
            headers(&[("host", "127.0.0.1:8750"), ("sec-fetch-site", "cross-site")]),
        ] {
            let refused = check_same_origin(&bad).expect_err("cross-site");
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        }
    }

    #[test]
    fn a_loopback_listener_answers_to_loopback_names_only() {
        let hosts = allowed_hosts("127.0.0.1:8750".parse().expect("addr")).expect("loopback");
        for host in ["127.0.0.1:8750", "localhost:8750", "LOCALHOST:8750"] {
            assert!(
                check_host(Some(&hosts), &headers(&[("host", host)])).is_ok(),
                "{host}"
            );
        }
        for host in ["evil.example:8750", "127.0.0.1:9999", ""] {
            assert!(
                check_host(Some(&hosts), &headers(&[("host", host)])).is_err(),
                "{host}"
            );
        }
        assert!(allowed_hosts("0.0.0.0:8750".parse().expect("addr")).is_none());
    }

    #[test]
    fn refusals_map_to_status_codes() {
        let unknown = PageError::from(RequestError::from(Refusal::UnknownEpisode("x".into())));
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let decided = PageError::from(RequestError::from(Refusal::AlreadyDecided {
            episode: "x".into(),
            decided: "approved".into(),
        }));
        assert_eq!(decided.status(), StatusCode::CONFLICT);
        assert_eq!(
            PageError::from(RequestError::EmptyNote).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
