//! Reading request bodies within limits, including gzip, without ever holding more than the
//! limit in memory (no gzip bombs).

use std::io::Read;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_ENCODING;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use crate::error::ApiError;

/// 32 KiB per event (Segment's limit).
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// 500 KiB per batch request.
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Events per batch request.
pub const MAX_BATCH_EVENTS: usize = 2_500;

fn too_large(limit: usize) -> ApiError {
    ApiError::bad_request(
        "payload_too_large",
        format!(
            "the request body is larger than {} KB once decompressed; send at most 32 KB per event \
             and 500 KB per batch",
            limit / 1024
        ),
    )
}

/// Read the body, decompressing gzip, and fail once it exceeds `limit` decompressed bytes.
pub async fn read(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") | Some("x-gzip") => true,
        Some(other) => {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding {other:?} is not supported; send identity or gzip"),
            ));
        }
    };
    // Compressed data is never meaningfully larger than the original: deflate adds at most a
    // few bytes per 16 KB block plus the gzip header.
    let raw_limit = if gzip {
        limit + limit / 64 + 1024
    } else {
        limit
    };
    let raw = Limited::new(body, raw_limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large(limit)
            } else {
                ApiError::bad_request(
                    "invalid_body",
                    format!("could not read the request body: {e}"),
                )
            }
        })?
        .to_bytes();
    if !gzip {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity((raw.len() * 4).min(limit + 1));
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_gzip",
                format!("the gzip body could not be decompressed: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(out))
}
