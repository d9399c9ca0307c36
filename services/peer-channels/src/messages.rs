//! Messages of a channel: write, `HEAD` (max sequence), read, mark read/unread, delete.

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use serde::Serialize;
use service_kit::Bearer;
use service_kit::internal::TrustedCaller;
use time::OffsetDateTime;

use crate::AppState;
use crate::access::{self, Access, Need};
use crate::error::ChannelError;
use crate::store::{self, MessageRow};

/// `received` as the reference writes it: UTC, whole seconds, `Z`.
pub fn format_received(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// A message as the API shows it.
#[derive(Debug, Serialize)]
struct MessageView {
    sequence: i64,
    received: String,
    content_type: String,
    payload: String,
}

impl From<&MessageRow> for MessageView {
    fn from(m: &MessageRow) -> Self {
        Self {
            sequence: m.seq,
            received: format_received(m.received_at),
            content_type: m.content_type.clone(),
            payload: STANDARD.encode(&m.payload),
        }
    }
}

async fn access(
    state: &AppState,
    req: &HttpRequest,
    caller: &TrustedCaller,
    channel: &str,
    need: Need,
) -> Result<Access, ChannelError> {
    access::check(state, caller, Bearer::of(req).token(), channel, need).await
}

/// Reads must accept JSON (checked before auth, as in the reference).
fn check_accept(req: &HttpRequest) -> Result<(), ChannelError> {
    match req.headers().get(ACCEPT).map(|v| v.to_str().map(str::trim)) {
        None => Ok(()),
        Some(Ok("application/json" | "*/*" | "")) => Ok(()),
        Some(_) => Err(ChannelError::Accept),
    }
}

/// Reads the body up to `max` bytes; 413 beyond (also for chunked bodies).
async fn read_limited(mut payload: web::Payload, max: usize) -> Result<Vec<u8>, ChannelError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| ChannelError::BadRequest("The request body could not be read".into()))?;
        if body.len() + chunk.len() > max {
            return Err(ChannelError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `POST /api/v1/channel/{channelid}`: writes a message; 200 with the stored message.
pub async fn write(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ChannelError> {
    let access = access(&state, &req, &caller, &path, Need::Write).await?;
    let content_type = match req.headers().get(CONTENT_TYPE) {
        None => "application/octet-stream".to_owned(),
        Some(v) => v
            .to_str()
            .map_err(|_| ChannelError::ContentType)?
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    };
    if content_type != "application/json" && content_type != "application/octet-stream" {
        return Err(ChannelError::ContentType);
    }
    let declared: Option<usize> = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let max = state.settings.max_message_content_length;
    if declared.is_some_and(|n| n > max) {
        return Err(ChannelError::TooLarge);
    }
    let body = read_limited(payload, max).await?;
    if body.is_empty() {
        return Err(ChannelError::EmptyPayload);
    }
    if content_type == "application/json" && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return Err(ChannelError::BadRequest("The message is not valid JSON".into()));
    }
    let stored = store::write_message(
        &state.db,
        &state.writes,
        &access.channel,
        &access.token,
        &content_type,
        body,
        OffsetDateTime::now_utc(),
    )
    .await?;
    state.metrics.messages_written.inc();
    Ok(HttpResponse::Ok().json(MessageView::from(&stored)))
}

fn flags(access: &Access) -> &'static str {
    if access.token.can_write { "rw" } else { "r" }
}

/// `HEAD /api/v1/channel/{channelid}`: `ETag` = the highest sequence others wrote that this token
/// has not deleted (0 if none, or the channel is not sequenced); `Channel-Flags`.
pub async fn head(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ChannelError> {
    check_accept(&req)?;
    let access = access(&state, &req, &caller, &path, Need::Read).await?;
    let max = if access.channel.sequenced {
        store::max_sequence(&state.db, access.channel.id, &access.token, true).await?.unwrap_or(0)
    } else {
        0
    };
    Ok(HttpResponse::Ok()
        .insert_header(("ETag", max.to_string()))
        .insert_header(("Channel-Flags", flags(&access)))
        .insert_header(("Access-Control-Expose-Headers", "authorization,etag,channel-flags"))
        .finish())
}

/// `GET /api/v1/channel/{channelid}[?unread=true]`: this token's messages (it has not deleted),
/// by sequence. Reading does not mark them read.
pub async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, ChannelError> {
    check_accept(&req)?;
    let access = access(&state, &req, &caller, &path, Need::Read).await?;
    let unread = query.get("unread").map(String::as_str) == Some("true");
    // The messages up to the head as it was when the read began, a page at a time.
    let page = store::Page {
        unread_only: unread,
        after: 0,
        upto: access.channel.head_sequence,
        limit: state.settings.message_page_size,
        with_payload: true,
    };
    let first = store::messages_page(&state.db, access.channel.id, &access.token, page).await?;
    let etag = if access.channel.sequenced {
        store::max_sequence(&state.db, access.channel.id, &access.token, false)
            .await?
            .map(|s| s.to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut answer = HttpResponse::Ok();
    answer
        .insert_header(("ETag", etag))
        .insert_header(("Access-Control-Expose-Headers", "authorization,etag"));
    if (first.len() as i64) < page.limit {
        let views: Vec<MessageView> = first.iter().map(MessageView::from).collect();
        return Ok(answer.json(views));
    }
    // More than a page: the JSON array is streamed, one page in memory at a time.
    let pages =
        MessagePages { db: state.db.clone(), channel_id: access.channel.id, token: access.token, page };
    Ok(answer.content_type("application/json").streaming(pages.into_json_array(first)))
}

/// The pages of a read after the first, as they are fetched.
struct MessagePages {
    db: db_kit::Db,
    channel_id: i64,
    token: store::TokenRow,
    page: store::Page,
}

/// Where the streaming of a read stands.
enum Progress {
    /// The first page, fetched before answering (so a failure there is a proper error status).
    First(Vec<MessageRow>),
    /// Pages after the first are fetched as the client takes them.
    Next,
    /// The closing bracket was sent, or a page failed (the connection is cut: the client sees an
    /// incomplete body, never a wrong one).
    Done,
}

impl MessagePages {
    /// The JSON array of every page, starting with `first`, as a stream of chunks.
    fn into_json_array(
        self,
        first: Vec<MessageRow>,
    ) -> impl futures_util::Stream<Item = Result<web::Bytes, db_kit::DbError>> {
        futures_util::stream::unfold((self, Progress::First(first)), |(mut pages, progress)| async move {
            let (rows, opening) = match progress {
                Progress::Done => return None,
                Progress::First(rows) => (rows, true),
                Progress::Next => {
                    match store::messages_page(&pages.db, pages.channel_id, &pages.token, pages.page).await {
                        Ok(rows) => (rows, false),
                        Err(e) => {
                            tracing::warn!(error = %e, "reading a page of messages failed");
                            return Some((Err(e), (pages, Progress::Done)));
                        }
                    }
                }
            };
            let mut chunk =
                Vec::with_capacity(rows.iter().map(|m| m.payload.len() * 4 / 3 + 128).sum::<usize>() + 2);
            if opening {
                chunk.push(b'[');
            }
            for (i, m) in rows.iter().enumerate() {
                if i > 0 || !opening {
                    chunk.push(b',');
                }
                // Serializing plain strings and numbers cannot fail.
                let _ = serde_json::to_writer(&mut chunk, &MessageView::from(m));
            }
            let next = if (rows.len() as i64) < pages.page.limit {
                chunk.push(b']');
                Progress::Done
            } else {
                pages.page.after = rows.last().map_or(pages.page.after, |m| m.seq);
                Progress::Next
            };
            Some((Ok(web::Bytes::from(chunk)), (pages, next)))
        })
    }
}
fn sequence(raw: &str) -> Result<i64, ChannelError> {
    raw.parse::<i64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| ChannelError::BadRequest("The sequence must be a positive integer".into()))
}

/// `POST /api/v1/channel/{channelid}/{sequence}[?older=true]` with `{"read": bool}`.
pub async fn mark(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<(String, String)>,
    query: web::Query<std::collections::HashMap<String, String>>,
    body: web::Bytes,
) -> Result<HttpResponse, ChannelError> {
    let (channel, raw_seq) = path.into_inner();
    let access = access(&state, &req, &caller, &channel, Need::Read).await?;
    let read = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => v
            .get("read")
            .and_then(serde_json::Value::as_bool)
            .ok_or_else(|| ChannelError::BadRequest("Missing boolean property 'read' in JSON body".into()))?,
        Err(_) => return Err(ChannelError::BadRequest("bad request body, invalid JSON".into())),
    };
    let seq = sequence(&raw_seq)?;
    let older = query.get("older").map(String::as_str) == Some("true");
    store::mark(&state.db, access.channel.id, &access.token, seq, read, older).await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("200: OK"))
}

/// `DELETE /api/v1/channel/{channelid}/{sequence}`: deletes the message for this token, once the
/// channel's retention minimum has passed.
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ChannelError> {
    let (channel, raw_seq) = path.into_inner();
    let access = access(&state, &req, &caller, &channel, Need::Any).await?;
    let seq = sequence(&raw_seq)?;
    store::delete_message(&state.db, &access.channel, &access.token, seq, OffsetDateTime::now_utc()).await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("200: OK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_is_whole_seconds_utc_with_z() {
        let at = time::macros::datetime!(2023-11-27 01:02:03.456 +02:00);
        assert_eq!(format_received(at), "2023-11-26T23:02:03Z");
    }
}
