//! Channel management under `/api/v1/channel/manage`: the account's own channels and their tokens.
//! A token is shown once, in the answer that issues it; listings show `"token": null`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Map, Value};
use service_kit::internal::TrustedCaller;
use time::OffsetDateTime;

use crate::AppState;
use crate::access::account;
use crate::error::ChannelError;
use crate::store::{self, ChannelRow, NewChannel, TokenRow};

/// A token as the API shows it.
#[derive(Debug, Serialize)]
pub struct TokenView {
    id: i64,
    token: Option<String>,
    description: String,
    can_read: bool,
    can_write: bool,
}

impl TokenView {
    fn of(row: &TokenRow, token: Option<String>) -> Self {
        Self {
            id: row.id,
            token,
            description: row.description.clone(),
            can_read: row.can_read,
            can_write: row.can_write,
        }
    }
}

#[derive(Debug, Serialize)]
struct Retention {
    min_age_days: Option<i32>,
    max_age_days: Option<i32>,
    auto_prune: bool,
}

/// A channel as the API shows it (the reference's field order).
#[derive(Debug, Serialize)]
pub struct ChannelView {
    id: String,
    href: String,
    public_read: bool,
    public_write: bool,
    sequenced: bool,
    locked: bool,
    head_sequence: i64,
    retention: Retention,
    access_tokens: Vec<TokenView>,
}

fn view(state: &AppState, c: &ChannelRow, access_tokens: Vec<TokenView>) -> ChannelView {
    ChannelView {
        id: c.external_id.clone(),
        href: state.settings.channel_href(&c.external_id),
        public_read: c.public_read,
        public_write: c.public_write,
        sequenced: c.sequenced,
        locked: c.locked,
        head_sequence: c.head_sequence,
        retention: Retention {
            min_age_days: c.min_age_days,
            max_age_days: c.max_age_days,
            auto_prune: c.auto_prune,
        },
        access_tokens,
    }
}

/// A JSON object body, or 400.
fn object(body: &[u8]) -> Result<Map<String, Value>, ChannelError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ChannelError::BadRequest("bad request body, expected a JSON object".into())),
        Err(_) => Err(ChannelError::BadRequest("bad request body, invalid JSON".into())),
    }
}

fn required<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a Value, ChannelError> {
    o.get(key).ok_or_else(|| ChannelError::BadRequest(format!("Missing property '{key}' in JSON body")))
}

fn boolean(o: &Map<String, Value>, key: &str) -> Result<bool, ChannelError> {
    required(o, key)?
        .as_bool()
        .ok_or_else(|| ChannelError::BadRequest(format!("Property '{key}' must be a boolean")))
}

fn days(o: &Map<String, Value>, key: &str) -> Result<Option<i32>, ChannelError> {
    match required(o, key)? {
        Value::Null => Ok(None),
        v => v
            .as_i64()
            .and_then(|d| i32::try_from(d).ok())
            .filter(|d| *d >= 0)
            .map(Some)
            .ok_or(ChannelError::InvalidRetention),
    }
}

async fn owned(state: &AppState, account: i64, id: &str) -> Result<ChannelRow, ChannelError> {
    store::owned_channel(&state.db, account, id).await?.ok_or(ChannelError::ChannelNotFound)
}

/// `GET /api/v1/channel/manage/list`: a bare array, as ElectrumSV expects.
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
) -> Result<HttpResponse, ChannelError> {
    let account = account(&req, &caller)?;
    let channels = store::channels_of(&state.db, account).await?;
    let ids: Vec<i64> = channels.iter().map(|c| c.id).collect();
    let tokens = store::tokens_of(&state.db, &ids, true).await?;
    let views: Vec<ChannelView> = channels
        .iter()
        .map(|c| {
            let own =
                tokens.iter().filter(|t| t.channel_id == c.id).map(|t| TokenView::of(t, None)).collect();
            view(&state, c, own)
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `POST /api/v1/channel/manage`: creates a channel and its "Owner" token (shown this once).
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    body: web::Bytes,
) -> Result<HttpResponse, ChannelError> {
    let account = account(&req, &caller)?;
    let o = object(&body)?;
    let retention = match required(&o, "retention")? {
        Value::Object(r) => r.clone(),
        _ => return Err(ChannelError::BadRequest("Property 'retention' must be an object".into())),
    };
    let new = NewChannel {
        public_read: boolean(&o, "public_read")?,
        public_write: boolean(&o, "public_write")?,
        sequenced: boolean(&o, "sequenced")?,
        min_age_days: days(&retention, "min_age_days")?,
        max_age_days: days(&retention, "max_age_days")?,
        auto_prune: match required(&retention, "auto_prune")? {
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_i64() != Some(0),
            _ => return Err(ChannelError::BadRequest("Property 'auto_prune' must be a boolean".into())),
        },
    };
    if let (Some(min), Some(max)) = (new.min_age_days, new.max_age_days)
        && min > max
    {
        return Err(ChannelError::InvalidRetention);
    }
    let (channel, owner) = store::create_channel(&state.db, account, new).await?;
    let tokens = vec![TokenView::of(&owner.row, Some(owner.token))];
    Ok(HttpResponse::Ok().json(view(&state, &channel, tokens)))
}

/// `GET /api/v1/channel/manage/{channelid}`.
pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ChannelError> {
    let account = account(&req, &caller)?;
    let channel = owned(&state, account, &path).await?;
    let tokens = store::tokens_of(&state.db, &[channel.id], true).await?;
    let views = tokens.iter().map(|t| TokenView::of(t, None)).collect();
    Ok(HttpResponse::Ok().json(view(&state, &channel, views)))
}

/// `POST /api/v1/channel/manage/{channelid}`: sets `public_read`, `public_write`, `locked`.
pub async fn amend(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ChannelError> {
    let account = account(&req, &caller)?;
    let o = object(&body)?;
    let (public_read, public_write, locked) =
        (boolean(&o, "public_read")?, boolean(&o, "public_write")?, boolean(&o, "locked")?);
    let channel = owned(&state, account, &path).await?;
    store::amend(&state.db, channel.id, public_read, public_write, locked).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "public_read": public_read, "public_write": public_write, "locked": locked
    })))
}

/// `DELETE /api/v1/channel/manage/{channelid}`: the channel, its tokens and messages; open
/// sockets on it close.
pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, ChannelError> {
    let account = account(&req, &caller)?;
    let channel = owned(&state, account, &path).await?;
    store::delete_channel(&state.db, &channel).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/v1/channel/manage/{channelid}/api-token[?token=]`: live tokens in id order.
pub async fn list_tokens(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, ChannelError> {
    let account = account(&req, &caller)?;
    let channel = owned(&state, account, &path).await?;
    let mut tokens = store::tokens_of(&state.db, &[channel.id], false).await?;
    if let Some(wanted) = query.get("token") {
        let found = store::by_token(&state.db, wanted).await?.map(|(t, _)| t.id);
        tokens.retain(|t| Some(t.id) == found);
        if tokens.is_empty() {
            return Err(ChannelError::TokenNotFound);
        }
    }
    let views: Vec<TokenView> = tokens.iter().map(|t| TokenView::of(t, None)).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `POST /api/v1/channel/manage/{channelid}/api-token`: issues a token (shown this once). It sees
/// the channel's history as unread.
pub async fn create_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ChannelError> {
    let account = account(&req, &caller)?;
    let o = object(&body)?;
    let description = required(&o, "description")?
        .as_str()
        .ok_or_else(|| ChannelError::BadRequest("Property 'description' must be a string".into()))?
        .to_owned();
    if description.len() > 1024 {
        return Err(ChannelError::BadRequest("Property 'description' is longer than 1024 bytes".into()));
    }
    let (can_read, can_write) = (boolean(&o, "can_read")?, boolean(&o, "can_write")?);
    let channel = owned(&state, account, &path).await?;
    let issued = store::create_token(&state.db, channel.id, &description, can_read, can_write).await?;
    Ok(HttpResponse::Ok().json(TokenView::of(&issued.row, Some(issued.token))))
}

/// The channel and token a `.../api-token/{tokenid}` path names, both the caller's (404 else).
async fn path_token(
    state: &AppState,
    req: &HttpRequest,
    caller: &TrustedCaller,
    path: web::Path<(String, String)>,
) -> Result<TokenRow, ChannelError> {
    let account = account(req, caller)?;
    let (channel_id, raw_token_id) = path.into_inner();
    let token_id: i64 = raw_token_id
        .parse()
        .map_err(|_| ChannelError::BadRequest("The token id must be an integer".into()))?;
    let channel = owned(state, account, &channel_id).await?;
    store::token_of_channel(&state.db, channel.id, token_id).await?.ok_or(ChannelError::TokenNotFound)
}

/// `GET /api/v1/channel/manage/{channelid}/api-token/{tokenid}`: a live token of the channel.
pub async fn get_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ChannelError> {
    let token = path_token(&state, &req, &caller, path).await?;
    if token.revoked_at.is_some() {
        return Err(ChannelError::TokenNotFound);
    }
    Ok(HttpResponse::Ok().json(TokenView::of(&token, None)))
}

/// `DELETE /api/v1/channel/manage/{channelid}/api-token/{tokenid}`: revokes at once (204, also
/// when already revoked); its open sockets close.
pub async fn revoke_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: TrustedCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ChannelError> {
    let token = path_token(&state, &req, &caller, path).await?;
    store::revoke(&state.db, token.id, OffsetDateTime::now_utc()).await?;
    Ok(HttpResponse::NoContent().finish())
}
