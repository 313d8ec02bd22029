//! AWS Elemental MediaConvert's CreateJob on loopback (moto does not serve MediaConvert).
//! It speaks the REST-JSON wire format the SDK uses: `POST /2017-08-29/jobs` with the job
//! in camelCase, `201 {"job": {...}}` back. Like the service it returns the same job for a
//! `clientRequestToken` repeated within a minute (a new job after that), answers
//! `400 BadRequestException` for a token longer than 64 characters or not ASCII, and for a
//! job without a role, an `s3://` input or an output group, and `429 TooManyRequestsException` for as
//! many requests as it was told to throttle. A request without a SigV4 signature for the
//! `mediaconvert` service is refused with 403, as the service refuses it. It records every
//! job it created.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// MediaConvert's documented limits for `clientRequestToken`: up to 64 ASCII characters,
/// and a repeat returns the original job only within one minute.
const MAX_TOKEN_LEN: usize = 64;
const TOKEN_WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Shared {
    throttle: Mutex<u32>,
    /// (token, when, job) in creation order.
    jobs: Mutex<Vec<(String, Instant, Value)>>,
}

pub struct FakeMediaConvert {
    /// The endpoint URL for the SDK.
    pub url: String,
    shared: Arc<Shared>,
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (status, Json(json!({ "message": message }))).into_response();
    if let Ok(v) = kind.parse() {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

async fn create_job(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.starts_with("AWS4-HMAC-SHA256 Credential=")
                && a.contains("/mediaconvert/aws4_request")
                && a.contains("Signature=")
        })
        && headers.contains_key("x-amz-date");
    if !signed {
        return error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    }
    {
        let Ok(mut throttle) = shared.throttle.lock() else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerErrorException",
                "lock",
            );
        };
        if *throttle > 0 {
            *throttle -= 1;
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Too many requests have been sent in too short of a time. The service limits the rate at which it will accept requests.",
            );
        }
    }
    let settings = &body["settings"];
    let input_ok = settings["inputs"][0]["fileInput"]
        .as_str()
        .is_some_and(|f| f.starts_with("s3://"));
    if body["role"].as_str().is_none_or(str::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "You must specify an IAM role.",
        );
    }
    if !input_ok
        || settings["outputGroups"]
            .as_array()
            .is_none_or(Vec::is_empty)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "/settings: a job needs an s3:// input and at least one output group",
        );
    }
    let token = body["clientRequestToken"].as_str().unwrap_or("").to_owned();
    if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            &format!(
                "/clientRequestToken: must be up to {MAX_TOKEN_LEN} ASCII characters; found {} characters",
                token.chars().count()
            ),
        );
    }
    let Ok(mut jobs) = shared.jobs.lock() else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerErrorException",
            "lock",
        );
    };
    if let Some((_, _, job)) = jobs
        .iter()
        .rev()
        .find(|(t, at, _)| !token.is_empty() && *t == token && at.elapsed() < TOKEN_WINDOW)
    {
        return (StatusCode::CREATED, Json(json!({ "job": job }))).into_response();
    }
    let id = format!("1671476818694-{:06}", jobs.len());
    let job = json!({
        "id": id,
        "arn": format!("arn:aws:mediaconvert:us-east-1:123456789012:jobs/{id}"),
        "status": "SUBMITTED",
        "role": body["role"],
        "settings": settings,
        "userMetadata": body.get("userMetadata").cloned().unwrap_or(json!({})),
        "createdAt": 1_671_476_818,
    });
    jobs.push((token, Instant::now(), job.clone()));
    (StatusCode::CREATED, Json(json!({ "job": job }))).into_response()
}

impl FakeMediaConvert {
    /// Throttles the first `throttle` requests, then serves.
    pub async fn start(throttle: u32) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            throttle: Mutex::new(throttle),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/2017-08-29/jobs", post(create_job))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}"),
            shared,
        })
    }

    /// The jobs created so far, as the service would show them.
    pub fn jobs(&self) -> Vec<Value> {
        self.shared
            .jobs
            .lock()
            .map(|j| j.iter().map(|(_, _, job)| job.clone()).collect())
            .unwrap_or_default()
    }

    /// Makes every job created so far `by` older, as if that much time had passed (so a
    /// test can cross the token's one-minute window without waiting for it).
    pub fn age_jobs(&self, by: Duration) {
        if let Ok(mut jobs) = self.shared.jobs.lock() {
            for (_, at, _) in jobs.iter_mut() {
                *at = at.checked_sub(by).unwrap_or(*at);
            }
        }
    }
}
