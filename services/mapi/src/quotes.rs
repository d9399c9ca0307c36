//! Policy quotes: storage, the reference's selection rules ("current" and "valid"), and the admin
//! API (`/api/v1/PolicyQuote`, `/api/v1/FeeQuote`).

use actix_web::{HttpResponse, web};
use db_kit::{Db, DbError};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use service_kit::internal::TrustedCaller;
use service_kit::{ApiError, ErrorKind};
use time::OffsetDateTime;
use wire_model::mapi::Fee;

use crate::AppState;
use crate::schema::policy_quotes;

/// A stored quote.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = policy_quotes)]
pub struct Quote {
    /// Id.
    pub id: i64,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// From when it applies.
    pub valid_from: OffsetDateTime,
    /// Whose it is (none: anonymous).
    pub identity: Option<String>,
    /// The identity's provider.
    pub identity_provider: Option<String>,
    /// Policies passed to the node.
    pub policies: Option<serde_json::Value>,
    /// Fees, as the API speaks them.
    pub fees: serde_json::Value,
}

impl Quote {
    /// The fees, typed.
    pub fn fees(&self) -> Vec<Fee> {
        serde_json::from_value(self.fees.clone()).unwrap_or_default()
    }

    /// The policies as an object (absent when not an object).
    pub fn policies_object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        self.policies.as_ref().and_then(|p| p.as_object().cloned())
    }
}

/// The quote that applies now: the latest whose `valid_from` has come.
pub fn current(quotes: &[Quote], now: OffsetDateTime) -> Option<&Quote> {
    quotes.iter().filter(|q| q.valid_from <= now).max_by_key(|q| (q.valid_from, q.created_at, q.id))
}

/// The quotes a submission may be checked against: those that started within the expiry window,
/// or, when none did, the current one (so a long-lived quote keeps working).
pub fn valid(quotes: &[Quote], now: OffsetDateTime, expiry: time::Duration) -> Vec<&Quote> {
    let recent: Vec<&Quote> = quotes
        .iter()
        .filter(|q| q.valid_from <= now && q.valid_from >= now - expiry && q.created_at >= now - expiry)
        .collect();
    if recent.is_empty() { current(quotes, now).into_iter().collect() } else { recent }
}

/// The quotes of one identity (`None`: anonymous), through the instance's cache.
pub async fn cached_for_identity(
    state: &AppState,
    identity: Option<(&str, &str)>,
) -> Result<Vec<Quote>, DbError> {
    let key = identity.map(|(i, p)| (i.to_owned(), p.to_owned()));
    state.quote_cache.get_or_load(key, || for_identity(&state.db, identity)).await
}

/// The quotes of one identity (`None`: anonymous).
pub async fn for_identity(db: &Db, identity: Option<(&str, &str)>) -> Result<Vec<Quote>, DbError> {
    let mut conn = db.conn().await?;
    let query = policy_quotes::table.select(Quote::as_select()).into_boxed();
    let query = match identity {
        Some((id, provider)) => {
            query.filter(policy_quotes::identity.eq(id)).filter(policy_quotes::identity_provider.eq(provider))
        }
        None => query.filter(policy_quotes::identity.is_null()),
    };
    Ok(query.load(&mut conn).await?)
}

/// The body of `POST /api/v1/PolicyQuote`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewQuote {
    /// From when it applies (default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub valid_from: Option<OffsetDateTime>,
    /// Whose it is.
    #[serde(default)]
    pub identity: Option<String>,
    /// The identity's provider.
    #[serde(default)]
    pub identity_provider: Option<String>,
    /// Policies, verbatim.
    #[serde(default)]
    pub policies: Option<serde_json::Map<String, serde_json::Value>>,
    /// Fees.
    #[serde(default)]
    pub fees: Option<Vec<Fee>>,
}

/// The admin view of a quote.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QuoteView {
    id: i64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    valid_from: OffsetDateTime,
    identity: Option<String>,
    identity_provider: Option<String>,
    policies: Option<serde_json::Value>,
    fees: serde_json::Value,
}

impl From<Quote> for QuoteView {
    fn from(q: Quote) -> Self {
        Self {
            id: q.id,
            created_at: q.created_at,
            valid_from: q.valid_from,
            identity: q.identity,
            identity_provider: q.identity_provider,
            policies: q.policies,
            fees: q.fees,
        }
    }
}

/// Checks a new quote with the reference's messages (all problems, joined).
fn validate(q: &NewQuote, now: OffsetDateTime) -> Result<(), String> {
    let mut problems = Vec::new();
    if q.valid_from.is_some_and(|v| v < now) {
        problems.push("Check ValidFrom value - cannot be valid before created.".to_owned());
    }
    match (&q.identity, &q.identity_provider) {
        (Some(_), None) | (None, Some(_)) => {
            problems.push("Identity and IdentityProvider must both be set or both be empty.".to_owned())
        }
        (Some(i), Some(p)) if i.trim().is_empty() || p.trim().is_empty() => {
            problems.push("Identity and IdentityProvider must not be whitespace.".to_owned())
        }
        _ => {}
    }
    match &q.fees {
        None => problems.push("Fees must not be empty.".to_owned()),
        Some(fees) if fees.is_empty() => problems.push("Fees must not be empty.".to_owned()),
        Some(fees) => {
            let mut seen = std::collections::HashSet::new();
            for f in fees {
                if f.fee_type.trim().is_empty() {
                    problems.push("FeeType must not be empty.".to_owned());
                } else if !seen.insert(f.fee_type.as_str()) {
                    problems.push(format!("Duplicate FeeType {}.", f.fee_type));
                }
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join(" ")) }
}

/// `POST /api/v1/PolicyQuote`.
pub async fn create(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    body: web::Json<NewQuote>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let now = OffsetDateTime::now_utc();
    let q = body.into_inner();
    validate(&q, now).map_err(ApiError::bad_request)?;
    let fees = serde_json::to_value(q.fees.unwrap_or_default()).map_err(|e| ApiError::internal(&e))?;
    let mut conn = state.db.conn().await?;
    let quote: Quote = diesel::insert_into(policy_quotes::table)
        .values((
            policy_quotes::created_at.eq(now),
            policy_quotes::valid_from.eq(q.valid_from.unwrap_or(now)),
            policy_quotes::identity.eq(&q.identity),
            policy_quotes::identity_provider.eq(&q.identity_provider),
            policy_quotes::policies.eq(q.policies.map(serde_json::Value::Object)),
            policy_quotes::fees.eq(fees),
        ))
        .returning(Quote::as_returning())
        .get_result(&mut conn)
        .await
        .map_err(DbError::from)?;
    state.quote_cache.clear();
    Ok(HttpResponse::Created()
        .insert_header(("location", format!("/api/v1/PolicyQuote/{}", quote.id)))
        .json(QuoteView::from(quote)))
}

/// `GET /api/v1/PolicyQuote/{id}`.
pub async fn get(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let mut conn = state.db.conn().await?;
    let quote: Option<Quote> = policy_quotes::table
        .find(id.into_inner())
        .select(Quote::as_select())
        .first(&mut conn)
        .await
        .optional()
        .map_err(DbError::from)?;
    quote.map(|q| HttpResponse::Ok().json(QuoteView::from(q))).ok_or_else(|| ApiError::not_found("Not found"))
}

/// Query of `GET /api/v1/PolicyQuote`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    identity: Option<String>,
    identity_provider: Option<String>,
    #[serde(default)]
    anonymous: bool,
    #[serde(default)]
    current: bool,
    #[serde(default)]
    valid: bool,
}

/// `GET /api/v1/PolicyQuote?identity&identityProvider&anonymous&current&valid`.
pub async fn list(
    caller: TrustedCaller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let q = query.into_inner();
    let mut conn = state.db.conn().await?;
    let all: Vec<Quote> = policy_quotes::table
        .select(Quote::as_select())
        .order(policy_quotes::id)
        .load(&mut conn)
        .await
        .map_err(DbError::from)?;
    let scoped: Vec<Quote> = all
        .into_iter()
        .filter(|quote| match (&q.identity, &q.identity_provider) {
            (None, None) if !q.anonymous => true,
            _ => {
                let same = quote.identity.as_deref() == q.identity.as_deref()
                    && quote.identity_provider.as_deref() == q.identity_provider.as_deref();
                same || (q.anonymous && quote.identity.is_none())
            }
        })
        .collect();
    let now = OffsetDateTime::now_utc();
    let expiry = time::Duration::minutes(i64::from(state.settings.quote_expiry_minutes));
    // Group by identity so "current"/"valid" apply per identity, as the reference does.
    let mut groups: std::collections::BTreeMap<(Option<String>, Option<String>), Vec<Quote>> =
        Default::default();
    for quote in scoped {
        groups.entry((quote.identity.clone(), quote.identity_provider.clone())).or_default().push(quote);
    }
    let mut out: Vec<QuoteView> = Vec::new();
    for quotes in groups.values() {
        let chosen: Vec<&Quote> = if q.valid {
            valid(quotes, now, expiry)
        } else if q.current {
            current(quotes, now).into_iter().collect()
        } else {
            quotes.iter().collect()
        };
        out.extend(chosen.into_iter().cloned().map(QuoteView::from));
    }
    out.sort_by_key(|v| v.id);
    Ok(HttpResponse::Ok().json(out))
}

/// `PUT` and `DELETE` on quotes: quotes are immutable, as in the reference.
pub async fn not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorKind::MethodNotAllowed, "Policy quotes cannot be changed or deleted."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn quote(id: i64, created: OffsetDateTime, from: OffsetDateTime) -> Quote {
        Quote {
            id,
            created_at: created,
            valid_from: from,
            identity: None,
            identity_provider: None,
            policies: None,
            fees: serde_json::json!([]),
        }
    }

    #[test]
    fn current_and_valid_follow_the_reference() {
        let now = datetime!(2026-11-23 12:00 UTC);
        let old = quote(1, now - time::Duration::days(3), now - time::Duration::days(3));
        let recent = quote(2, now - time::Duration::minutes(5), now - time::Duration::minutes(5));
        let future = quote(3, now, now + time::Duration::hours(1));
        let all = vec![old.clone(), recent.clone(), future.clone()];
        assert_eq!(current(&all, now).map(|q| q.id), Some(2));
        let ten = time::Duration::minutes(10);
        assert_eq!(valid(&all, now, ten).iter().map(|q| q.id).collect::<Vec<_>>(), vec![2]);
        // Only an old quote: it stays valid (the latest one).
        assert_eq!(
            valid(std::slice::from_ref(&old), now, ten).iter().map(|q| q.id).collect::<Vec<_>>(),
            vec![1]
        );
        // A future quote becomes current when its time comes.
        assert_eq!(current(&all, now + time::Duration::hours(2)).map(|q| q.id), Some(3));
        assert!(current(std::slice::from_ref(&future), now).is_none());
    }
}
