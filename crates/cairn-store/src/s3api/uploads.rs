//! Multipart uploads that were started and never completed or aborted:
//! what a writer killed while it streamed a pack leaves on an S3 server
//! (`parts.rs`). Listings never show them, but their parts take space
//! until they are aborted; prune aborts those older than its grace period.

use std::collections::HashSet;

use bytes::Bytes;

use super::{S3Api, between, encode, unescape};
use crate::{StoreError, StoreResult};

/// A multipart upload in progress (or abandoned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// The object it is for, relative to the repository root.
    pub path: String,
    /// The server's id of the upload.
    pub upload_id: String,
    /// When it was started, as the server wrote it (`2026-12-01T10:00:00.000Z`).
    pub initiated: String,
}

struct UploadPage {
    uploads: Vec<PendingUpload>,
    next: Option<(String, String)>,
}

impl S3Api {
    /// Every multipart upload under `prefix` (relative to the repository
    /// root), following pagination.
    pub(crate) async fn uploads(&self, prefix: &str) -> StoreResult<Vec<PendingUpload>> {
        let full = format!("{}{prefix}", self.prefix);
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        let mut seen = HashSet::new();
        loop {
            let mut query = format!("uploads&prefix={}", encode(&full));
            if let Some((k, u)) = &marker {
                query.push_str(&format!(
                    "&key-marker={}&upload-id-marker={}",
                    encode(k),
                    encode(u)
                ));
            }
            let url = format!("{}/?{query}", self.bucket_url);
            let (status, _, body) = self
                .send(http::Method::GET, &url, &[], Bytes::new())
                .await?;
            if !status.is_success() {
                return Err(Self::refused(prefix, status, &body));
            }
            let page = parse_uploads(&String::from_utf8_lossy(&body), &self.prefix);
            out.extend(page.uploads);
            match page.next {
                // A server that names a page it named before would keep
                // this loop going for ever.
                Some(next) if !seen.insert(next.clone()) => {
                    return Err(StoreError::Backend {
                        path: prefix.to_owned(),
                        message: format!(
                            "the upload listing does not advance: it names page {next:?} again"
                        ),
                    });
                }
                Some(next) => marker = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Aborts a multipart upload: its parts are deleted. An upload that
    /// is gone already (completed or aborted by another run) is no error.
    pub(crate) async fn abort_upload(&self, path: &str, upload_id: &str) -> StoreResult<()> {
        let url = self.url(path, &format!("uploadId={}", encode(upload_id)));
        let (status, _, body) = self
            .send(http::Method::DELETE, &url, &[], Bytes::new())
            .await?;
        if status.is_success() || status == http::StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::refused(path, status, &body))
        }
    }
}

/// Reads a ListMultipartUploads answer. Keys outside the repository's
/// prefix are skipped; a truncated page names where to go on.
fn parse_uploads(xml: &str, prefix: &str) -> UploadPage {
    let mut uploads = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Upload>") {
        let Some(j) = rest[i..].find("</Upload>") else {
            break;
        };
        let item = &rest[i + "<Upload>".len()..i + j];
        rest = &rest[i + j + "</Upload>".len()..];
        let (Some(key), Some(upload_id)) = (
            between(item, "<Key>", "</Key>"),
            between(item, "<UploadId>", "</UploadId>"),
        ) else {
            continue;
        };
        let Some(path) = unescape(&key).strip_prefix(prefix).map(str::to_owned) else {
            continue;
        };
        uploads.push(PendingUpload {
            path,
            upload_id: unescape(&upload_id),
            initiated: between(item, "<Initiated>", "</Initiated>").unwrap_or_default(),
        });
    }
    let truncated = between(xml, "<IsTruncated>", "</IsTruncated>").as_deref() == Some("true");
    let next = if truncated {
        between(xml, "<NextKeyMarker>", "</NextKeyMarker>")
            .zip(between(
                xml,
                "<NextUploadIdMarker>",
                "</NextUploadIdMarker>",
            ))
            .map(|(k, u)| (unescape(&k), unescape(&u)))
    } else {
        None
    };
    UploadPage { uploads, next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_listings_are_read_within_the_prefix() {
        let xml = "<ListMultipartUploadsResult><Bucket>b</Bucket>\
            <IsTruncated>true</IsTruncated>\
            <NextKeyMarker>repo/data/cd/cd</NextKeyMarker>\
            <NextUploadIdMarker>u&amp;2</NextUploadIdMarker>\
            <Upload><Key>repo/data/ab/ab</Key><UploadId>u1</UploadId>\
            <Initiated>2026-12-01T10:00:00.000Z</Initiated></Upload>\
            <Upload><Key>other/data/x</Key><UploadId>u9</UploadId></Upload>\
            <Upload><Key>repo/data/cd/cd</Key><UploadId>u&amp;2</UploadId>\
            <Initiated>2026-12-01T11:00:00Z</Initiated></Upload>\
            </ListMultipartUploadsResult>";
        let page = parse_uploads(xml, "repo/");
        let got: Vec<_> = page
            .uploads
            .iter()
            .map(|u| (u.path.as_str(), u.upload_id.as_str(), u.initiated.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("data/ab/ab", "u1", "2026-12-01T10:00:00.000Z"),
                ("data/cd/cd", "u&2", "2026-12-01T11:00:00Z"),
            ]
        );
        assert_eq!(page.next, Some(("repo/data/cd/cd".into(), "u&2".into())));
        let last = xml.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_uploads(&last, "repo/").next, None);
    }
}
