//! Request ids, logging, timeouts, internal errors, authentication and rate limits.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;

use tabledb::schema::shown;

use crate::config::Role;
use crate::error::{ApiError, InternalDetail};
use crate::state::{AppState, ClientId, RATE_LIMIT_CLIENTS_MAX};

/// The id of a request, in its extensions and in the `x-request-id` response header.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub u64);

/// When a request's time is up (its start plus the request timeout), in its extensions, for
/// work that runs off the async workers and must stop by itself.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

/// The response to a request that ran out of time.
pub fn timeout_error(state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "timeout",
        format!(
            "the request took longer than {} ms; a write may still be applied",
            state.cfg.request_timeout.as_millis()
        ),
    )
}

/// Outermost layer: gives the request an id, logs it, bounds its time, and turns internal
/// errors (and panics) into a generic message that carries the id; the detail goes to the log.
pub async fn context(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = RequestId(state.request_ids.fetch_add(1, Ordering::Relaxed));
    req.extensions_mut().insert(id);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let declares_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let start = Instant::now();
    req.extensions_mut().insert(Deadline(start + state.cfg.request_timeout));
    let span = tracing::info_span!("request", id = id.0, %method, %path);
    let _entered = span.enter();
    drop(_entered);
    let result = {
        use tracing::Instrument;
        tokio::time::timeout(state.cfg.request_timeout, next.run(req)).instrument(span.clone()).await
    };
    let mut response = match result {
        Ok(r) => r,
        Err(_) => timeout_error(&state).into_response(),
    };
    let status = response.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        let detail = response
            .extensions()
            .get::<InternalDetail>()
            .map_or("a panic or an unexpected failure", |d| d.0.as_str());
        tracing::error!(parent: &span, request_id = id.0, detail, "internal error");
        let body = json!({ "error": { "code": "internal", "message": format!("internal error (request id {})", id.0) } });
        response = (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&id.0.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    if declares_body && (status.is_client_error() || status.is_server_error()) {
        // The body may not have been read (refused before it was: 401, 403, 404, 413, 429...),
        // and then the connection is closed after this response. Say so, so that a client
        // does not send its next request on a connection that is going away.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    state.http.count(status.as_u16());
    tracing::info!(parent: &span, status = status.as_u16(), micros = start.elapsed().as_micros() as u64, "served");
    response
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Checks `Authorization: Bearer KEY` when keys are configured: a missing or unknown key is
/// 401, a read key attempting a write is 403. Keys are compared in constant time. `/health`
/// stays open.
pub async fn auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let keys = &state.cfg.api_keys;
    let addr = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if keys.is_empty() || req.uri().path() == "/health" {
        if let Some(ip) = addr {
            req.extensions_mut().insert(ClientId::addr(ip));
        }
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110).
            let (scheme, key) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key)
        })
        .map(str::trim);
    let Some(presented) = presented else {
        state.http.unauthorized.fetch_add(1, Ordering::Relaxed);
        // Requests without a key count against the address's rate limit, as guesses do.
        if let Some(response) = addr.and_then(|ip| limited(&state, &ClientId::addr(ip))) {
            return response;
        }
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "an API key is required: Authorization: Bearer KEY",
        )
        .into_response();
    };
    // Compare against every key, without stopping at a match, so the time taken does not
    // depend on which key (if any) matched.
    let mut found: Option<usize> = None;
    for (i, k) in keys.iter().enumerate() {
        let eq: bool = k.key.as_bytes().ct_eq(presented.as_bytes()).into();
        if eq && found.is_none() {
            found = Some(i);
        }
    }
    let Some(index) = found else {
        state.http.unauthorized.fetch_add(1, Ordering::Relaxed);
        // Guessing keys counts against the address's rate limit.
        if let Some(response) = addr.and_then(|ip| limited(&state, &ClientId::addr(ip))) {
            return response;
        }
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown API key").into_response();
    };
    if keys[index].role == Role::Read && !is_read(req.method()) {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this API key may only read")
            .into_response();
    }
    req.extensions_mut().insert(ClientId::Key(index));
    next.run(req).await
}

/// Per-client rate limit: 429 with `Retry-After` when a client exceeds its requests per
/// second.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(client) = req.extensions().get::<ClientId>()
        && let Some(limited) = limited(&state, client)
    {
        return limited;
    }
    next.run(req).await
}

/// The 429 response when `client` is over its rate, if it is.
fn limited(state: &AppState, client: &ClientId) -> Option<Response> {
    let limiter = state.limiter.as_ref()?;
    if limiter.len() > RATE_LIMIT_CLIENTS_MAX {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
    let not_until = limiter.check_key(client).err()?;
    state.http.rate_limited.fetch_add(1, Ordering::Relaxed);
    let wait =
        not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
    let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down");
    e.retry_after = Some(wait.as_secs().max(1));
    Some(e.into_response())
}

/// An empty body with a JSON error, for routes that do not exist.
pub async fn not_found(req: Request<Body>) -> Response {
    ApiError::not_found("not_found", format!("no route for {} {}", req.method(), shown(req.uri().path())))
        .into_response()
}

/// For routes that exist but not with this method.
pub async fn method_not_allowed(req: Request<Body>) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), shown(req.uri().path())),
    )
    .into_response()
}

/// The one route that takes query parameters: the listing of records.
const LISTING_ROUTE: &str = "/tables/{name}/records";

/// Refuses a query parameter on every route but the listing (`GET /tables/{name}/records`):
/// those take none, and one that is ignored would look obeyed (`?dry_run=true` would still
/// write). Answers 400 naming the parameter and the route.
pub async fn no_query_parameters(matched: Option<MatchedPath>, req: Request<Body>, next: Next) -> Response {
    let route = matched.as_ref().map_or_else(|| req.uri().path(), MatchedPath::as_str);
    // HEAD is answered by the GET handler, without the body. Health checks and metric
    // scrapers may add parameters of their own (a cache-buster); those routes change nothing
    // and answer the same either way, so they let them pass.
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    let takes_query = read && matches!(route, LISTING_ROUTE | "/health" | "/metrics");
    if !takes_query
        && let Some(query) = req.uri().query()
        && let Some(param) = query.split('&').find(|p| !p.is_empty())
    {
        // The first parameter's name, decoded (`dry%5Frun` is `dry_run`) when it decodes.
        let raw = param.split('=').next().unwrap_or(param);
        let name = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
            .ok()
            .and_then(|q| q.0.into_iter().next().map(|(k, _)| k))
            .unwrap_or_else(|| raw.to_owned());
        return ApiError::bad_request(format!(
            "unknown query parameter {}: {} {} takes no query parameters",
            shown(&name),
            req.method(),
            shown(route)
        ))
        .into_response();
    }
    next.run(req).await
}
