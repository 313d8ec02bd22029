//! The SDK configuration functions build from Lambda's environment sets only the region, the
//! credentials and the behaviour version; the clients must supply the rest (HTTPS client,
//! sleep, retries) themselves. Proven against moto: a signed request goes through.

use aws_config::Region;
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use podflow_aws::eventbridge::EventBridgePublisher;
use podflow_core::EventPublisher;
use podflow_events::EventEnvelope;
use podflow_fakes::moto::MotoServer;
use serde_json::json;

#[tokio::test]
async fn a_client_from_the_hand_built_config_sends_signed_requests() {
    let moto = MotoServer::start();
    let config = podflow_lambda::wiring::sdk_config_with(
        Region::new("us-east-1"),
        SharedCredentialsProvider::new(Credentials::new("testing", "testing", None, None, "test")),
    )
    // Lambda talks to the regional endpoints; here, to moto.
    .to_builder()
    .endpoint_url(&moto.url)
    .build();
    let event = EventEnvelope {
        version: "0".into(),
        id: "local-1".into(),
        detail_type: "EpisodeUploaded".into(),
        source: "podflow.ingest".into(),
        account: String::new(),
        time: "2026-12-02T10:00:00Z".into(),
        region: String::new(),
        resources: Vec::new(),
        detail: json!({"schema_version": "1.1", "episode_id": "ep-1"}),
    };
    EventBridgePublisher::new(&config, "default")
        .publish(&[event])
        .await
        .expect("moto's default bus takes the event");
}
