//! The HTML of `podflow serve`: pure functions from what the store holds to markup. Every
//! piece of data (titles, transcripts, notes, errors, file names) goes through [`esc`];
//! only the literal markup here is trusted.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use axum::http::StatusCode;
use podflow_core::{DeadLetterMessage, PromptStatus, StepStatus};
use podflow_events::{CostBlock, EpisodeProposed, PromptJob};
use prompt_dispatcher::catalog::{Catalog, PromptDefinition};
use publisher::cost::PriceTable;

use super::files::{Output, Shown};
use crate::report::EpisodeReport;

/// The page's style sheet (served at `/style.css`: the policy allows no inline style).
pub const STYLE: &str = r#"
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #f6f7f9; --accent: #2457c5; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header.top { background: #1d2330; color: #fff; padding: .6rem 1.2rem; display: flex; gap: 1.4rem; align-items: baseline; }
header.top a { color: #cfd8ff; text-decoration: none; }
header.top a.active, header.top a:hover { color: #fff; text-decoration: underline; }
header.top .brand { font-weight: 700; color: #fff; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.5rem; margin: .4rem 0; }
h2 { font-size: 1.15rem; margin: 0 0 .6rem; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .9rem 1.1rem; margin: 1rem 0; }
.meta { color: var(--muted); margin: 0 0 .6rem; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
td.note { max-width: 34rem; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: 999px; font-size: .85rem; background: #e8ebf1; white-space: nowrap; }
.st-done, .st-completed { background: #dcf3e3; color: #145c2c; }
.st-failed { background: #fbe0e0; color: #8a1c1c; }
.st-partial { background: #fff0cc; color: #7a5200; }
.st-running, .st-queued, .st-in_progress { background: #e3ecff; color: #1f46a0; }
.st-awaiting_approval { background: #f1e3ff; color: #5b2a91; }
.steps .badge { margin: 0 .2rem .2rem 0; }
.flash { padding: .6rem .9rem; border-radius: 6px; margin: .8rem 0; background: #dcf3e3; border: 1px solid #9fd7b0; }
.flash.error { background: #fbe0e0; border-color: #e7a3a3; }
audio { width: 100%; margin: .3rem 0; }
p.caption { min-height: 1.5em; margin: .2rem .4rem; font-size: 1.05rem; color: #2b2f3a; }
fieldset { border: 1px solid var(--line); border-radius: 6px; margin: .6rem 0; padding: .5rem .8rem; }
legend { color: var(--muted); padding: 0 .3rem; }
label.choice { display: block; padding: .15rem 0; }
label.field { display: block; margin: .5rem 0 .2rem; font-weight: 600; }
input[type=text] { width: 100%; padding: .35rem .5rem; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
input.short { width: 16rem; }
textarea { width: 100%; padding: .4rem .5rem; border: 1px solid var(--line); border-radius: 4px; font: inherit; }
button { font: inherit; padding: .4rem 1rem; border-radius: 5px; border: 1px solid #1f46a0; background: var(--accent); color: #fff; cursor: pointer; margin: .5rem .4rem 0 0; }
button.secondary { background: #fff; color: #8a1c1c; border-color: #c98585; }
.decide-grid { display: grid; grid-template-columns: 3fr 2fr; gap: 1.2rem; }
@media (max-width: 800px) { .decide-grid { grid-template-columns: 1fr; } }
details { margin: .3rem 0; }
details > summary { cursor: pointer; }
pre { background: #f3f4f7; border: 1px solid var(--line); border-radius: 4px; padding: .6rem; overflow: auto; max-height: 28rem; white-space: pre-wrap; overflow-wrap: anywhere; font-size: .85rem; }
img.output { max-width: 320px; border: 1px solid var(--line); }
small, .muted { color: var(--muted); }
code { font-size: .88em; }
"#;

/// The page's one script (served at `/player.js`): browsers load an audio element's
/// captions track but draw none, so the cue being spoken is written under the player.
pub const PLAYER_JS: &str = r#"'use strict';
for (const audio of document.querySelectorAll('audio[data-captions]')) {
  const out = document.getElementById(audio.dataset.captions);
  const track = audio.textTracks[0];
  if (!out || !track) continue;
  track.addEventListener('cuechange', () => {
    // As text: a cue's voice spans (<v Speaker 1>) become plain words.
    out.textContent = Array.from(track.activeCues || [])
      .map((cue) => cue.getCueAsHTML().textContent)
      .join(' ');
  });
}
"#;

/// The tab's icon (served at `/favicon.svg`).
pub const FAVICON_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#5b2a91"/><rect x="6.5" y="3.5" width="3" height="6" rx="1.5" fill="#fff"/><path d="M5 8.5a3 3 0 0 0 6 0M8 11.5v1.5" stroke="#fff" fill="none"/></svg>"##;

/// A one-time message after a redirect.
#[derive(Debug, Clone, PartialEq)]
pub struct Flash {
    pub error: bool,
    pub text: String,
}

impl Flash {
    pub fn ok(text: String) -> Self {
        Self { error: false, text }
    }

    pub fn error(text: String) -> Self {
        Self { error: true, text }
    }
}

/// Escapes text for HTML content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one URL path segment (everything but unreserved characters).
fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub fn episode_path(id: &str) -> String {
    format!("/episodes/{}", seg(id))
}

fn file_url(id: &str, name: &str) -> String {
    let parts: Vec<String> = name.split('/').map(seg).collect();
    format!("{}/files/{}", episode_path(id), parts.join("/"))
}

fn badge(status: &str) -> String {
    let class: String = status
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!(
        "<span class=\"badge st-{class}\">{}</span>",
        esc(&status.replace('_', " "))
    )
}

fn flash_html(flash: Option<&Flash>) -> String {
    flash.map_or_else(String::new, |f| {
        format!(
            "<p class=\"flash{}\" role=\"status\">{}</p>",
            if f.error { " error" } else { "" },
            esc(&f.text)
        )
    })
}

fn layout(title: &str, active: &str, flash: Option<&Flash>, body: &str) -> String {
    let nav = [
        ("/", "Episodes"),
        ("/dlq", "Dead letters"),
        ("/prompts", "Prompts"),
    ]
    .iter()
    .map(|(href, label)| {
        format!(
            "<a href=\"{href}\"{}>{label}</a>",
            if *href == active {
                " class=\"active\""
            } else {
                ""
            }
        )
    })
    .collect::<Vec<_>>()
    .join("");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · podflow</title><link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><header class=\"top\"><span class=\"brand\">podflow</span>{nav}</header>\
         <main>{}{body}</main></body></html>\n",
        esc(title),
        flash_html(flash)
    )
}

/// A refused request: the status and the reason in words.
pub fn error(status: StatusCode, reason: &str) -> String {
    let body = format!(
        "<h1>{} {}</h1><section class=\"card\"><p id=\"reason\">{}</p>\
         <p>Go back to change what you sent, or to the <a href=\"/\">episodes</a>.</p></section>",
        status.as_u16(),
        esc(status.canonical_reason().unwrap_or("")),
        esc(reason)
    );
    layout(&format!("{}", status.as_u16()), "", None, &body)
}

fn when(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn step_mark(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Done => "✓",
        StepStatus::Failed => "✗",
        StepStatus::Running => "…",
    }
}

/// The episodes, newest first, with their steps.
pub fn index(rows: &[(EpisodeReport, i64)], flash: Option<&Flash>, data_dir: &Path) -> String {
    let mut body = String::from("<h1>Episodes</h1>");
    if rows.is_empty() {
        let _ = write!(
            body,
            "<section class=\"card\"><p>No episodes yet in <code>{}</code>. This page holds the \
             data directory while it runs: stop it (Ctrl-C), add one with \
             <code>podflow run FILE</code>, and serve again.</p></section>",
            esc(&data_dir.display().to_string())
        );
        return layout("Episodes", "/", flash, &body);
    }
    body.push_str(
        "<section class=\"card\"><table><thead><tr><th>Episode</th><th>Status</th><th>Steps</th>\
         <th>Prompts</th><th>Revision</th><th>Recorded</th></tr></thead><tbody>",
    );
    for (report, created) in rows {
        let steps: String = report
            .steps
            .iter()
            .map(|s| {
                format!(
                    "<span class=\"badge st-{}\">{} {}</span>",
                    s.status.as_str(),
                    esc(&s.step),
                    step_mark(s.status)
                )
            })
            .collect();
        let done = report
            .prompts
            .iter()
            .filter(|p| p.status == PromptStatus::Completed)
            .count();
        let failed = report
            .prompts
            .iter()
            .filter(|p| p.status == PromptStatus::Failed)
            .count();
        let prompts = if report.prompts.is_empty() {
            "—".to_owned()
        } else if failed > 0 {
            format!("{done}/{} ({failed} failed)", report.prompts.len())
        } else {
            format!("{done}/{}", report.prompts.len())
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"{}\">{}</a><br><small><code>{}</code></small></td><td>{}</td>\
             <td class=\"steps\">{steps}</td><td>{prompts}</td><td>{}</td><td>{}</td></tr>",
            esc(&episode_path(&report.episode_id)),
            esc(&report.original_name),
            esc(&report.episode_id),
            badge(&report.status),
            report
                .summary_revision
                .map_or_else(|| "—".to_owned(), |r| r.to_string()),
            when(*created)
        );
    }
    body.push_str("</tbody></table></section>");
    layout("Episodes", "/", flash, &body)
}

/// Where an episode's latest proposal stands.
#[derive(Debug)]
pub enum DecisionView {
    /// No proposal: the show does not require approval, or nothing is made yet.
    NothingProposed,
    /// Waiting for a person: the forms.
    Pending {
        proposal: Box<EpisodeProposed>,
        /// The episode's prompts (what a rejection can re-run).
        prompts: Vec<String>,
        /// The title when no title was suggested.
        original_name: String,
    },
    /// Sent from this page; the publisher has not recorded it yet.
    Sent(String),
    /// Recorded by the publisher.
    Decided(String),
}

/// What the episode page shows.
#[derive(Debug)]
pub struct EpisodePage<'a> {
    pub report: &'a EpisodeReport,
    pub csrf: &'a str,
    pub flash: Option<&'a Flash>,
    pub decision: DecisionView,
    pub prices: Option<&'a PriceTable>,
    /// The transcript's language, for the captions.
    pub language: Option<String>,
    pub outputs: &'a [Output],
}

pub fn episode(page: &EpisodePage<'_>) -> String {
    let r = page.report;
    let id = &r.episode_id;
    let mut body = format!(
        "<h1>{}</h1><p class=\"meta\">Episode <code>{}</code> · <span id=\"status\" data-status=\"{}\">{}</span>{}</p>",
        esc(&r.original_name),
        esc(id),
        esc(&r.status),
        badge(&r.status),
        r.summary_revision
            .map_or_else(String::new, |rev| format!(" · published revision {rev}")),
    );
    body.push_str(&listen(page));
    body.push_str(&decision(page));
    body.push_str(&steps_table(r));
    body.push_str(&prompts_table(r, page.prices));
    body.push_str(&outputs(id, page.outputs));
    layout(&r.original_name, "", page.flash, &body)
}

fn listen(page: &EpisodePage<'_>) -> String {
    let id = &page.report.episode_id;
    let has = |name: &str| page.outputs.iter().any(|o| o.name == name);
    if !has("audio.mp3") {
        return "<section class=\"card\" id=\"listen\"><h2>Listen</h2><p class=\"muted\">No MP3 yet: the transcode step makes it.</p></section>".to_owned();
    }
    let track = if has("subtitles.vtt") {
        let lang = page
            .language
            .as_deref()
            .map_or_else(String::new, |l| format!(" srclang=\"{}\"", esc(l)));
        format!(
            "<track kind=\"captions\" src=\"{}\"{lang} label=\"Captions\" default>",
            esc(&file_url(id, "subtitles.vtt"))
        )
    } else {
        String::new()
    };
    if track.is_empty() {
        return format!(
            "<section class=\"card\" id=\"listen\"><h2>Listen</h2>\
             <audio controls preload=\"metadata\" src=\"{}\"></audio>\
             <p class=\"muted\">No captions yet: the transcribe step writes them.</p></section>",
            esc(&file_url(id, "audio.mp3"))
        );
    }
    format!(
        "<section class=\"card\" id=\"listen\"><h2>Listen</h2>\
         <audio controls preload=\"metadata\" src=\"{}\" data-captions=\"caption\">{track}</audio>\
         <p id=\"caption\" class=\"caption\" aria-live=\"off\"></p>\
         <script src=\"/player.js\" defer></script></section>",
        esc(&file_url(id, "audio.mp3"))
    )
}

fn decision(page: &EpisodePage<'_>) -> String {
    let id = &page.report.episode_id;
    match &page.decision {
        DecisionView::NothingProposed => String::new(),
        DecisionView::Sent(what) => format!(
            "<section class=\"card\" id=\"decision\"><h2>Decision</h2><p>{}: the workers are taking it; reload to follow.</p></section>",
            esc(&capitalised(what))
        ),
        DecisionView::Decided(what) => format!(
            "<section class=\"card\" id=\"decision\"><h2>Decision</h2><p>{}.</p></section>",
            esc(&capitalised(what))
        ),
        DecisionView::Pending {
            proposal,
            prompts,
            original_name,
        } => {
            let path = esc(&episode_path(id));
            let hidden = format!(
                "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"proposal\" value=\"{}\">",
                esc(page.csrf),
                proposal.proposal
            );
            let mut titles = String::new();
            for (i, t) in proposal.titles.iter().enumerate() {
                let _ = write!(
                    titles,
                    "<label class=\"choice\"><input type=\"radio\" name=\"title_choice\" value=\"{}\"{}> {}</label>",
                    i + 1,
                    if i == 0 { " checked" } else { "" },
                    esc(t)
                );
            }
            if proposal.titles.is_empty() {
                let _ = write!(
                    titles,
                    "<label class=\"choice\"><input type=\"radio\" name=\"title_choice\" value=\"first\" checked> {} <small>(the file's name: no title was suggested)</small></label>",
                    esc(original_name)
                );
            }
            let chapters: String = proposal
                .chapters
                .iter()
                .map(|c| {
                    format!(
                        "<li><code>{}</code> {}</li>",
                        podflow_core::transcript::clock(c.start_time),
                        esc(&c.title)
                    )
                })
                .collect();
            let failed: String = proposal
                .failed_prompts
                .iter()
                .map(|f| {
                    format!(
                        "<li><code>{}</code>: {}</li>",
                        esc(&f.prompt_id),
                        esc(&f.reason)
                    )
                })
                .collect();
            let failed = if failed.is_empty() {
                String::new()
            } else {
                format!(
                    "<p>Prompts that failed (their outputs come from the extractive engine or are missing):</p><ul>{failed}</ul>"
                )
            };
            let reruns: String = if prompts.is_empty() {
                "<p class=\"muted\">No prompts ran for this episode, so none can run again.</p>"
                    .to_owned()
            } else {
                prompts
                    .iter()
                    .map(|p| {
                        format!(
                            "<label class=\"choice\"><input type=\"checkbox\" name=\"rerun\" value=\"{0}\"> {0}</label>",
                            esc(p)
                        )
                    })
                    .collect()
            };
            format!(
                "<section class=\"card\" id=\"decision\"><h2>Proposal {n} awaits your decision</h2>\
                 <p class=\"meta\">Nothing is published until it is approved. The draft files are under Outputs below.</p>{failed}\
                 <div class=\"decide-grid\">\
                 <form method=\"post\" action=\"{path}/approve\" id=\"approve-form\">{hidden}\
                 <fieldset><legend>Title</legend>{titles}\
                 <label class=\"field\" for=\"title_text\">Or write your own <small>(used instead when filled in)</small></label>\
                 <input type=\"text\" id=\"title_text\" name=\"title_text\" maxlength=\"300\"></fieldset>\
                 <label class=\"field\" for=\"summary\">Summary</label>\
                 <textarea id=\"summary\" name=\"summary\" rows=\"7\">{summary}</textarea>\
                 {chapters}\
                 <button type=\"submit\" id=\"approve\">Approve and publish</button></form>\
                 <form method=\"post\" action=\"{path}/reject\" id=\"reject-form\">{hidden}\
                 <label class=\"field\" for=\"note\">Reject: why?</label>\
                 <textarea id=\"note\" name=\"note\" rows=\"3\" required></textarea>\
                 <fieldset><legend>Prompts to run again</legend>{reruns}\
                 <label class=\"field\" for=\"model\">On model <small>(optional)</small></label><input type=\"text\" id=\"model\" name=\"model\">\
                 <label class=\"field\" for=\"prompt_version\">Prompt version <small>(optional: latest, or a number)</small></label>\
                 <input type=\"text\" id=\"prompt_version\" name=\"prompt_version\" class=\"short\"></fieldset>\
                 <button type=\"submit\" id=\"reject\" class=\"secondary\">Reject</button></form>\
                 </div></section>",
                n = proposal.proposal,
                summary = esc(proposal.summary.as_deref().unwrap_or("")),
                chapters = if chapters.is_empty() {
                    String::new()
                } else {
                    format!(
                        "<details><summary>Chapters ({})</summary><ol>{chapters}</ol></details>",
                        proposal.chapters.len()
                    )
                },
            )
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn steps_table(r: &EpisodeReport) -> String {
    let mut rows = String::new();
    for s in &r.steps {
        let duration = s
            .finished_at_ms
            .map(|f| format!("{:.1} s", (f - s.started_at_ms).max(0) as f64 / 1000.0))
            .unwrap_or_else(|| "—".into());
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{duration}</td><td class=\"note\">{}</td></tr>",
            esc(&s.step),
            badge(s.status.as_str()),
            s.attempts,
            esc(s.note.as_deref().unwrap_or(""))
        );
    }
    format!(
        "<section class=\"card\" id=\"steps\"><h2>Steps</h2><table><thead><tr><th>Step</th><th>Status</th>\
         <th>Attempts</th><th>Took</th><th>Note</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )
}

fn usd(v: f64) -> String {
    format!("${v:.4}")
}

fn prompts_table(r: &EpisodeReport, prices: Option<&PriceTable>) -> String {
    let mut body = String::from("<section class=\"card\" id=\"prompts\"><h2>Prompts</h2>");
    if r.prompts.is_empty() {
        body.push_str("<p class=\"muted\">No prompts ran for this episode (the dispatch step's note says why).</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>Prompt</th><th>Version</th><th>Model</th><th>Status</th><th>Attempts</th>\
             <th>Tokens in / out</th><th>Cost</th><th>Last error</th></tr></thead><tbody>",
        );
        for p in &r.prompts {
            let cost = prices.and_then(|t| t.model(&p.model)).map_or_else(
                || "no price".to_owned(),
                |price| {
                    usd(f64::from(p.input_tokens) / 1000.0 * price.input_per_1k
                        + f64::from(p.output_tokens) / 1000.0 * price.output_per_1k)
                },
            );
            let attempts = if p.throttles > 0 {
                format!("{} <small>(+{} throttled)</small>", p.attempts, p.throttles)
            } else {
                p.attempts.to_string()
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"num\">v{}</td><td>{}</td><td>{}</td><td class=\"num\">{attempts}</td>\
                 <td class=\"num\">{} / {}</td><td class=\"num\">{cost}</td><td class=\"note\">{}</td></tr>",
                esc(&p.prompt_id),
                p.prompt_version,
                esc(&p.model),
                badge(p.status.as_str()),
                p.input_tokens,
                p.output_tokens,
                esc(p.last_error.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</tbody></table>");
    }
    if let Some(cost) = &r.cost {
        body.push_str(&cost_html(cost));
    }
    body.push_str("</section>");
    body
}

fn cost_html(cost: &CostBlock) -> String {
    let price = |v: Option<f64>| v.map_or_else(|| "no price".to_owned(), usd);
    let mut items = format!(
        "<li>{:.1} audio minutes on {} ({})</li>",
        cost.audio_minutes,
        esc(&cost.transcription_engine),
        price(cost.transcription_usd)
    );
    for m in &cost.models {
        let _ = write!(
            items,
            "<li>{}: {} in / {} out tokens ({})</li>",
            esc(&m.model),
            m.input_tokens,
            m.output_tokens,
            price(m.usd)
        );
    }
    format!(
        "<p id=\"cost\"><strong>Estimated cost {}</strong></p><ul>{items}</ul>",
        usd(cost.total_usd)
    )
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn outputs(id: &str, outputs: &[Output]) -> String {
    let mut body = String::from("<section class=\"card\" id=\"outputs\"><h2>Outputs</h2>");
    if outputs.is_empty() {
        body.push_str("<p class=\"muted\">No files yet.</p>");
    }
    for o in outputs {
        let url = esc(&file_url(id, &o.name));
        let content = match &o.shown {
            Shown::Text(text) => format!("<pre>{}</pre>", esc(text)),
            Shown::Json(text) => format!("<pre class=\"json\">{}</pre>", esc(text)),
            Shown::Audio => format!("<audio controls preload=\"none\" src=\"{url}\"></audio>"),
            Shown::Image => format!(
                "<img class=\"output\" src=\"{url}\" alt=\"{}\">",
                esc(&o.name)
            ),
            Shown::Link => "<p class=\"muted\">Not shown here: open the file.</p>".to_owned(),
        };
        let _ = write!(
            body,
            "<details{}><summary><code>{}</code> <small>{}</small> · <a href=\"{url}\">open</a></summary>{content}</details>",
            if o.name == "show-notes.md" {
                " open"
            } else {
                ""
            },
            esc(&o.name),
            size(o.bytes),
        );
    }
    body.push_str("</section>");
    body
}

/// The dead-letter queues with a replay form.
pub fn dlq(letters: &[DeadLetterMessage], csrf: &str, flash: Option<&Flash>) -> String {
    let mut body = String::from("<h1>Dead letters</h1>");
    if letters.is_empty() {
        body.push_str(
            "<section class=\"card\"><p>Nothing waits in the dead-letter queues.</p></section>",
        );
        return layout("Dead letters", "/dlq", flash, &body);
    }
    let _ = write!(
        body,
        "<section class=\"card\"><p class=\"meta\">Messages that failed every try. Fix the cause \
         (the reason says it), then replay them; prompts can run on another model or be rendered \
         again from the catalog at another version.</p>\
         <form method=\"post\" action=\"/dlq/replay\" id=\"replay-form\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <table><thead><tr><th></th><th>Message</th><th>From</th><th>What</th><th>Receives</th><th>Reason</th></tr></thead><tbody>",
        esc(csrf)
    );
    for (i, l) in letters.iter().enumerate() {
        let what = esc(&crate::dlq::describe(&l.body, l.group_id.as_deref()));
        let what = match serde_json::from_str::<PromptJob>(&l.body) {
            Ok(job) => format!(
                "<a href=\"{}\">{what}</a>",
                esc(&episode_path(&job.episode_id))
            ),
            Err(_) => what,
        };
        let _ = write!(
            body,
            "<tr><td><input type=\"checkbox\" name=\"message_id\" value=\"{}\" id=\"m{i}\"></td>\
             <td><label for=\"m{i}\"><code>{}</code></label></td><td>{}</td><td>{what}</td><td class=\"num\">{}</td><td class=\"note\">{}</td></tr>",
            esc(&l.message_id),
            esc(&l.message_id),
            esc(&l.source_queue),
            l.receive_count,
            esc(l
                .reason
                .as_deref()
                .unwrap_or("moved after its last receive"))
        );
    }
    body.push_str(
        "</tbody></table><fieldset><legend>Replay prompts</legend>\
         <label class=\"field\" for=\"model\">On model <small>(optional)</small></label><input type=\"text\" id=\"model\" name=\"model\" class=\"short\">\
         <label class=\"field\" for=\"prompt_version\">At prompt version <small>(optional: latest, or a number the catalog holds)</small></label>\
         <input type=\"text\" id=\"prompt_version\" name=\"prompt_version\" class=\"short\"></fieldset>\
         <button type=\"submit\">Replay selected</button><button type=\"submit\" name=\"all\" value=\"1\">Replay all</button>\
         </form></section>",
    );
    layout("Dead letters", "/dlq", flash, &body)
}

/// What the catalog page shows.
#[derive(Debug)]
pub struct CatalogPage<'a> {
    /// Bundled prompts with the override directory's.
    pub catalog: &'a Catalog,
    /// The bundled prompts alone (what an override replaced).
    pub bundled: &'a Catalog,
    pub prompts_dir: Option<&'a Path>,
    pub default_model: &'a str,
    /// Versions episodes ran, per prompt, with how many episodes.
    pub used: &'a BTreeMap<String, BTreeMap<u32, u32>>,
}

fn source(page: &CatalogPage<'_>, def: &PromptDefinition) -> String {
    let dir = page
        .prompts_dir
        .map_or_else(String::new, |d| d.display().to_string());
    match page.bundled.prompts.get(&def.id) {
        Some(b) if b == def => "bundled".to_owned(),
        Some(b) => format!("{dir} (replaces bundled v{})", b.version),
        None => format!("{dir} (added)"),
    }
}

pub fn prompts(page: &CatalogPage<'_>) -> String {
    let mut body = String::from("<h1>Prompt catalog</h1><section class=\"card\">");
    let _ = write!(
        body,
        "<p class=\"meta\">The bundled prompts{}. <code>model = \"default\"</code> runs on <code>{}</code>. \
         A replay or a re-run at a prompt version needs that version here.</p>",
        page.prompts_dir.map_or_else(String::new, |d| format!(
            ", with those in <code>{}</code> added or replacing them by id",
            esc(&d.display().to_string())
        )),
        esc(page.default_model)
    );
    if !page.catalog.problems.is_empty() {
        body.push_str("<p class=\"flash error\">Files left out of the catalog:</p><ul>");
        for p in &page.catalog.problems {
            let _ = write!(body, "<li><code>{}</code></li>", esc(&p.to_string()));
        }
        body.push_str("</ul>");
    }
    body.push_str(
        "<table><thead><tr><th>Prompt</th><th>Version</th><th>Model</th><th>Max tokens</th>\
         <th>Temperature</th><th>Transcript</th><th>Output</th><th>From</th><th>Episodes ran</th></tr></thead><tbody>",
    );
    for def in page.catalog.prompts.values() {
        let used = page.used.get(&def.id).map_or_else(
            || "—".to_owned(),
            |versions| {
                versions
                    .iter()
                    .map(|(v, n)| format!("v{v} × {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        let _ = write!(
            body,
            "<tr><td><a href=\"#prompt-{0}\">{0}</a></td><td class=\"num\">v{1}</td><td>{2}</td><td class=\"num\">{3}</td>\
             <td class=\"num\">{4:.2}</td><td>{5}</td><td>{6}</td><td>{7}</td><td>{used}</td></tr>",
            esc(&def.id),
            def.version,
            esc(&def.model),
            def.max_tokens,
            def.temperature,
            format!("{:?}", def.view).to_lowercase(),
            esc(&def.output),
            esc(&source(page, def)),
        );
    }
    body.push_str("</tbody></table></section>");
    for def in page.catalog.prompts.values() {
        let system = if def.system.is_empty() {
            String::new()
        } else {
            format!("<h3>System</h3><pre>{}</pre>", esc(&def.system))
        };
        let _ = write!(
            body,
            "<section class=\"card\" id=\"prompt-{0}\"><h2>{0} <small>v{1}</small></h2>{system}\
             <details><summary>Template</summary><pre>{2}</pre></details></section>",
            esc(&def.id),
            def.version,
            esc(&def.template)
        );
    }
    layout("Prompts", "/prompts", None, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podflow_core::{PromptState, StepState};

    const HOSTILE: &str = "<script>alert('x')</script>\"&";

    fn report() -> EpisodeReport {
        EpisodeReport {
            episode_id: "ep-1".into(),
            original_name: HOSTILE.into(),
            status: "awaiting_approval".into(),
            steps: vec![StepState {
                step: "approve".into(),
                status: StepStatus::Running,
                attempts: 1,
                started_at_ms: 0,
                finished_at_ms: None,
                note: Some(HOSTILE.into()),
            }],
            prompts: vec![PromptState {
                prompt_id: "titles".into(),
                prompt_version: 2,
                model: "m".into(),
                status: PromptStatus::Failed,
                attempts: 5,
                last_error: Some(HOSTILE.into()),
                output: None,
                input_tokens: 1000,
                output_tokens: 500,
                throttles: 0,
                throttled_since_ms: None,
            }],
            summary_revision: None,
            files: Vec::new(),
            cost: None,
        }
    }

    fn proposal() -> EpisodeProposed {
        serde_json::from_value(serde_json::json!({
            "schema_version": "1.0",
            "episode_id": "ep-1",
            "correlation_id": "c",
            "proposal": 3,
            "status": "complete",
            "titles": [HOSTILE, "Second"],
            "summary": HOSTILE,
            "chapters": [{"start_time": 65.0, "title": HOSTILE}],
        }))
        .expect("proposal")
    }

    #[test]
    fn data_is_escaped_everywhere_on_the_episode_page() {
        let report = report();
        let outputs = vec![
            Output {
                name: "show-notes.md".into(),
                bytes: 10,
                shown: Shown::Text(HOSTILE.into()),
            },
            Output {
                name: "audio.mp3".into(),
                bytes: 10,
                shown: Shown::Audio,
            },
            Output {
                name: "subtitles.vtt".into(),
                bytes: 10,
                shown: Shown::Text("WEBVTT".into()),
            },
        ];
        let flash = Flash::error(HOSTILE.into());
        let page = EpisodePage {
            report: &report,
            csrf: "tok",
            flash: Some(&flash),
            decision: DecisionView::Pending {
                proposal: Box::new(proposal()),
                prompts: vec!["titles".into()],
                original_name: HOSTILE.into(),
            },
            prices: None,
            language: Some("en".into()),
            outputs: &outputs,
        };
        let html = episode(&page);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));
        // The player, its captions, and the forms with the token and the proposal shown.
        assert!(html.contains(
            "<audio controls preload=\"metadata\" src=\"/episodes/ep-1/files/audio.mp3\" data-captions=\"caption\"><track kind=\"captions\" src=\"/episodes/ep-1/files/subtitles.vtt\" srclang=\"en\" label=\"Captions\" default></audio>"
        ));
        assert_eq!(html.matches("name=\"csrf\" value=\"tok\"").count(), 2);
        assert_eq!(html.matches("name=\"proposal\" value=\"3\"").count(), 2);
        assert!(html.contains("value=\"2\"> Second</label>"));
        assert!(html.contains("<code>00:01:05</code>"), "{html}");
        assert!(html.contains("name=\"rerun\" value=\"titles\""));
    }

    #[test]
    fn the_catalog_says_where_each_prompt_comes_from_and_which_versions_ran() {
        let bundled = Catalog::load(None);
        let mut catalog = bundled.clone();
        let mut titles = catalog.prompts["titles"].clone();
        titles.version += 1;
        titles.template = format!("{HOSTILE} {{{{transcript}}}}");
        catalog.prompts.insert("titles".into(), titles);
        let mut added = catalog.prompts["summary"].clone();
        added.id = "x-added".into();
        catalog.prompts.insert("x-added".into(), added);
        let used = BTreeMap::from([("summary".to_owned(), BTreeMap::from([(1, 2), (2, 1)]))]);
        let html = prompts(&CatalogPage {
            catalog: &catalog,
            bundled: &bundled,
            prompts_dir: Some(Path::new("/p")),
            default_model: "m",
            used: &used,
        });
        assert!(html.contains(&format!(
            "/p (replaces bundled v{})",
            bundled.prompts["titles"].version
        )));
        assert!(html.contains("/p (added)"));
        assert!(html.contains(">bundled<"));
        assert!(html.contains("v1 × 2, v2 × 1"));
        assert!(!html.contains("<script>"), "templates are escaped");
    }

    #[test]
    fn file_links_encode_what_the_id_and_names_hold() {
        assert_eq!(
            file_url("a b/../c", "clips/1 x.mp3"),
            "/episodes/a%20b%2F..%2Fc/files/clips/1%20x.mp3"
        );
    }

    #[test]
    fn the_error_page_says_the_reason_escaped() {
        let html = error(StatusCode::CONFLICT, "already <b>approved</b>");
        assert!(html.contains("409 Conflict"));
        assert!(html.contains("already &lt;b&gt;approved&lt;/b&gt;"));
    }
}
