//! A lake in S3 (`s3://BUCKET/PREFIX`): the same layout as a local lake, its files written
//! with one `PutObject` each (S3 replaces an object whole, so a file written again under its
//! name replaces the old one and no reader sees half of it), through `object_store`, the
//! client DataFusion reads with.
//!
//! Credentials and region come from the environment as for the AWS CLI: `AWS_ACCESS_KEY_ID`
//! and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), an ECS task role
//! (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`), web identity, or the instance's role;
//! `AWS_REGION` or `AWS_DEFAULT_REGION`; `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_S3`) for an
//! S3-compatible server.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::LakeError;

/// Bytes read from the end of a Parquet object for its footer, at first.
const FOOTER_GUESS: u64 = 64 * 1024;

/// The Parquet footer (metadata) of the object at `location` in `store`, `size` bytes long,
/// read from its end: one ranged GET, two when the footer is longer than [`FOOTER_GUESS`].
/// The outer error is the store's; the inner, what is wrong with the file.
pub(crate) async fn read_footer(
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    size: u64,
) -> object_store::Result<
    Result<
        datafusion::parquet::file::metadata::ParquetMetaData,
        datafusion::parquet::errors::ParquetError,
    >,
> {
    use datafusion::parquet::errors::ParquetError;
    use datafusion::parquet::file::metadata::ParquetMetaDataReader;
    let mut want = FOOTER_GUESS.min(size);
    for _ in 0..2 {
        let tail = store.get_range(&location, size - want..size).await?;
        let mut reader = ParquetMetaDataReader::new();
        match reader.try_parse_sized(&tail, size) {
            Ok(()) => return Ok(reader.finish()),
            Err(ParquetError::NeedMoreData(needed)) if (needed as u64) > want => {
                want = (needed as u64).min(size);
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Err(ParquetError::General(
        "the footer is longer than it says".into(),
    )))
}

/// An object of a lake in S3, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its path under the lake (`/`-separated).
    pub relative: String,
    pub size: u64,
    /// Its entity tag (an object written again with other bytes has another one); the
    /// second it was written when the server gives no tag. (Listings give times to the
    /// millisecond and HEAD to the second: the time is not compared where a tag is.)
    pub version: String,
}

fn version_of(meta: &object_store::ObjectMeta) -> String {
    match &meta.e_tag {
        Some(tag) => tag.trim_matches('"').to_string(),
        None => meta.last_modified.timestamp().to_string(),
    }
}

/// A lake in an S3 bucket, under a prefix.
#[derive(Debug)]
pub struct S3Lake {
    bucket: String,
    prefix: String,
    store: Arc<dyn ObjectStore>,
    /// Writes are made from threads that are not a runtime's (the lake writer's, the
    /// daemon's): they hand each request to this runtime (made at the first write) and wait.
    runtime: std::sync::OnceLock<tokio::runtime::Runtime>,
}

impl Drop for S3Lake {
    fn drop(&mut self) {
        // Dropped from async code (a hunt) or not: never blocks.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `s3://BUCKET[/PREFIX]` as (bucket, prefix without slashes at its ends), or why not.
pub fn parse_url(url: &str) -> Result<(String, String), LakeError> {
    let bad = |why: &str| LakeError::BadLocation(format!("{url:?}: {why}"));
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("give s3://BUCKET/PREFIX or a directory"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(bad("not an S3 bucket name"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|part| part == "." || part == "..") {
        return Err(bad("the prefix may not hold `.` or `..`"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

impl S3Lake {
    /// The lake at `url` (`s3://BUCKET/PREFIX`), with credentials from the environment.
    pub fn connect(url: &str) -> Result<Self, LakeError> {
        let (bucket, prefix) = parse_url(url)?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap_or_default();
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        let store = builder.build().map_err(|source| LakeError::S3 {
            url: url.to_string(),
            source,
        })?;
        Ok(Self {
            bucket,
            prefix,
            store: Arc::new(store),
            runtime: std::sync::OnceLock::new(),
        })
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// `s3://BUCKET`, the URL DataFusion knows the store by.
    pub fn bucket_url(&self) -> String {
        format!("s3://{}", self.bucket)
    }

    /// The key of `relative` (a path under the lake, `/`-separated) in the bucket.
    pub fn key(&self, relative: &str) -> ObjectPath {
        let relative = relative.trim_matches('/');
        if self.prefix.is_empty() {
            ObjectPath::from(relative)
        } else {
            ObjectPath::from(format!("{}/{relative}", self.prefix))
        }
    }

    /// The client, for DataFusion.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Puts `bytes` at `relative` under the lake, replacing what is there; returns once S3
    /// has it.
    pub fn put(&self, relative: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        let key = self.key(relative);
        let store = self.store.clone();
        let target = key.clone();
        self.block(&key, async move {
            store
                .put(&target, PutPayload::from(bytes))
                .await
                .map(|_| ())
        })
    }

    /// Runs `work` (a request about `key`) on the lake's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        key: &ObjectPath,
        work: impl std::future::Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T, LakeError> {
        let (done, result) = std::sync::mpsc::channel();
        self.runtime()?.spawn(async move {
            let _ = done.send(work.await);
        });
        match result.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(LakeError::S3 {
                url: format!("s3://{}/{key}", self.bucket),
                source,
            }),
            Err(_) => Err(LakeError::BadLocation(format!(
                "s3://{}/{key}: the request was dropped",
                self.bucket
            ))),
        }
    }

    /// `key`'s path under the lake (`/`-separated), or `None` for a key outside it.
    fn relative_of(&self, key: &ObjectPath) -> Option<String> {
        let key = key.as_ref();
        if self.prefix.is_empty() {
            return Some(key.to_string());
        }
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix('/')
            .map(String::from)
    }

    /// Every object under `relative` (a directory of the lake), at any depth.
    pub fn list(&self, relative: &str) -> Result<Vec<Listed>, LakeError> {
        use futures::TryStreamExt;
        let prefix = self.key(relative);
        let store = self.store.clone();
        let listing = prefix.clone();
        let objects: Vec<object_store::ObjectMeta> = self.block(&prefix, async move {
            store.list(Some(&listing)).try_collect().await
        })?;
        let mut listed: Vec<Listed> = objects
            .into_iter()
            .filter_map(|meta| {
                Some(Listed {
                    relative: self.relative_of(&meta.location)?,
                    size: meta.size,
                    version: version_of(&meta),
                })
            })
            .collect();
        listed.sort_by(|a, b| a.relative.cmp(&b.relative));
        Ok(listed)
    }

    /// The names of the folders directly under `relative` (a directory of the lake).
    pub fn folders(&self, relative: &str) -> Result<Vec<String>, LakeError> {
        let prefix = self.key(relative);
        let store = self.store.clone();
        let listing = prefix.clone();
        let listed = self.block(&prefix, async move {
            store.list_with_delimiter(Some(&listing)).await
        })?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(String::from))
            .collect())
    }

    /// The object at `relative`, whole.
    pub fn get(&self, relative: &str) -> Result<bytes::Bytes, LakeError> {
        let key = self.key(relative);
        let store = self.store.clone();
        let target = key.clone();
        self.block(&key, async move { store.get(&target).await?.bytes().await })
    }

    /// The last `n` bytes of the object at `relative`, `size` bytes long.
    pub fn get_tail(&self, relative: &str, size: u64, n: u64) -> Result<bytes::Bytes, LakeError> {
        let key = self.key(relative);
        let store = self.store.clone();
        let target = key.clone();
        let start = size.saturating_sub(n);
        self.block(
            &key,
            async move { store.get_range(&target, start..size).await },
        )
    }

    /// The Parquet footer (metadata) of `file`, read from the object's end ([`read_footer`]).
    pub fn footer(
        &self,
        file: &Listed,
    ) -> Result<datafusion::parquet::file::metadata::ParquetMetaData, LakeError> {
        let key = self.key(&file.relative);
        let footer = self.block(
            &key,
            read_footer(self.store.clone(), key.clone(), file.size),
        )?;
        footer.map_err(|source| LakeError::Parquet {
            path: format!("{}/{}", self.url(), file.relative).into(),
            source,
        })
    }

    /// The object at `relative` as it is now, or `None` when there is none.
    pub fn head(&self, relative: &str) -> Result<Option<Listed>, LakeError> {
        let key = self.key(relative);
        let store = self.store.clone();
        let target = key.clone();
        let found = self.block(&key, async move {
            match store.head(&target).await {
                Ok(meta) => Ok(Some(meta)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        Ok(found.map(|meta| Listed {
            relative: relative.to_string(),
            size: meta.size,
            version: version_of(&meta),
        }))
    }

    /// Deletes the object at `relative` (none there is no error).
    pub fn delete(&self, relative: &str) -> Result<(), LakeError> {
        let key = self.key(relative);
        let store = self.store.clone();
        let target = key.clone();
        self.block(&key, async move {
            match store.delete(&target).await {
                Err(object_store::Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
    }

    /// Whether anything is stored under `relative` (a directory of the lake).
    pub async fn holds(&self, relative: &str) -> Result<bool, LakeError> {
        use futures::StreamExt;
        let prefix = self.key(relative);
        match self.store.list(Some(&prefix)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(source)) => Err(LakeError::S3 {
                url: self.url(),
                source,
            }),
        }
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, LakeError> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("trailhound-lake-s3")
            .enable_all()
            .build()
            .map_err(|source| LakeError::Io {
                path: self.url().into(),
                source,
            })?;
        // Another thread may have made one meanwhile: theirs is kept, this one let go.
        if let Err(spare) = self.runtime.set(runtime) {
            spare.shutdown_background();
        }
        self.runtime.get().ok_or_else(|| {
            LakeError::BadLocation(format!("{}: no runtime for the uploads", self.url()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_urls_name_a_bucket_and_a_clean_prefix() {
        assert_eq!(
            parse_url("s3://my-lake/trailhound/").unwrap(),
            ("my-lake".into(), "trailhound".into())
        );
        assert_eq!(
            parse_url("s3://my.lake").unwrap(),
            ("my.lake".into(), String::new())
        );
        for bad in [
            "s3://",
            "s3://ab/x",
            "s3://My_Bucket/x",
            "s3://lake/a/../b",
            "gs://lake/x",
            "/tmp/lake",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
