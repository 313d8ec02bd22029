//! Stable links on moto's S3: the notifier's links name the file and an expiry, and the
//! link function redirects a valid one to a URL pre-signed at that moment (which serves the
//! file), and refuses an expired or altered one in words.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podflow_aws::s3::S3BlobStore;
use podflow_core::{BlobStore, links::LinkSecret, secret::Secret};
use podflow_events::BlobRef;
use podflow_fakes::moto::MotoServer;
use publisher::links::{LinkAnswer, ShareLinks, StableLinks, configured_stable_links, open_link};

const BUCKET: &str = "podflow-links";
const BASE: &str = "https://abc.lambda-url.us-east-1.on.aws/";

fn secret() -> LinkSecret {
    LinkSecret::new(vec![42u8; 48]).expect("secret")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn a_stable_link_redirects_to_the_file_until_it_expires() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let moto = MotoServer::start();
    let config = moto.sdk_config().await;
    podflow_fakes::moto::create_bucket(&config, BUCKET).await;
    let blobs = S3BlobStore::new(&config, BUCKET, true);
    let audio = blobs
        .put("episodes/ep-1/audio.mp3", b"ID3 mp3 bytes".to_vec())
        .await
        .expect("mp3");
    let links = ShareLinks {
        lifetime: Duration::from_secs(30 * 24 * 3600),
        stable: Some(StableLinks {
            base_url: BASE.into(),
            secret: secret(),
            bucket: BUCKET.into(),
        }),
    };

    // Thirty days: longer than any pre-signed URL could live.
    let link = links.url(&blobs, &audio).await.expect("link");
    assert!(link.starts_with(BASE), "{link}");
    let query = link.split_once('?').map(|(_, q)| q).expect("query");
    let expires: u64 = query
        .split('&')
        .find_map(|p| p.strip_prefix("expires="))
        .and_then(|e| e.parse().ok())
        .expect("expires");
    assert!(expires.abs_diff(now() + 30 * 24 * 3600) < 60);

    let LinkAnswer::Redirect(url) = open_link(&blobs, &secret(), query).await else {
        panic!("a valid link redirects");
    };
    assert!(
        url.contains("X-Amz-Expires=600"),
        "signed for ten minutes: {url}"
    );
    let body = reqwest::get(&url)
        .await
        .expect("moto answers")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&body[..], b"ID3 mp3 bytes");

    // Expired, altered, or for a file outside the episodes: refused, in words.
    let expired = secret().link(BASE, "episodes/ep-1/audio.mp3", now() - 1);
    let answer = open_link(&blobs, &secret(), expired.split_once('?').expect("q").1).await;
    assert_eq!(answer.status(), 403);
    assert!(
        matches!(&answer, LinkAnswer::Refused(r) if r.to_string().contains("expired")),
        "{answer:?}"
    );
    let (status, location, body) = answer.into_http();
    assert_eq!((status, location), (403, None));
    assert!(body.starts_with("this link expired at"), "{body}");
    let altered = query.replace("audio.mp3", "summary.md");
    assert!(matches!(
        open_link(&blobs, &secret(), &altered).await,
        LinkAnswer::Refused(podflow_core::links::LinkRefusal::BadSignature)
    ));

    // A file in another bucket is not served by the link function: its link is pre-signed.
    let foreign = BlobRef {
        bucket: Some("someone-else".into()),
        ..audio.clone()
    };
    let direct = links.url(&blobs, &foreign).await.expect("link");
    assert!(direct.contains("X-Amz-Signature"), "{direct}");
}

#[tokio::test]
async fn stable_links_need_both_settings_and_a_long_secret() {
    let never = async || -> podflow_aws::SdkConfig { unreachable!("no AWS call") };
    assert!(
        configured_stable_links(BUCKET, None, None, never)
            .await
            .expect("none")
            .is_none()
    );
    let err = configured_stable_links(BUCKET, Some(BASE), None, never)
        .await
        .expect_err("half set")
        .to_string();
    assert!(err.contains("PODFLOW_LINK_SECRET"), "{err}");
    let err = configured_stable_links(BUCKET, Some(BASE), Some(&Secret::new("short")), never)
        .await
        .expect_err("short")
        .to_string();
    assert!(err.contains("shorter than 32 bytes"), "{err}");
    let err = configured_stable_links(
        BUCKET,
        Some("http://example.com"),
        Some(&Secret::new("s".repeat(40))),
        never,
    )
    .await
    .expect_err("plain http")
    .to_string();
    assert!(err.contains("https"), "{err}");
    let made = configured_stable_links(
        BUCKET,
        Some(BASE),
        Some(&Secret::new("s".repeat(40))),
        never,
    )
    .await
    .expect("made")
    .expect("some");
    assert_eq!(made.base_url, BASE);
}
