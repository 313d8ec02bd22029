//! moto server (`pip install 'moto[server]'`; `scripts/setup.sh --tests` installs it) on a
//! free loopback port, for tests of the AWS adapters. Stopped when dropped.

use std::{
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:<port>`: the endpoint URL for every AWS client.
    pub url: String,
}

/// An SDK config for a client of a local emulator or fake at `endpoint` (moto, or a fake of
/// a service moto lacks): fixed region and test credentials, nothing read from the machine.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "podflow-test",
        ))
        .load()
        .await
}

/// An empty bucket named `name`.
pub async fn create_bucket(config: &aws_config::SdkConfig, name: &str) {
    aws_sdk_s3::Client::new(config)
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("bucket {name}: {e}"));
}

/// The episode table as `infra/template.yaml` declares it (`pk`/`sk` strings, on demand).
pub async fn create_episode_table(config: &aws_config::SdkConfig, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("the episode table");
}

impl MotoServer {
    /// [`sdk_config`] for this server.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(&self.url).await
    }

    /// Starts a server and waits until it accepts connections (panics after 30 s: a test
    /// cannot run without it).
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // podflow's Python environment first (scripts/setup.sh --tests), else the PATH.
        let program = podflow_core::cache::python_env_program("moto_server")
            .unwrap_or_else(|| "moto_server".into());
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (scripts/setup.sh --tests installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
