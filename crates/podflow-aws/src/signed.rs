//! SigV4-signed HTTPS calls to the AWS APIs podflow uses one operation of (MediaConvert
//! CreateJob, SSM GetParameter, Secrets Manager GetSecretValue, SNS Publish).
//!
//! Written here rather than taken from the `aws-sdk-*` crates: each of those clients carries
//! serialisers and parsers for its whole API (MediaConvert's alone is 1.1 MiB of code,
//! measured), and they would put the notifier function over its 10 MB budget, while podflow
//! sends one request shape per service and reads one or two fields back. Signing is
//! `aws-sigv4`'s, the code the SDK clients sign with; credentials, region and endpoint come
//! from the same `SdkConfig` the SDK clients use.

use std::{fmt, time::Duration, time::SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SigningSettings, sign},
    sign::v4,
};
use serde_json::Value;

use podflow_core::ErrorKind;

use crate::failure_kind;

/// A failed call, in words, with how to treat it.
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    pub kind: ErrorKind,
    /// The AWS error code (`ParameterNotFound`, `NotFound`…), when the service answered one.
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code.as_deref().unwrap_or("no error code");
        write!(f, "{code} ({})", self.message)
    }
}

impl CallError {
    fn unanswered(message: String) -> Self {
        Self {
            kind: ErrorKind::Transient,
            code: None,
            message,
        }
    }
}

/// One AWS account's HTTPS client: region, credentials and endpoint from an `SdkConfig`.
pub(crate) struct SignedHttp {
    http: reqwest::Client,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    /// The configuration's endpoint URL (an emulator's), used for every service.
    endpoint_url: Option<String>,
}

impl SignedHttp {
    pub fn new(config: &SdkConfig) -> Self {
        // reqwest is built without a default crypto provider (to share the AWS SDK's).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            region: config
                .region()
                .map_or_else(|| "us-east-1".to_owned(), ToString::to_string),
            credentials: config.credentials_provider(),
            endpoint_url: config
                .endpoint_url()
                .map(|url| url.trim_end_matches('/').to_owned()),
        }
    }

    /// `https://<service>.<region>.amazonaws.com`, or the configured endpoint.
    pub fn endpoint(&self, service: &str) -> String {
        self.endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://{service}.{}.amazonaws.com", self.region))
    }

    /// POSTs `body` to `url`, signed for `service`; the answer's status, error-type header
    /// and body. Fails only when no answer came.
    async fn post(
        &self,
        service: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Result<(u16, Option<String>, String), CallError> {
        let signed = self
            .signed_headers(service, url, headers, body.as_bytes())
            .await
            .map_err(CallError::unanswered)?;
        let mut request = self.http.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request
            .body(body)
            .send()
            .await
            // No answer: a network problem or a timeout. (The URL is left out: errors reach
            // logs and dead-letter queues, and are worded without endpoints everywhere.)
            .map_err(|e| {
                CallError::unanswered(format!(
                    "no answer ({})",
                    podflow_core::report(&e.without_url())
                ))
            })?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| {
            CallError::unanswered(format!(
                "the answer was cut off ({})",
                podflow_core::report(&e.without_url())
            ))
        })?;
        Ok((status, error_type, text))
    }

    /// A JSON API call (REST-JSON or awsJson1.1): the answer's JSON, or the error it names.
    pub async fn post_json(
        &self,
        service: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value, CallError> {
        let (status, error_type, text) = self.post(service, url, headers, body.to_string()).await?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        let code = json_error_code(error_type.as_deref(), &answer);
        let message = answer["message"]
            .as_str()
            .or_else(|| answer["Message"].as_str())
            .map_or_else(|| format!("HTTP {status}"), str::to_owned);
        Err(CallError {
            kind: failure_kind(code.as_deref(), Some(status)),
            code,
            message,
        })
    }

    /// An awsJson1.1 operation (`X-Amz-Target: <target>`) at the service's endpoint.
    pub async fn json_rpc(
        &self,
        service: &str,
        target: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        let url = format!("{}/", self.endpoint(service));
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        self.post_json(service, &url, &headers, body).await
    }

    /// An AWS Query protocol action (form-encoded parameters, XML answer) at the service's
    /// endpoint: the answer's XML, or the error it names.
    pub async fn query(&self, service: &str, params: &[(&str, &str)]) -> Result<String, CallError> {
        let url = format!("{}/", self.endpoint(service));
        let body = serde_urlencoded::to_string(params).map_err(|e| CallError {
            kind: ErrorKind::Input,
            code: None,
            message: format!("cannot encode the request: {e}"),
        })?;
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let (status, _, xml) = self.post(service, &url, &headers, body).await?;
        if (200..300).contains(&status) {
            return Ok(xml);
        }
        let code = xml_text(&xml, "Code");
        Err(CallError {
            kind: failure_kind(code.as_deref(), Some(status)),
            message: xml_text(&xml, "Message").unwrap_or_else(|| format!("HTTP {status}")),
            code,
        })
    }

    /// The SigV4 headers for a POST of `body` to `url`.
    async fn signed_headers(
        &self,
        service: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or("no AWS credentials are configured")?;
        let identity = provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials: {e}"))?
            .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("signing: {e}"))?
            .into();
        let request = SignableRequest::new(
            "POST",
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("signing: {e}"))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| format!("signing: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

/// The error's code as the JSON protocols carry it: the `x-amzn-errortype` header
/// (`Code:namespace…`) or the body's `__type` (`namespace#Code`).
fn json_error_code(header: Option<&str>, body: &Value) -> Option<String> {
    let raw = header.or_else(|| body["__type"].as_str())?;
    let code = raw.rsplit('#').next().unwrap_or(raw);
    Some(code.split(':').next().unwrap_or(code).to_owned())
}

/// The text of the first `<tag>` element in an XML answer.
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let mut doc = aws_smithy_xml::decode::Document::new(xml);
    while let Some(element) = doc.next_start_element() {
        if element.local() == tag {
            let mut scoped = doc.scoped_to(element);
            return aws_smithy_xml::decode::try_data(&mut scoped)
                .ok()
                .map(|text| text.into_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_error_codes_are_read_from_the_header_or_the_body() {
        assert_eq!(
            json_error_code(
                Some("TooManyRequestsException:http://internal.amazon.com/coral/"),
                &Value::Null
            )
            .as_deref(),
            Some("TooManyRequestsException")
        );
        let body = json!({"__type": "com.amazonaws.mediaconvert#BadRequestException"});
        assert_eq!(
            json_error_code(None, &body).as_deref(),
            Some("BadRequestException")
        );
        assert_eq!(json_error_code(None, &Value::Null), None);
    }

    #[test]
    fn endpoints_are_the_regional_ones_unless_the_configuration_names_one() {
        let aws = SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .build();
        assert_eq!(
            SignedHttp::new(&aws).endpoint("sns"),
            "https://sns.eu-west-1.amazonaws.com"
        );
        let emulator = SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:5000/")
            .build();
        assert_eq!(
            SignedHttp::new(&emulator).endpoint("ssm"),
            "http://127.0.0.1:5000"
        );
    }

    #[test]
    fn query_errors_are_read_from_the_xml_answer() {
        // SNS's answer to a Publish to a missing topic.
        let xml = r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist &amp; never did</Message></Error>
  <RequestId>9dd01905-5012-5f99-8663-4b3ecd0dfaef</RequestId>
</ErrorResponse>"#;
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("NotFound"));
        assert_eq!(
            xml_text(xml, "Message").as_deref(),
            Some("Topic does not exist & never did")
        );
        assert_eq!(xml_text(xml, "MessageId"), None);
        assert_eq!(xml_text("not xml at all", "Code"), None);
    }
}
