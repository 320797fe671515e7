//! The handlers. Reads come straight from the latest snapshot; writes, schema changes and
//! procedure calls go through the runtime's queue and are answered once acknowledged.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tabledb::procedure::ProcError;
use tabledb::runtime::Job;
use tabledb::schema::{FieldDef, RelationId, TableSchema, shown};
use tabledb::types::{TypeDef, TypeKind, TypeLayout};
use tabledb::{RecordId, Snapshot};

use crate::body::{JsonBody, Path, StrictValue};
use crate::error::{ApiError, ApiResult};
use crate::middleware::{Deadline, timeout_error};
use crate::query::{Listing, parse_decimal};
use crate::state::AppState;

/// Most records one request may create.
pub const MAX_RECORDS_PER_REQUEST: usize = 10_000;

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

/// A 201 whose `Location` is the path of the created resource (a route that answers it with
/// GET). Every path made here is built from names and numbers that need no escaping.
fn created_at(location: &str, v: Value) -> Response {
    let mut r = created(v);
    if let Ok(value) = header::HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, value);
    }
    r
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A record as JSON: its `id`, then its fields.
pub fn record_json(schema: &TableSchema, id: RecordId, bytes: &[u8]) -> Result<Value, tabledb::Error> {
    let mut map = Map::with_capacity(schema.fields.len() + 1);
    map.insert("id".into(), Value::from(id.0));
    map.extend(schema.record_to_json(bytes)?);
    Ok(Value::Object(map))
}

fn layout_json(t: &TypeLayout) -> Value {
    let mut v = json!({ "name": t.name, "size": t.size, "align": t.align });
    let (kind, extra) = match &t.kind {
        TypeKind::Primitive(_) => ("primitive", None),
        TypeKind::Str { capacity } => ("string", Some(("max_len", json!(capacity)))),
        TypeKind::Array { elem, len } => {
            ("array", Some(("element", json!({ "type": elem.name, "len": len }))))
        }
        TypeKind::Composite { members } => (
            "composite",
            Some((
                "fields",
                members
                    .iter()
                    .map(|m| json!({ "name": m.name, "type": m.layout.name, "offset": m.offset }))
                    .collect(),
            )),
        ),
    };
    v["kind"] = json!(kind);
    if let Some((k, e)) = extra {
        v[k] = e;
    }
    v
}

fn field_json(f: &tabledb::schema::Field) -> Value {
    let mut v = json!({ "name": f.name, "type": f.layout.name, "offset": f.offset, "size": f.layout.size });
    if let TypeKind::Str { capacity } = f.layout.kind {
        v["max_len"] = json!(capacity);
    }
    v
}

fn table_json(snap: &Snapshot, name: &str) -> Result<Value, tabledb::Error> {
    let schema = snap.schema(name)?;
    let fields: Vec<Value> = schema.fields.iter().map(field_json).collect();
    Ok(json!({
        "name": schema.name,
        "id": snap.table_id(name).map(|i| i.0),
        "record_size": schema.record_size,
        "records": snap.len(name)?,
        "fields": fields,
    }))
}

// ---- health, metrics, OpenAPI ----

pub async fn health(State(s): State<AppState>) -> Response {
    let m = s.rt.metrics();
    let persist = s.db.persistence_status();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let writes_stopped = persist.as_ref().and_then(|p| p.writes_stopped.clone());
    let persistence_errors = m.flush_failures
        + m.checkpoint_failures
        + persist.as_ref().map_or(0, |p| p.log_sync_failures + p.checkpoint_failures);
    let status = if writes_stopped.is_some() {
        "writes_stopped"
    } else if s.rt.is_stopping() {
        "stopping"
    } else if persistence_errors > 0 {
        "degraded"
    } else {
        "ok"
    };
    let body = json!({
        "status": status,
        "tick_rate": m.tick_hz,
        "ticks": m.ticks,
        "last_tick_unix_ms": m.last_tick_unix_ms,
        "last_tick_age_ms": now_ms.saturating_sub(m.last_tick_unix_ms),
        "durability": s.db.durability().map(|d| d.to_string()),
        "durable_seq": persist.as_ref().map(|p| p.durable_seq),
        "queue_len": m.queue_len,
        "persistence_errors": persistence_errors,
        "last_error": m.last_error.or_else(|| persist.as_ref().and_then(|p| p.last_error.clone())),
        "writes_stopped": writes_stopped,
        "uptime_s": s.started.elapsed().as_secs(),
    });
    let code = if status == "writes_stopped" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, Json(body)).into_response()
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    match crate::metrics::render(&s) {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::internal(format!("encoding metrics failed: {e}")).into_response(),
    }
}

pub async fn openapi(State(s): State<AppState>) -> Json<Value> {
    Json(crate::openapi::document(&s))
}

// ---- types ----

pub async fn list_types(State(s): State<AppState>) -> Json<Value> {
    let snap = s.snapshot();
    Json(Value::Array(snap.types().iter().map(|t| layout_json(t)).collect()))
}

pub async fn get_type(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let snap = s.snapshot();
    match snap.types().get_by_name(&name) {
        Some(t) => Ok(Json(layout_json(t))),
        None => Err(ApiError::from(tabledb::Error::from(tabledb::types::TypeError::UnknownType(name)))
            .with_status(StatusCode::NOT_FOUND)),
    }
}

pub async fn create_type(State(s): State<AppState>, JsonBody(def): JsonBody<TypeDef>) -> ApiResult<Response> {
    let name = def.name.clone();
    let v = s.run(Job::Ddl(Box::new(move |db| Ok(layout_json(&*db.register_type(def)?))))).await?;
    Ok(created_at(&format!("/types/{name}"), v))
}

// ---- tables ----

pub async fn list_tables(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let snap = s.snapshot();
    let tables = snap.table_names().map(|n| table_json(&snap, n)).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Value::Array(tables)))
}

pub async fn get_table(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(table_json(&s.snapshot(), &name)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTable {
    fields: Vec<FieldDef>,
}

pub async fn create_table(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<CreateTable>,
) -> ApiResult<Response> {
    let location = format!("/tables/{name}");
    let v = s
        .run(Job::Ddl(Box::new(move |db| {
            db.create_table_from_defs(&name, &body.fields)?;
            table_json(&db.snapshot(), &name)
        })))
        .await?;
    Ok(created_at(&location, v))
}

pub async fn drop_table(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    s.run(Job::Ddl(Box::new(move |db| db.drop_table(&name).map(|()| Value::Null)))).await?;
    Ok(no_content())
}

pub async fn add_field(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(field): JsonBody<FieldDef>,
) -> ApiResult<Response> {
    let location = format!("/tables/{name}/fields/{}", field.name);
    let v = s
        .run(Job::Ddl(Box::new(move |db| {
            db.add_field(&name, &field)?;
            table_json(&db.snapshot(), &name)
        })))
        .await
        // A field the table already has is taken, like a table or type name.
        .map_err(|e| if e.code == "field_exists" { e.with_status(StatusCode::CONFLICT) } else { e })?;
    Ok(created_at(&location, v))
}

pub async fn get_field(
    State(s): State<AppState>,
    Path((name, field)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let snap = s.snapshot();
    let schema = snap.schema(name.as_str())?;
    let field = schema.require_field(&field).map_err(|e| {
        // The path names the field: an unknown one is a missing resource.
        ApiError::from(tabledb::Error::from(e)).with_status(StatusCode::NOT_FOUND)
    })?;
    Ok(Json(field_json(field)))
}

pub async fn remove_field(
    State(s): State<AppState>,
    Path((name, field)): Path<(String, String)>,
) -> ApiResult<Response> {
    s.run(Job::Ddl(Box::new(move |db| db.remove_field(&name, &field).map(|()| Value::Null))))
        .await
        // The path names the field: an unknown one is a missing resource.
        .map_err(|e| if e.code == "unknown_field" { e.with_status(StatusCode::NOT_FOUND) } else { e })?;
    Ok(no_content())
}

pub async fn compact(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let v = s
        .run(Job::Ddl(Box::new(move |db| {
            db.compact_table(&name)?;
            table_json(&db.snapshot(), &name)
        })))
        .await?;
    Ok(Json(v))
}

// ---- records ----

fn object(v: Value, what: &str) -> ApiResult<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request(format!("{what} must be a JSON object of fields"))),
    }
}

/// Refuses an `id` in a body, unless it is `allowed`.
fn check_id(obj: &mut Map<String, Value>, allowed: Option<RecordId>) -> ApiResult<()> {
    match (obj.remove("id"), allowed) {
        (None, _) => Ok(()),
        (Some(v), Some(id)) if v.as_u64() == Some(id.0) => Ok(()),
        (Some(_), Some(id)) => {
            Err(ApiError::bad_request(format!("field `id` must be {id}, the id in the path, or be left out")))
        }
        (Some(_), None) => {
            Err(ApiError::bad_request("field `id` is assigned by the database and cannot be given"))
        }
    }
}

/// A refused body of a batch names the record as other batch errors do: `record 1: pos.x: ...`
/// rather than the place in the JSON, `[1].pos.x: ...`.
fn batch_position(mut e: ApiError) -> ApiError {
    if e.status == StatusCode::BAD_REQUEST
        && let Some(rest) = e.message.strip_prefix('[')
        && let Some((index, after)) = rest.split_once(']')
        && !index.is_empty()
        && index.bytes().all(|b| b.is_ascii_digit())
    {
        let after = after.strip_prefix('.').or_else(|| after.strip_prefix(": ")).unwrap_or(after);
        e.message = format!("record {index}: {after}");
    }
    e
}

pub async fn create_records(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Result<JsonBody<StrictValue>, ApiError>,
) -> ApiResult<Response> {
    let JsonBody(StrictValue(body)) = body.map_err(batch_position)?;
    let (objects, many) = match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::bad_request("the array of records is empty"));
            }
            if items.len() > MAX_RECORDS_PER_REQUEST {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("at most {MAX_RECORDS_PER_REQUEST} records per request"),
                ));
            }
            let objects = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| object(v, &format!("record {i}")))
                .collect::<ApiResult<Vec<_>>>()?;
            (objects, true)
        }
        other => (vec![object(other, "the record")?], false),
    };
    let mut objects = objects;
    for (i, obj) in objects.iter_mut().enumerate() {
        check_id(obj, None).map_err(|e| {
            if many { ApiError::bad_request(format!("record {i}: {}", e.message)) } else { e }
        })?;
    }
    // The position in the batch of the record refused, if one is: its error names it.
    let refused = Arc::new(OnceLock::new());
    let refused_in_job = Arc::clone(&refused);
    // The ids given to the records, for an error at commit that names one of them (an id that
    // is not kept, since the transaction is rolled back).
    let created_ids = Arc::new(OnceLock::new());
    let created_in_job = Arc::clone(&created_ids);
    let table = name.clone();
    let v = s
        .run_raw(Job::Write(Box::new(move |tx| {
            let schema = tx.snapshot().schema(name.as_str())?.clone();
            let mut ids = Vec::with_capacity(objects.len());
            for (i, obj) in objects.iter().enumerate() {
                let id = schema
                    .record_from_json(obj, None)
                    .map_err(tabledb::Error::from)
                    .and_then(|bytes| tx.create_record(name.as_str(), &bytes))
                    .inspect_err(|_| {
                        let _ = refused_in_job.set(i);
                    })?;
                ids.push(id);
            }
            let _ = created_in_job.set(ids.clone());
            if many {
                Ok(json!({ "ids": ids }))
            } else {
                record_json(&schema, ids[0], tx.read_record(name.as_str(), ids[0])?)
            }
        })))
        .await?
        .map_err(|e| {
            // A relation refuses the commit over one of the new records: its position, not
            // its id (which the rollback gives back), names it.
            let violation = match &e {
                ProcError::Db(tabledb::Error::Constraint { relation, record: Some((t, id)), detail })
                    if *t == table =>
                {
                    created_ids.get().and_then(|ids| ids.iter().position(|x| x == id)).map(|i| {
                        let detail = detail.strip_prefix(&format!("record {id} of `{t}` ")).unwrap_or(detail);
                        (i, relation.clone(), detail.to_owned())
                    })
                }
                _ => None,
            };
            let mut e = ApiError::from(e);
            match violation {
                Some((i, relation, detail)) if many => {
                    e.message = format!("record {i}: relation `{relation}`: {detail}");
                }
                Some((_, relation, detail)) => {
                    e.message = format!("relation `{relation}`: the record {detail}");
                }
                None if many && let Some(i) = refused.get() => {
                    e.message = format!("record {i}: {}", e.message);
                }
                None => {}
            }
            e
        })?;
    if many {
        // A batch creates no single resource: its answer lists the ids.
        return Ok(created(v));
    }
    let location = v["id"].as_u64().map(|id| format!("/tables/{table}/records/{id}"));
    Ok(match location {
        Some(location) => created_at(&location, v),
        None => created(v),
    })
}

/// Lists records. The scan runs on the blocking pool, not on an async worker, and stops at the
/// request's deadline: a costly listing is answered 408 like any request over its time.
pub async fn list_records(
    State(s): State<AppState>,
    Path(name): Path<String>,
    deadline: Option<Extension<Deadline>>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let deadline = deadline.map_or_else(|| Instant::now() + s.cfg.request_timeout, |d| d.0.0);
    let snap = s.snapshot();
    let listing = Listing::parse(snap.raw_table(name.as_str())?.schema(), &params, s.cfg.max_page_size)?;
    let state = s.clone();
    // The scan, the page and its JSON text are all made on the blocking pool, each step within
    // the deadline, so that neither an async worker nor (after a 408) the CPU stays busy with
    // a listing for long.
    let work = tokio::task::spawn_blocking(move || -> ApiResult<Vec<u8>> {
        let late = || Instant::now() >= deadline;
        let table = snap.raw_table(name.as_str())?;
        let (page, total) = listing.run(table, deadline).map_err(|_| timeout_error(&state))?;
        let mut records = Vec::with_capacity(page.len());
        for (id, rec) in page {
            if late() {
                return Err(timeout_error(&state));
            }
            records.push(record_json(table.schema(), id, rec)?);
        }
        let mut body = json!({ "records": records, "limit": listing.limit, "offset": listing.offset });
        if let Some(t) = total {
            body["total"] = json!(t);
        }
        if late() {
            return Err(timeout_error(&state));
        }
        serde_json::to_vec(&body).map_err(|e| ApiError::internal(format!("writing a listing failed: {e}")))
    });
    match work.await {
        Ok(body) => Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body?).into_response()),
        Err(e) => Err(ApiError::internal(format!("listing records failed: {e}"))),
    }
}

fn parse_id(id: &str) -> ApiResult<RecordId> {
    match parse_decimal(id) {
        Some(n) if n > 0 => Ok(RecordId(n)),
        _ => Err(ApiError::bad_request(format!(
            "{} is not a record id (a positive integer in decimal digits, without sign or leading zeros)",
            shown(id)
        ))),
    }
}

/// The quality an `Accept` header gives a media type: that of the most specific range that
/// matches it (`type/subtype`, then `type/*`, then `*/*`), 0 when none does. A range whose
/// `q` is not a number from 0 to 1 is ignored.
fn quality(accept: &str, media: &str) -> f32 {
    let (ty, _) = media.split_once('/').unwrap_or((media, ""));
    let mut best: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let Some(range_media) = parts.next().map(str::trim) else { continue };
        let specificity = if range_media.eq_ignore_ascii_case(media) {
            3
        } else if range_media.strip_suffix("/*").is_some_and(|t| t.eq_ignore_ascii_case(ty)) {
            2
        } else if range_media == "*/*" {
            1
        } else {
            continue;
        };
        let mut q = Some(1.0);
        for param in parts {
            if let Some((k, v)) = param.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q));
                break;
            }
        }
        let Some(q) = q else { continue };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

/// Whether a request's `Accept` headers prefer the raw bytes of a record
/// (`application/octet-stream`) to JSON: only when they give the bytes a higher quality. With
/// no `Accept`, an unreadable one, or one that accepts neither, the answer is JSON.
fn prefers_raw(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return false;
    }
    let accept = values.join(",");
    quality(&accept, "application/octet-stream") > quality(&accept, "application/json")
}

pub async fn get_record(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let snap = s.snapshot();
    let bytes = snap.read_record(name.as_str(), id)?;
    if prefers_raw(&headers) {
        return Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes.to_vec()).into_response());
    }
    Ok(Json(record_json(snap.schema(name.as_str())?, id, bytes)?).into_response())
}

pub async fn put_record(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    JsonBody(StrictValue(body)): JsonBody<StrictValue>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let mut obj = object(body, "the record")?;
    check_id(&mut obj, Some(id))?;
    let v = s
        .run(Job::Write(Box::new(move |tx| {
            let schema = tx.snapshot().schema(name.as_str())?.clone();
            let bytes = schema.record_from_json(&obj, None)?;
            tx.update_record(name.as_str(), id, &bytes)?;
            record_json(&schema, id, tx.read_record(name.as_str(), id)?)
        })))
        .await?;
    Ok(Json(v))
}

pub async fn patch_record(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
    JsonBody(StrictValue(body)): JsonBody<StrictValue>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let mut obj = object(body, "the fields to change")?;
    check_id(&mut obj, Some(id))?;
    let v = s
        .run(Job::Write(Box::new(move |tx| {
            let schema = tx.snapshot().schema(name.as_str())?.clone();
            // Field by field, so concurrent changes to other fields are kept.
            let mut buf = Vec::new();
            let fields: BTreeMap<&String, &Value> = obj.iter().collect();
            for (key, value) in fields {
                let field = schema.require_field(key)?;
                buf.clear();
                buf.resize(field.layout.size, 0);
                field.layout.from_json(value, &mut buf).map_err(|source| {
                    tabledb::schema::SchemaError::InvalidValue { field: key.clone(), source }
                })?;
                tx.partial_update(name.as_str(), id, key, &buf)?;
            }
            if obj.is_empty() {
                // Nothing to change, but the record must exist.
                tx.read_record(name.as_str(), id)?;
            }
            record_json(&schema, id, tx.read_record(name.as_str(), id)?)
        })))
        .await?;
    Ok(Json(v))
}

pub async fn delete_record(
    State(s): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    s.run(Job::Write(Box::new(move |tx| tx.delete_record(name.as_str(), id).map(|()| Value::Null)))).await?;
    Ok(no_content())
}

// ---- relations ----

fn relation_json(r: &tabledb::schema::Relation) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

pub async fn list_relations(State(s): State<AppState>) -> Json<Value> {
    Json(Value::Array(s.snapshot().relations().map(relation_json).collect()))
}

fn parse_relation_id(id: &str) -> ApiResult<RelationId> {
    match parse_decimal(id) {
        Some(n) if n > 0 => Ok(RelationId(n)),
        _ => Err(ApiError::bad_request(format!(
            "{} is not a relation id (a positive integer in decimal digits, without sign or leading zeros)",
            shown(id)
        ))),
    }
}

pub async fn get_relation(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = parse_relation_id(&id)?;
    let snap = s.snapshot();
    let rel = snap.relation(id).ok_or(tabledb::Error::UnknownRelation(id.0))?;
    Ok(Json(relation_json(rel)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRelation {
    name: Option<String>,
    from_table: String,
    from_field: String,
    to_table: String,
    to_field: Option<String>,
}

pub async fn create_relation(
    State(s): State<AppState>,
    JsonBody(r): JsonBody<CreateRelation>,
) -> ApiResult<Response> {
    let v = s
        .run(Job::Ddl(Box::new(move |db| {
            let to_field = r.to_field.as_deref().unwrap_or(tabledb::schema::ID_FIELD);
            let rel =
                db.create_relation(r.name.as_deref(), &r.from_table, &r.from_field, &r.to_table, to_field)?;
            Ok(relation_json(&rel))
        })))
        .await?;
    let location = v["id"].as_u64().map(|id| format!("/relations/{id}"));
    Ok(match location {
        Some(location) => created_at(&location, v),
        None => created(v),
    })
}

pub async fn drop_relation(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = parse_relation_id(&id)?;
    s.run(Job::Ddl(Box::new(move |db| db.drop_relation(id).map(|_| Value::Null)))).await?;
    Ok(no_content())
}

// ---- procedures ----

pub fn procedure_json(p: &tabledb::Procedure) -> Value {
    json!({
        "name": p.name,
        "doc": p.doc,
        "timeout_ms": p.timeout.map(|t| t.as_millis() as u64),
        "params": p.params.iter().map(|q| json!({
            "name": q.name, "type": q.type_name, "required": q.required, "schema": (q.schema)(),
        })).collect::<Vec<_>>(),
    })
}

pub async fn list_procedures(State(s): State<AppState>) -> Json<Value> {
    Json(Value::Array(s.rt.procedures().iter().map(procedure_json).collect()))
}

pub async fn call_procedure(
    State(s): State<AppState>,
    Path(name): Path<String>,
    JsonBody(StrictValue(args)): JsonBody<StrictValue>,
) -> ApiResult<Json<Value>> {
    if !args.is_object() {
        return Err(ApiError::bad_request("the parameters must be a JSON object of named parameters"));
    }
    Ok(Json(s.run(Job::Call { name, args }).await?))
}
