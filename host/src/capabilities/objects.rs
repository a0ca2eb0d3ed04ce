//! The `objects` capability: S3-compatible object storage (AWS S3, MinIO,
//! R2, Spaces, GCS) through aws-sdk-s3. Access and secret key are secret
//! handles resolved here; neither enters the guest, a log line or an error.
//! Path-style addressing, retries with backoff for throttling and 5xx, and
//! timeouts on every call; listing is paginated here.

use super::secrets::SecretHandle;
use super::{Capability, HostState};
use crate::runtime::bindings::storehost::plugin::objects::{
    Condition, Host, HostBucket, Object, ObjectInfo, PutRequest,
};
use crate::runtime::bindings::wit_types::HostError;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use std::time::Duration;
use wasmtime::component::Resource;

/// Attempts per call, the first included (throttling and 5xx are retried).
const MAX_ATTEMPTS: u32 = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One attempt; a whole call with its retries gets `CALL_TIMEOUT`.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
const CALL_TIMEOUT: Duration = Duration::from_secs(50);
/// Requests in flight at once for the calls that fan out (listing ETags,
/// reading many objects).
const CONCURRENT_REQUESTS: usize = 32;

/// An opened bucket.
pub struct Bucket {
    client: aws_sdk_s3::Client,
    name: String,
    region: String,
}

type Answer<T> = wasmtime::Result<Result<T, HostError>>;

impl Host for HostState {
    async fn open(
        &mut self,
        endpoint: String,
        bucket: String,
        region: String,
        access_key: Resource<SecretHandle>,
        secret_key: Resource<SecretHandle>,
    ) -> Answer<Resource<Bucket>> {
        if let Err(refused) = self.check_remote(Capability::Objects, &endpoint, "endpoint") {
            return Ok(Err(refused));
        }
        let keys = self
            .resolve_secret(&access_key)
            .and_then(|access| Ok((access, self.resolve_secret(&secret_key)?)));
        let (access, secret) = match keys {
            Ok(keys) => keys,
            Err(e) => return Ok(Err(e)),
        };
        let credentials =
            Credentials::new(access.expose(), secret.expose(), None, None, "storehost");
        let client = client(&endpoint, &region, credentials);
        Ok(Ok(self.table.push(Bucket {
            client,
            name: bucket,
            region,
        })?))
    }
}

fn client(endpoint: &str, region: &str, credentials: Credentials) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(credentials)
        .force_path_style(true)
        .http_client(http)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        )
        // S3-compatible servers (R2, GCS, older MinIO) reject the default
        // flexible checksums; send and check them only where required.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

impl HostBucket for HostState {
    async fn ensure(&mut self, bucket: Resource<Bucket>) -> Answer<()> {
        let bucket = self.table.get(&bucket)?;
        Ok(ensure(bucket).await)
    }

    async fn head(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Option<ObjectInfo>> {
        let bucket = self.table.get(&bucket)?;
        Ok(head(bucket.client.clone(), bucket.name.clone(), key).await)
    }

    async fn head_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<ObjectInfo>>> {
        let bucket = self.table.get(&bucket)?;
        Ok(head_many(bucket, keys).await)
    }

    async fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Answer<Option<Object>> {
        let bucket = self.table.get(&bucket)?;
        Ok(get(bucket.client.clone(), bucket.name.clone(), key).await)
    }

    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Answer<Vec<Option<Object>>> {
        let bucket = self.table.get(&bucket)?;
        Ok(get_many(bucket, keys).await)
    }

    async fn put(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        content: Vec<u8>,
        content_type: String,
        condition: Condition,
    ) -> Answer<ObjectInfo> {
        let bucket = self.table.get(&bucket)?;
        let request = PutRequest {
            key,
            content,
            content_type,
            condition,
        };
        Ok(put(bucket.client.clone(), bucket.name.clone(), request).await)
    }

    async fn put_many(
        &mut self,
        bucket: Resource<Bucket>,
        puts: Vec<PutRequest>,
    ) -> Answer<Vec<Result<ObjectInfo, HostError>>> {
        let bucket = self.table.get(&bucket)?;
        let (client, name) = (bucket.client.clone(), bucket.name.clone());
        let task = move |request| {
            let put = put(client.clone(), name.clone(), request);
            async move { Ok(put.await) }
        };
        Ok(fan_out(puts, task).await)
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        condition: Condition,
    ) -> Answer<()> {
        let bucket = self.table.get(&bucket)?;
        let mut request = bucket.client.delete_object().bucket(&bucket.name).key(&key);
        request = match condition {
            Condition::None => request,
            Condition::IfMatch(etag) => request.if_match(quoted(&etag)),
            Condition::IfAbsent => {
                return Ok(Err(HostError::Invalid(
                    "a delete cannot require the object to be absent".into(),
                )));
            }
        };
        Ok(request.send().await.map(drop).map_err(map_error))
    }

    async fn list(&mut self, bucket: Resource<Bucket>, prefix: String) -> Answer<Vec<ObjectInfo>> {
        let bucket = self.table.get(&bucket)?;
        Ok(list(bucket, &prefix).await)
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

async fn head(
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
) -> Result<Option<ObjectInfo>, HostError> {
    match client.head_object().bucket(bucket).key(&key).send().await {
        Ok(head) => Ok(Some(ObjectInfo {
            etag: etag(head.e_tag()),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            modified_ms: head.last_modified().and_then(millis),
            key,
        })),
        Err(e) => absent_is_none(map_error(e)),
    }
}

async fn put(
    client: aws_sdk_s3::Client,
    bucket: String,
    request: PutRequest,
) -> Result<ObjectInfo, HostError> {
    let size = request.content.len() as u64;
    let mut put = client
        .put_object()
        .bucket(bucket)
        .key(&request.key)
        .content_type(request.content_type)
        .body(ByteStream::from(request.content));
    put = match request.condition {
        Condition::None => put,
        Condition::IfMatch(etag) => put.if_match(quoted(&etag)),
        Condition::IfAbsent => put.if_none_match("*"),
    };
    let answer = put.send().await.map_err(map_error)?;
    Ok(ObjectInfo {
        etag: etag(answer.e_tag()),
        size,
        modified_ms: None,
        key: request.key,
    })
}

async fn get(
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
) -> Result<Option<Object>, HostError> {
    let answer = client.get_object().bucket(bucket).key(&key).send().await;
    let output = match answer {
        Ok(output) => output,
        Err(e) => return absent_is_none(map_error(e)),
    };
    let info = ObjectInfo {
        etag: etag(output.e_tag()),
        size: output.content_length().unwrap_or(0).max(0) as u64,
        modified_ms: output.last_modified().and_then(millis),
        key,
    };
    match output.body.collect().await {
        Ok(body) => Ok(Some(Object {
            info,
            content: body.into_bytes().to_vec(),
        })),
        Err(e) => Err(HostError::Unavailable(format!(
            "reading an object failed: {e}"
        ))),
    }
}

async fn head_many(
    bucket: &Bucket,
    keys: Vec<String>,
) -> Result<Vec<Option<ObjectInfo>>, HostError> {
    let (client, name) = (bucket.client.clone(), bucket.name.clone());
    fan_out(keys, move |key| head(client.clone(), name.clone(), key)).await
}

async fn get_many(bucket: &Bucket, keys: Vec<String>) -> Result<Vec<Option<Object>>, HostError> {
    let (client, name) = (bucket.client.clone(), bucket.name.clone());
    fan_out(keys, move |key| get(client.clone(), name.clone(), key)).await
}

/// Runs `task` on every item, `CONCURRENT_REQUESTS` at a time; the answers
/// keep the items' order, and the first error wins.
async fn fan_out<I, T, F, Fut>(items: Vec<I>, task: F) -> Result<Vec<T>, HostError>
where
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = Result<T, HostError>> + Send + 'static,
    T: Send + 'static,
{
    let mut answers: Vec<Option<T>> = Vec::with_capacity(items.len());
    answers.resize_with(items.len(), || None);
    let mut running = tokio::task::JoinSet::new();
    let mut store = |done: Result<(usize, Result<T, HostError>), tokio::task::JoinError>| {
        let (index, answer) =
            done.map_err(|e| HostError::Internal(format!("a request task failed: {e}")))?;
        answers[index] = Some(answer?);
        Ok::<_, HostError>(())
    };
    for (index, item) in items.into_iter().enumerate() {
        if running.len() >= CONCURRENT_REQUESTS
            && let Some(done) = running.join_next().await
        {
            store(done)?;
        }
        let future = task(item);
        running.spawn(async move { (index, future.await) });
    }
    while let Some(done) = running.join_next().await {
        store(done)?;
    }
    Ok(answers.into_iter().flatten().collect())
}

/// Creates the bucket unless it is there; a bucket someone else owns is
/// `denied`.
async fn ensure(bucket: &Bucket) -> Result<(), HostError> {
    let exists = bucket
        .client
        .head_bucket()
        .bucket(&bucket.name)
        .send()
        .await;
    match exists.map_err(map_error) {
        Ok(_) => return Ok(()),
        Err(HostError::NotFound(_)) => {}
        Err(other) => return Err(other),
    }
    let mut create = bucket.client.create_bucket().bucket(&bucket.name);
    if bucket.region != "us-east-1" {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(bucket.region.as_str()))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
        // Another instance created it a moment ago (some servers answer
        // this even to the owner): fine if these keys can use it.
        Err(e) if e.code() == Some("BucketAlreadyExists") => {
            match bucket
                .client
                .head_bucket()
                .bucket(&bucket.name)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(_) => Err(map_error(e)),
            }
        }
        Err(e) => Err(map_error(e)),
    }
}

async fn list(bucket: &Bucket, prefix: &str) -> Result<Vec<ObjectInfo>, HostError> {
    let mut pages = bucket
        .client
        .list_objects_v2()
        .bucket(&bucket.name)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut objects = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(map_error)?;
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            objects.push(ObjectInfo {
                key: key.to_string(),
                etag: etag(object.e_tag()),
                size: object.size().unwrap_or(0).max(0) as u64,
                modified_ms: object.last_modified().and_then(millis),
            });
        }
    }
    fill_missing_etags(bucket, &mut objects).await?;
    Ok(objects)
}

/// Some servers (s3s-fs among them) list objects without ETags; ask for
/// those one by one, a few at a time, so versions are always there.
async fn fill_missing_etags(bucket: &Bucket, objects: &mut [ObjectInfo]) -> Result<(), HostError> {
    let missing: Vec<usize> = (0..objects.len())
        .filter(|&i| objects[i].etag.is_empty())
        .collect();
    let keys: Vec<String> = missing.iter().map(|&i| objects[i].key.clone()).collect();
    // Deleted since the listing: left without an ETag; the next look tells.
    let heads = head_many(bucket, keys).await?;
    let etags = heads
        .into_iter()
        .map(|head| head.map(|info| info.etag).unwrap_or_default());
    for (index, etag) in missing.into_iter().zip(etags) {
        objects[index].etag = etag;
    }
    Ok(())
}

/// ETags without their quotes (how versions are compared and stored).
fn etag(raw: Option<&str>) -> String {
    raw.unwrap_or_default().trim_matches('"').to_string()
}

fn quoted(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

fn millis(time: &aws_sdk_s3::primitives::DateTime) -> Option<i64> {
    time.to_millis().ok()
}

fn absent_is_none<T>(error: HostError) -> Result<Option<T>, HostError> {
    match error {
        HostError::NotFound(_) => Ok(None),
        other => Err(other),
    }
}

/// An error and its causes, by their messages only: the SDK's context
/// display ends with its whole Debug form, raw response included.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Maps SDK errors onto the contract. Service errors carry the server's
/// code and message; transport errors their cause. Neither holds a key.
pub fn map_error<E>(error: SdkError<E, HttpResponse>) -> HostError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let code = error.code().unwrap_or_default().to_string();
    let message = error.message().unwrap_or_default().to_string();
    let said = |what: &str| {
        let detail = [code.as_str(), message.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        if detail.is_empty() {
            format!("{what} (HTTP {})", status.unwrap_or_default())
        } else {
            format!("{what}: {detail}")
        }
    };
    match &error {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => match (status, code.as_str()) {
            (Some(412), _) | (Some(409), "ConditionalRequestConflict") => {
                HostError::Conflict(said("precondition failed"))
            }
            (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied")
            | (Some(401 | 403), _) => {
                HostError::Denied(said("the object storage refused the keys"))
            }
            (Some(404), _) | (_, "NoSuchKey" | "NoSuchBucket" | "NotFound") => {
                HostError::NotFound(said("not found"))
            }
            (Some(429 | 500..=599), _) | (_, "SlowDown") => {
                HostError::Unavailable(said("the object storage is unavailable"))
            }
            // A success whose body the client could not parse (a listing
            // holding a key with a character XML 1.0 cannot carry).
            (Some(200..=299), _) => HostError::Invalid(format!(
                "the object storage's answer could not be read (HTTP {}): {}",
                status.unwrap_or_default(),
                causes(&error)
            )),
            _ => HostError::Invalid(said("the object storage refused the request")),
        },
        SdkError::TimeoutError(_) => {
            HostError::Unavailable("the object storage did not answer in time".into())
        }
        SdkError::DispatchFailure(failure) => {
            let cause = DisplayErrorContext(&error).to_string();
            if failure.is_timeout() {
                HostError::Unavailable("the object storage did not answer in time".into())
            } else if cause.contains("certificate") || cause.contains("tls") {
                HostError::Unavailable(format!("TLS with the object storage failed: {cause}"))
            } else {
                HostError::Unavailable(format!("object storage unreachable: {cause}"))
            }
        }
        _ => HostError::Internal(format!(
            "object storage request failed: {}",
            DisplayErrorContext(&error)
        )),
    }
}
