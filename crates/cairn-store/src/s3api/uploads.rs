//! Multipart uploads that were started and never completed or aborted:
//! what a writer killed while it streamed a pack leaves on an S3 server
//! (`parts.rs`). Listings never show them, but their parts take space
//! until they are aborted; prune aborts those older than its grace period.

use bytes::Bytes;

use super::{Page, S3Api, between, encode, unescape};
use crate::StoreResult;

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

impl S3Api {
    /// Every multipart upload under `prefix` (relative to the repository
    /// root), following pagination.
    pub(crate) async fn uploads(&self, prefix: &str) -> StoreResult<Vec<PendingUpload>> {
        let markers = ("key-marker", "upload-id-marker");
        self.pages(prefix, "uploads", markers, parse_uploads).await
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
fn parse_uploads(xml: &str, prefix: &str) -> Page<PendingUpload> {
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
    Page {
        items: uploads,
        next,
    }
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
            .items
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
