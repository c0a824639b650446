//! Rewrapping the byte stream of a `GetResult`, for decorators that watch
//! or alter downloads.

use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::{GetResult, GetResultPayload, Result};

pub(crate) type ByteStream = BoxStream<'static, Result<Bytes>>;

pub(crate) fn restream(mut r: GetResult, f: impl FnOnce(ByteStream) -> ByteStream) -> GetResult {
    let meta = r.meta.clone();
    let range = r.range.clone();
    let attributes = std::mem::take(&mut r.attributes);
    let extensions = std::mem::take(&mut r.extensions);
    GetResult {
        payload: GetResultPayload::Stream(f(r.into_stream())),
        meta,
        range,
        attributes,
        extensions,
    }
}
