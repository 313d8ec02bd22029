//! `podflow serve` end to end: the real binary on a data directory whose episode awaits
//! approval (`podflow run` with `PODFLOW_SHOW_APPROVAL=required` and the extractive text
//! engine, so no LLM), driven over plain HTTP and in headless Chromium (Debian's, through
//! Playwright's library; `scripts/setup.sh --tests` installs both).
//!
//! The browser test keeps its screenshot of the episode page in its temporary directory;
//! `PODFLOW_UPDATE_SCREENSHOTS=1` writes it to `docs/images/episode-page.png` as well (the
//! one `docs/publishing.md` shows), so a plain test run leaves the work tree as it was.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

mod support;

use podflow_embedded::Db;
use reqwest::{StatusCode, header};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The two-voice sample episode (about 40 s), made once per test run.
fn sample() -> &'static Path {
    static SAMPLE: OnceLock<PathBuf> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("podflow-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("sample-episode.m4a");
        podflow_fakes::media::sample_episode(&out);
        out
    })
}

/// `podflow` on `data` for a show that requires approval, with no LLM at all.
fn podflow(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podflow"));
    cmd.env("PODFLOW_DATA_DIR", data)
        .env("PODFLOW_TEXT_ENGINE", "extractive")
        .env("PODFLOW_SHOW_APPROVAL", "required")
        // Never called (extractive), but nothing must answer if it were.
        .env("PODFLOW_LLM_URL", "http://127.0.0.1:9/v1")
        .env_remove("PODFLOW_SLACK_WEBHOOK_URL")
        .env_remove("PODFLOW_SNS_TOPIC_ARN");
    cmd
}

/// Runs the sample on a fresh data directory until its proposal waits; returns the
/// directory and the episode's id.
async fn awaiting_approval() -> (tempfile::TempDir, String) {
    let data = tempfile::tempdir().expect("tempdir");
    let mut cmd = podflow(data.path());
    cmd.args(["run", "--json"]).arg(sample());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("podflow runs"))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().next().unwrap_or("")).expect("json");
    assert_eq!(report["status"], "awaiting_approval", "{report}");
    let id = report["episode_id"].as_str().expect("id").to_owned();
    (data, id)
}

/// A form posted to `url`: the answer's status and body.
async fn post(
    http: &reqwest::Client,
    url: &str,
    form: &(impl serde::Serialize + ?Sized),
) -> (StatusCode, String) {
    let answer = http.post(url).form(form).send().await.expect("POST");
    let status = answer.status();
    (status, answer.text().await.expect("body"))
}

/// A running `podflow serve` (stopped with SIGTERM, or killed if a test fails first).
struct Server {
    child: Child,
    url: String,
    port: u16,
    log: PathBuf,
    _logs: tempfile::TempDir,
}

impl Server {
    /// Starts on any free port and waits for the address it prints.
    fn start(data: &Path) -> Self {
        let logs = tempfile::tempdir().expect("tempdir");
        let log = logs.path().join("serve.log");
        let mut child = podflow(data)
            .args(["serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("podflow serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                panic!(
                    "podflow serve printed no address: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "binds to loopback by default: {url}"
        );
        Self {
            child,
            url,
            port,
            log,
            _logs: logs,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as Ctrl-C or a service manager would: the page and the workers stop (exit 0).
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert_eq!(status.code(), Some(0), "{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop within 30 s of SIGTERM: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        // Redirects are checked, not followed.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The value of the first `name="NAME" value="…"` in a page.
fn form_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in the page"))
        + marker.len();
    html[start..].split('"').next().expect("value").to_owned()
}

fn summaries(data: &Path, id: &str) -> usize {
    Db::open(data)
        .expect("db")
        .events_for(id)
        .expect("events")
        .iter()
        .filter(|e| e.detail_type == "EpisodeSummarized")
        .count()
}

fn approvals(data: &Path, id: &str) -> usize {
    Db::open(data)
        .expect("db")
        .events_for(id)
        .expect("events")
        .iter()
        .filter(|e| e.detail_type == "EpisodeApproved")
        .count()
}

/// Sends one raw request line (no client normalises the path) and returns the status line.
fn raw_get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// Polls the episode page until its status is `done` (published).
async fn wait_published(http: &reqwest::Client, page: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let html = http
            .get(page)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        if html.contains("data-status=\"done\"") {
            return html;
        }
        assert!(
            Instant::now() < deadline,
            "not published within 120 s: {html}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_http_forms_are_guarded_decisions_checked_and_files_confined() {
    let (data, id) = awaiting_approval().await;
    let server = Server::start(data.path());
    let http = client();
    let base = &server.url;
    let page_url = format!("{base}/episodes/{id}");

    let index = http.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(index.status(), StatusCode::OK);
    assert!(index.text().await.expect("body").contains(&id));
    let page = http.get(&page_url).send().await.expect("GET episode");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()[header::X_FRAME_OPTIONS],
        "DENY",
        "the page cannot be framed"
    );
    let html = page.text().await.expect("body");
    assert!(html.contains("data-status=\"awaiting_approval\""), "{html}");
    let token = form_value(&html, "csrf");
    let proposal = form_value(&html, "proposal");
    assert_eq!(proposal, "1");
    let approve_url = format!("{page_url}/approve");

    // Forms without the token, or sent from another site, change nothing.
    let title = "Retries, Really <b>Reliable</b>";
    let approve = |token: &str| {
        vec![
            ("csrf", token.to_owned()),
            ("proposal", proposal.clone()),
            ("title_choice", "1".to_owned()),
            ("title_text", title.to_owned()),
            ("summary", String::new()),
        ]
    };
    let (no_token, body) = post(&http, &approve_url, &approve("")).await;
    assert_eq!(no_token, StatusCode::FORBIDDEN);
    assert!(body.contains("security token"), "{body}");
    let (wrong_token, _) = post(
        &http,
        &approve_url,
        &approve("0123456789abcdef0123456789abcdef"),
    )
    .await;
    assert_eq!(wrong_token, StatusCode::FORBIDDEN);
    for (name, value) in [
        ("origin", "http://evil.example".to_owned()),
        ("origin", format!("http://localhost:{}", server.port + 1)),
        ("sec-fetch-site", "cross-site".to_owned()),
        ("sec-fetch-site", "same-site".to_owned()),
    ] {
        let cross = http
            .post(&approve_url)
            .header(name, value.as_str())
            .form(&approve(&token))
            .send()
            .await
            .expect("POST");
        assert_eq!(cross.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(
            cross
                .text()
                .await
                .expect("body")
                .contains("cross-site form posts are refused")
        );
    }
    // A page on another name resolving to 127.0.0.1 (DNS rebinding) gets nothing.
    let rebound = http
        .get(&page_url)
        .header(header::HOST, format!("evil.example:{}", server.port))
        .send()
        .await
        .expect("GET");
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    assert_eq!(approvals(data.path(), &id), 0, "nothing was sent");

    // Decisions the store refuses, with the reason on the page.
    let (unknown, body) = post(
        &http,
        &format!("{base}/episodes/no-such-episode/approve"),
        &approve(&token),
    )
    .await;
    assert_eq!(unknown, StatusCode::NOT_FOUND);
    assert!(
        body.contains("episode no-such-episode is not known here"),
        "{body}"
    );
    let mut stale = approve(&token);
    stale[1].1 = "7".to_owned();
    let (stale, body) = post(&http, &approve_url, &stale).await;
    assert_eq!(stale, StatusCode::CONFLICT);
    assert!(
        body.contains("has no proposal 7: the latest is proposal 1"),
        "{body}"
    );
    let (no_note, body) = post(
        &http,
        &format!("{page_url}/reject"),
        &[("csrf", token.as_str()), ("proposal", "1"), ("note", "  ")],
    )
    .await;
    assert_eq!(no_note, StatusCode::BAD_REQUEST);
    assert!(body.contains("a rejection needs a note"), "{body}");

    // Approved with an edited title: 303 back to the page, which says so once.
    let approved = http
        .post(&approve_url)
        .form(&approve(&token))
        .send()
        .await
        .expect("POST");
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let location = approved.headers()[header::LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        location.starts_with(&format!("/episodes/{id}?flash=")),
        "{location}"
    );
    let shown = http
        .get(format!("{base}{location}"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        shown.contains("Proposal 1 approved as “Retries, Really &lt;b&gt;Reliable&lt;/b&gt;”"),
        "{shown}"
    );
    // Sent again at once (a double click) and after publishing: refused, never published twice.
    let (again, body) = post(&http, &approve_url, &approve(&token)).await;
    assert_eq!(again, StatusCode::CONFLICT);
    assert!(
        body.contains("already; nothing is published twice"),
        "{body}"
    );
    let published = wait_published(&http, &page_url).await;
    assert!(
        published.contains("approved by web as “Retries, Really &lt;b&gt;Reliable&lt;/b&gt;”"),
        "{published}"
    );
    assert!(!published.contains("<b>Reliable</b>"), "data is escaped");
    let (late, body) = post(&http, &approve_url, &approve(&token)).await;
    assert_eq!(late, StatusCode::CONFLICT);
    assert!(body.contains("approved by web"), "{body}");
    assert_eq!(approvals(data.path(), &id), 1);
    assert_eq!(summaries(data.path(), &id), 1);
    let notes = std::fs::read_to_string(data.path().join(format!("episodes/{id}/show-notes.md")))
        .expect("show notes");
    assert!(notes.contains(&format!("# {title}\n")), "{notes}");

    // The episode's files, with the types players want, and byte ranges for seeking.
    let mp3 = http
        .get(format!("{page_url}/files/audio.mp3"))
        .send()
        .await
        .expect("GET");
    assert_eq!(mp3.status(), StatusCode::OK);
    assert_eq!(mp3.headers()[header::CONTENT_TYPE], "audio/mpeg");
    assert_eq!(mp3.headers()[header::ACCEPT_RANGES], "bytes");
    let whole = mp3.bytes().await.expect("mp3");
    assert_eq!(
        whole.len() as u64,
        std::fs::metadata(data.path().join(format!("episodes/{id}/audio.mp3")))
            .expect("mp3")
            .len()
    );
    let part = http
        .get(format!("{page_url}/files/audio.mp3"))
        .header(header::RANGE, "bytes=100-199")
        .send()
        .await
        .expect("GET");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()[header::CONTENT_RANGE],
        format!("bytes 100-199/{}", whole.len()).as_str()
    );
    assert_eq!(part.bytes().await.expect("part"), whole.slice(100..200));
    let vtt = http
        .get(format!("{page_url}/files/subtitles.vtt"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        vtt.headers()[header::CONTENT_TYPE],
        "text/vtt; charset=utf-8"
    );
    assert!(vtt.text().await.expect("vtt").starts_with("WEBVTT"));

    // Nothing outside the episode's directory: not by `..`, encoded or raw, nor by a link.
    std::os::unix::fs::symlink(
        data.path().join("podflow.db"),
        data.path().join(format!("episodes/{id}/escape.mp3")),
    )
    .expect("symlink");
    for path in [
        "..%2F..%2Fpodflow.db",
        "%2E%2E%2F%2E%2E%2Fpodflow.db",
        "escape.mp3",
        "missing.mp3",
    ] {
        let refused = http
            .get(format!("{page_url}/files/{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(refused.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let raw = raw_get(
        server.port,
        &format!("/episodes/{id}/files/../../podflow.db"),
    );
    assert!(raw.starts_with("HTTP/1.1 404"), "{raw}");
    let other = http
        .get(format!("{base}/episodes/..%2F..%2F/files/podflow.db"))
        .send()
        .await
        .expect("GET");
    assert_eq!(other.status(), StatusCode::NOT_FOUND);

    // The other pages.
    let dlq = http.get(format!("{base}/dlq")).send().await.expect("GET");
    assert_eq!(dlq.status(), StatusCode::OK);
    assert!(
        dlq.text()
            .await
            .expect("body")
            .contains("Nothing waits in the dead-letter queues")
    );
    let (nothing, _) = post(
        &http,
        &format!("{base}/dlq/replay"),
        &[("csrf", token.as_str())],
    )
    .await;
    assert_eq!(nothing, StatusCode::BAD_REQUEST);
    let prompts = http
        .get(format!("{base}/prompts"))
        .send()
        .await
        .expect("GET");
    assert_eq!(prompts.status(), StatusCode::OK);
    let prompts = prompts.text().await.expect("body");
    for id in ["titles", "summary", "chapters"] {
        assert!(prompts.contains(&format!("id=\"prompt-{id}\"")), "{id}");
    }
    server.stop();
    let note = support::step_note(data.path(), &id, "approve").await;
    assert!(note.contains("approved by web"), "{note}");
}

/// Where `scripts/setup.sh --tests` puts Playwright's library.
fn node_modules() -> PathBuf {
    let dir = podflow_core::cache::cache_dir()
        .join("node")
        .join("node_modules");
    assert!(
        dir.join("playwright-core").is_dir(),
        "no playwright-core in {}: run scripts/setup.sh --tests",
        dir.display()
    );
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_the_episode_page_plays_with_captions_and_approves() {
    let started = Instant::now();
    let (data, id) = awaiting_approval().await;
    let prepared = started.elapsed();
    let server = Server::start(data.path());
    let shots = tempfile::tempdir().expect("tempdir");
    let shot = shots.path().join("episode-page.png");
    let summary = "Two podcasters on pipelines that retry one step, not the whole episode.";
    let mut node = Command::new("node");
    node.arg(repo().join("crates/podflow-cli/tests/browser/episode-page.cjs"))
        .env("NODE_PATH", node_modules())
        .env("PODFLOW_URL", &server.url)
        .env("EPISODE_ID", &id)
        .env("SCREENSHOT", &shot)
        .env("SUMMARY", summary);
    let browsed = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        node.output()
            .expect("node runs (scripts/setup.sh --tests installs Chromium and playwright-core)")
    })
    .await
    .expect("join");
    let browsing = browsed.elapsed();
    assert!(
        out.status.success(),
        "{}\n--- serve ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    let seen: Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or(""),
    )
    .expect("the script's JSON");
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["vtt"]["type"], "text/vtt; charset=utf-8", "{seen}");
    assert!(seen["media"]["cues"].as_u64().unwrap_or(0) > 3, "{seen}");
    // The sample is about 40 s.
    let duration = seen["media"]["duration"].as_f64().unwrap_or(0.0);
    assert!((30.0..60.0).contains(&duration), "{seen}");
    assert_eq!(seen["statusAfter"], "done", "{seen}");
    assert_eq!(
        seen["consoleErrors"].as_array().map(Vec::len),
        Some(0),
        "the page's own markup breaks none of its rules: {seen}"
    );
    let chosen = seen["chosenTitle"].as_str().expect("title").to_owned();
    assert!(!chosen.is_empty());
    assert!(
        seen["showNotes"]
            .as_str()
            .is_some_and(|n| n.contains(&format!("# {chosen}\n")) && n.contains(summary)),
        "{seen}"
    );
    server.stop();

    // In the data directory: one revision, published with the choice and the edit.
    assert_eq!(summaries(data.path(), &id), 1);
    let notes = std::fs::read_to_string(data.path().join(format!("episodes/{id}/show-notes.md")))
        .expect("show notes");
    assert!(notes.contains(&format!("# {chosen}\n")), "{notes}");
    assert!(notes.contains(summary), "{notes}");

    // The screenshot: a PNG small enough to keep in the repository.
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(png.len() < 400 * 1024, "{} bytes", png.len());
    if std::env::var_os("PODFLOW_UPDATE_SCREENSHOTS").is_some() {
        std::fs::write(repo().join("docs/images/episode-page.png"), &png).expect("docs image");
    }
    eprintln!(
        "browser test: {:.1} s to make the episode, {:.1} s in Chromium, {:.1} s in all",
        prepared.as_secs_f64(),
        browsing.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
