//! The task generator: purge requests (a JSON body, or a bulk body read line by line) become
//! validated, normalised, de-duplicated tasks, checked against the token's hosts as they come.
//!
//! Targets are normalised with [`normalize_task_owned`] (`edgepurge-purge-model`, which the edge uses
//! too), so control stores exactly the keys the edge stores and purges (scheme-independent
//! `http://` URLs, ARCHITECTURE invariant 6).

use edgepurge_control_store::ApiToken;
use edgepurge_purge_model::{normalize_task_owned, PurgeError};
use edgepurge_sdk::{Task, TaskKind};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use crate::auth::host_allowed;
use crate::config::LimitsSection;
use crate::Error;

/// The JSON body of `POST /v1/purges`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurgeRequest {
    /// Absolute http(s) URLs to purge.
    pub urls: Vec<String>,
    /// URL prefixes (directory purges) to purge.
    pub prefixes: Vec<String>,
    /// Tags to purge (admin only: tags are not scoped to a host at the edge).
    pub tags: Vec<String>,
    /// Hosts to purge entirely.
    pub hosts: Vec<String>,
    /// Purge everything (admin only).
    pub everything: bool,
    /// Soft purge: mark stale instead of removing.
    pub soft: bool,
    /// After purging each of `urls`, fetch it into the cache again (a warm task on the same queue).
    pub warm: bool,
}

/// Builds one batch's tasks, enforcing the limits and the token's scope on every item.
pub struct TaskBuilder<'a> {
    token: &'a ApiToken,
    limits: LimitsSection,
    soft: bool,
    tasks: Vec<Task>,
}

impl<'a> TaskBuilder<'a> {
    /// An empty batch for `token`; `soft` applies to every task.
    pub fn new(token: &'a ApiToken, limits: LimitsSection, soft: bool) -> Self {
        TaskBuilder { token, limits, soft, tasks: Vec::new() }
    }

    /// Adds one target; `item` names it in errors (`urls[3]`, `line 17`).
    pub fn add(&mut self, kind: TaskKind, target: &str, item: &dyn std::fmt::Display) -> Result<(), Error> {
        if self.tasks.len() >= self.limits.max_urls {
            return Err(Error::Invalid(format!(
                "{item}: more than {} targets in one batch (max-urls); split the batch",
                self.limits.max_urls
            )));
        }
        if target.len() > self.limits.max_url_bytes {
            return Err(Error::Invalid(format!(
                "{item}: {} bytes is longer than the limit of {} bytes (max-url-bytes)",
                target.len(),
                self.limits.max_url_bytes
            )));
        }
        if matches!(kind, TaskKind::Tag | TaskKind::Everything) && !self.token.admin {
            // Tags are matched across every host at the edge, so a tenant's tag purge could reach
            // another tenant's objects; until tags are namespaced per host they need admin.
            let what = if kind == TaskKind::Tag { "a tag purge" } else { "`everything`" };
            return Err(Error::Forbidden(format!("{item}: {what} needs an admin token")));
        }
        let raw = Task {
            id: self.tasks.len() as u64,
            kind,
            target: target.to_owned(),
            soft: self.soft,
            tenant: self.token.name.clone(),
            ..Task::default()
        };
        let mut task = normalize_task_owned(raw).map_err(|e| match e {
            PurgeError::InvalidTarget { reason, .. } => Error::Invalid(format!("{item}: `{}`: {reason}", cut(target))),
        })?;
        if !task.host.is_empty() && !self.token.admin && !host_allowed(&self.token.hosts, &task.host) {
            return Err(Error::Forbidden(format!(
                "{item}: host `{}` is outside this token's hosts ({})",
                task.host,
                self.token.hosts.join(", ")
            )));
        }
        // Roughly what a postcard frame of the task costs (as `NewTask::new` estimates).
        task.size_bytes = task.target.len() as u64 + 16;
        self.tasks.push(task);
        Ok(())
    }

    /// Adds everything a JSON request asks for, in the order urls, prefixes, tags, hosts,
    /// everything, then the warm tasks (after every purge, so each follows its URL's purge).
    pub fn add_request(&mut self, req: &PurgeRequest) -> Result<(), Error> {
        let lists = [("urls", TaskKind::Url, &req.urls), ("prefixes", TaskKind::Prefix, &req.prefixes)];
        let more = [("tags", TaskKind::Tag, &req.tags), ("hosts", TaskKind::Host, &req.hosts)];
        for (name, kind, list) in lists.into_iter().chain(more) {
            for (i, target) in list.iter().enumerate() {
                self.add(kind, target, &format_args!("{name}[{i}]"))?;
            }
        }
        if req.everything {
            self.add(TaskKind::Everything, "", &"everything")?;
        }
        if req.warm {
            for (i, target) in req.urls.iter().enumerate() {
                self.add(TaskKind::Warm, target, &format_args!("urls[{i}] (warm)"))?;
            }
        }
        Ok(())
    }

    /// The tasks with duplicates (same kind and normalised target) collapsed, first kept.
    pub fn finish(mut self) -> Result<Vec<Task>, Error> {
        if self.tasks.is_empty() {
            return Err(Error::Invalid("the batch is empty: give at least one URL, prefix, tag or host".into()));
        }
        let keep: Vec<bool> = {
            let mut seen: ahash::HashSet<(TaskKind, &str)> =
                ahash::HashSet::with_capacity_and_hasher(self.tasks.len(), ahash::RandomState::new());
            self.tasks.iter().map(|t| seen.insert((t.kind, t.target.as_str()))).collect()
        };
        let mut keep = keep.into_iter();
        self.tasks.retain(|_| keep.next().unwrap_or(true));
        for (i, t) in self.tasks.iter_mut().enumerate() {
            t.id = i as u64;
        }
        Ok(self.tasks)
    }
}

/// The format of a bulk body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkFormat {
    /// `application/x-ndjson`: a JSON string or `{"url": "…"}` per line.
    NdJson,
    /// `text/plain`: one URL per line.
    Text,
}

/// One NDJSON line.
#[derive(Deserialize)]
#[serde(untagged)]
enum NdLine {
    Url(String),
    Object { url: String },
}

/// Reads a bulk body as a stream, one line at a time (never the whole body in one buffer), and
/// adds each URL. Blank lines are skipped; a line ending in `\r\n` is accepted.
pub async fn read_bulk<S, E>(
    body: S,
    format: BulkFormat,
    max_bytes: u64,
    builder: &mut TaskBuilder<'_>,
) -> Result<(), Error>
where
    S: Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    // A line may hold a URL plus JSON quoting and escapes.
    let max_line = builder.limits.max_url_bytes * 2 + 64;
    let mut body = std::pin::pin!(body);
    let mut partial: Vec<u8> = Vec::new();
    let (mut total, mut line_no) = (0u64, 0usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Invalid(format!("the request body could not be read: {e}")))?;
        total += chunk.len() as u64;
        if total > max_bytes {
            return Err(Error::TooLarge(format!(
                "the body is larger than {max_bytes} bytes (max-bulk-bytes); split it into several batches"
            )));
        }
        let mut rest = &chunk[..];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            line_no += 1;
            if partial.is_empty() {
                bulk_line(&rest[..nl], line_no, format, builder)?;
            } else {
                partial.extend_from_slice(&rest[..nl]);
                bulk_line(&partial, line_no, format, builder)?;
                partial.clear();
            }
            rest = &rest[nl + 1..];
        }
        partial.extend_from_slice(rest);
        if partial.len() > max_line {
            return Err(Error::Invalid(format!("line {}: longer than {max_line} bytes", line_no + 1)));
        }
    }
    if !partial.is_empty() {
        bulk_line(&partial, line_no + 1, format, builder)?;
    }
    Ok(())
}

fn bulk_line(line: &[u8], n: usize, format: BulkFormat, builder: &mut TaskBuilder<'_>) -> Result<(), Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > builder.limits.max_url_bytes * 2 + 64 {
        return Err(Error::Invalid(format!("line {n}: longer than the URL limit allows (max-url-bytes)")));
    }
    let text = std::str::from_utf8(line).map_err(|_| Error::Invalid(format!("line {n}: not valid UTF-8")))?;
    if text.trim().is_empty() {
        return Ok(());
    }
    let item = format_args!("line {n}");
    match format {
        BulkFormat::Text => builder.add(TaskKind::Url, text, &item),
        BulkFormat::NdJson => match serde_json::from_str::<NdLine>(text) {
            Ok(NdLine::Url(url) | NdLine::Object { url }) => builder.add(TaskKind::Url, &url, &item),
            Err(e) => Err(Error::Invalid(format!("line {n}: expected a JSON string or {{\"url\": \"…\"}}: {e}"))),
        },
    }
}

/// At most 200 characters of `s`, for error messages.
fn cut(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(admin: bool) -> ApiToken {
        ApiToken { name: "t".into(), hosts: vec!["a.com".into(), "*.b.com".into()], admin, created_at: 0 }
    }

    async fn bulk(body: &[&[u8]], format: BulkFormat, t: &ApiToken) -> Result<Vec<Task>, Error> {
        let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> =
            body.iter().map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        let mut b = TaskBuilder::new(t, LimitsSection::default(), false);
        read_bulk(futures_util::stream::iter(chunks), format, 1 << 20, &mut b).await?;
        b.finish()
    }

    #[test]
    fn json_request_is_normalised_and_deduplicated() {
        let t = token(false);
        let mut b = TaskBuilder::new(&t, LimitsSection::default(), true);
        let req = PurgeRequest {
            urls: vec!["HTTPS://A.com:443/x#f".into(), "http://a.com/x".into(), "http://x.b.com/y".into()],
            prefixes: vec!["https://a.com/img/".into()],
            hosts: vec!["A.COM".into()],
            warm: true,
            ..Default::default()
        };
        b.add_request(&req).unwrap();
        let tasks = b.finish().unwrap();
        let got: Vec<_> = tasks.iter().map(|t| (t.kind, t.target.as_str(), t.host.as_str())).collect();
        assert_eq!(
            got,
            [
                (TaskKind::Url, "http://a.com/x", "a.com"),
                (TaskKind::Url, "http://x.b.com/y", "x.b.com"),
                (TaskKind::Prefix, "http://a.com/img/", "a.com"),
                (TaskKind::Host, "a.com", "a.com"),
                (TaskKind::Warm, "http://a.com/x", "a.com"),
                (TaskKind::Warm, "http://x.b.com/y", "x.b.com"),
            ]
        );
        assert!(tasks.iter().all(|t| t.soft && t.tenant == "t"));
        assert_eq!(tasks.iter().map(|t| t.id).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn scope_and_validation_errors_name_the_item() {
        let t = token(false);
        let run = |req: PurgeRequest| {
            let mut b = TaskBuilder::new(&t, LimitsSection::default(), false);
            b.add_request(&req).and_then(|_| b.finish()).unwrap_err()
        };
        let e = run(PurgeRequest { urls: vec!["http://a.com/".into(), "http://c.com/".into()], ..Default::default() });
        assert!(matches!(&e, Error::Forbidden(m) if m.contains("urls[1]") && m.contains("c.com")), "{e}");
        let e = run(PurgeRequest { everything: true, ..Default::default() });
        assert!(matches!(&e, Error::Forbidden(m) if m.contains("admin")), "{e}");
        let e = run(PurgeRequest { tags: vec!["x".into()], ..Default::default() });
        assert!(matches!(e, Error::Forbidden(_)));
        let e = run(PurgeRequest { urls: vec!["ftp://a.com/".into()], ..Default::default() });
        assert!(matches!(&e, Error::Invalid(m) if m.contains("urls[0]")), "{e}");
        let e = run(PurgeRequest { urls: vec!["http://a.com/a\u{7}b".into()], ..Default::default() });
        assert!(matches!(e, Error::Invalid(_)));
        let e = run(PurgeRequest { urls: vec![format!("http://a.com/{}", "x".repeat(9000))], ..Default::default() });
        assert!(matches!(&e, Error::Invalid(m) if m.contains("max-url-bytes")), "{e}");
        assert!(matches!(run(PurgeRequest::default()), Error::Invalid(_)));
        let admin = token(true);
        let mut b = TaskBuilder::new(&admin, LimitsSection::default(), false);
        b.add_request(&PurgeRequest { everything: true, tags: vec!["t".into()], ..Default::default() }).unwrap();
        assert_eq!(b.finish().unwrap().len(), 2);
    }

    #[test]
    fn url_count_limit() {
        let t = token(false);
        let limits = LimitsSection { max_urls: 2, ..LimitsSection::default() };
        let mut b = TaskBuilder::new(&t, limits, false);
        let urls = vec!["http://a.com/1".into(), "http://a.com/2".into(), "http://a.com/3".into()];
        let e = b.add_request(&PurgeRequest { urls, ..Default::default() }).unwrap_err();
        assert!(matches!(&e, Error::Invalid(m) if m.contains("urls[2]") && m.contains("max-urls")), "{e}");
    }

    #[tokio::test]
    async fn bulk_lines_split_across_chunks_and_bad_lines_are_numbered() {
        let t = token(false);
        let tasks =
            bulk(&[b"http://a.com/1\r\nhttp://a.", b"com/2\n\nhttp://a.com/1\nhttp://a.com/3"], BulkFormat::Text, &t)
                .await
                .unwrap();
        let urls: Vec<_> = tasks.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(urls, ["http://a.com/1", "http://a.com/2", "http://a.com/3"]);
        let e = bulk(&[b"http://a.com/1\nhttp://a.com/\xff\n"], BulkFormat::Text, &t).await.unwrap_err();
        assert!(matches!(&e, Error::Invalid(m) if m.contains("line 2") && m.contains("UTF-8")), "{e}");
        let e = bulk(&[b"http://a.com/1\n\nnot a url\n"], BulkFormat::Text, &t).await.unwrap_err();
        assert!(matches!(&e, Error::Invalid(m) if m.starts_with("line 3")), "{e}");
        let nd = bulk(&[b"\"http://a.com/1\"\n{\"url\": \"http://a.com/2\"}\n"], BulkFormat::NdJson, &t).await.unwrap();
        assert_eq!(nd.len(), 2);
        let e = bulk(&[b"\"http://a.com/1\"\n{\"u\": 1}\n"], BulkFormat::NdJson, &t).await.unwrap_err();
        assert!(matches!(&e, Error::Invalid(m) if m.starts_with("line 2")), "{e}");
    }
}
