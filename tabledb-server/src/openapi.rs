//! `/openapi.json`: an OpenAPI 3 description of every route, generated from the routes, the
//! current tables (their record schemas) and the registered procedures (their parameters).

use serde_json::{Map, Value, json};
use tabledb::types::{MAX_ARRAY_DEPTH, MAX_TYPE_NAME_LEN, Primitive, TypeKind, TypeLayout};

use crate::query::{MAX_FILTERS, MAX_IN_VALUES};
use crate::state::AppState;

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// A 201 response whose `Location` header is the created resource's path.
fn created_response(description: &str, schema: Value, location: &str) -> Value {
    let mut r = json_response(description, schema);
    r["headers"] = json!({ "Location": { "description": location, "schema": { "type": "string" } } });
    r
}

fn errors(statuses: &[(&str, &str)]) -> Map<String, Value> {
    statuses.iter().map(|(code, d)| ((*code).to_owned(), error_response(d))).collect()
}

fn op(
    summary: &str,
    tag: &str,
    ok: (&str, Value),
    fails: &[(&str, &str)],
    body: Option<Value>,
    params: Vec<Value>,
) -> Value {
    let mut responses = errors(fails);
    responses.insert(ok.0.to_owned(), ok.1);
    responses.insert("401".into(), error_response("A missing or unknown API key"));
    responses.insert("429".into(), error_response("Rate limit exceeded"));
    responses.insert("500".into(), error_response("Internal error; the message carries the request id"));
    if body.is_some() {
        // Every operation that reads a JSON body checks its size and type first.
        responses.entry("413").or_insert_with(|| error_response("Body over the size limit"));
        responses.entry("415").or_insert_with(|| error_response("Body is not JSON"));
    }
    let mut o = json!({ "summary": summary, "tags": [tag], "responses": responses });
    if let Some(b) = body {
        o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": b } } });
    }
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    o
}

/// An operation that needs no API key: no 401.
fn op_open(mut o: Value) -> Value {
    if let Some(r) = o["responses"].as_object_mut() {
        r.remove("401");
    }
    o
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// The JSON schema of a value of a type.
fn type_schema(t: &TypeLayout) -> Value {
    match &t.kind {
        TypeKind::Primitive(Primitive::Bool) => json!({ "type": "boolean" }),
        TypeKind::Primitive(Primitive::F32 | Primitive::F64) => json!({ "type": "number" }),
        TypeKind::Primitive(p) => json!({ "type": "integer", "format": p.name() }),
        // The capacity counts bytes of UTF-8, which JSON Schema's `maxLength` (characters)
        // cannot state: it is given in the description and as `x-max-bytes`.
        TypeKind::Str { capacity } => json!({
            "type": "string",
            "description": format!("at most {capacity} bytes of UTF-8 (a character takes 1 to 4)"),
            "x-max-bytes": capacity,
        }),
        TypeKind::Array { elem, len } => {
            json!({ "type": "array", "items": type_schema(elem), "minItems": len, "maxItems": len })
        }
        TypeKind::Composite { members } => {
            let props: Map<String, Value> =
                members.iter().map(|m| (m.name.clone(), type_schema(&m.layout))).collect();
            json!({ "type": "object", "properties": props, "required": members.iter().map(|m| m.name.clone()).collect::<Vec<_>>() })
        }
    }
}

/// The responses every operation may get from the layers around the handlers: 400 for a query
/// parameter (on every route but the listing of records, `/health` and `/metrics`), 408 past the
/// request timeout (a listing's scan, a write or a call that takes longer; a write may still
/// be applied), and, as configured, 401 (with API keys), 403 (a read-only key on a write) and
/// 429 (with a rate limit).
fn document_access(paths: &mut Map<String, Value>, s: &AppState) {
    let keys = !s.cfg.api_keys.is_empty();
    let rate_limited = s.cfg.rate_limit > 0;
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            let Some(responses) = operation["responses"].as_object_mut() else { continue };
            // The listing reads its parameters; health checks and scrapers may add their own.
            let takes_query = (path == "/tables/{name}/records" && method == "get")
                || matches!(path.as_str(), "/health" | "/metrics");
            if !takes_query && !responses.contains_key("400") {
                responses.insert(
                    "400".into(),
                    error_response("A query parameter: only the listing of records takes any"),
                );
            }
            responses.insert(
                "408".into(),
                error_response(if path.starts_with("/rpc/") {
                    "The request took longer than the request timeout (which a procedure whose own timeout is longer can reach); its writes may still be applied"
                } else {
                    "The request took longer than the request timeout; a write may still be applied"
                }),
            );
            if !keys || path == "/health" {
                responses.remove("401");
            } else if !matches!(method.as_str(), "get" | "head" | "options") {
                responses.insert("403".into(), error_response("The API key may only read"));
            }
            if !rate_limited {
                responses.remove("429");
            }
        }
    }
}

/// The whole document.
pub fn document(s: &AppState) -> Value {
    let snap = s.snapshot();
    let err4 = [("400", "Bad input; the message names what is wrong"), ("404", "Unknown table or record")];
    let err4_relation = [("400", "Bad input; the message names what is wrong"), ("404", "Unknown relation")];
    let write_fails = [
        ("400", "Bad input; the message names the field"),
        ("404", "Unknown table or record"),
        ("409", "A conflict, a relation violated, or a name that is taken"),
        ("413", "Body over the size limit"),
        ("415", "Body is not JSON"),
        ("503", "The request queue is full (see Retry-After)"),
    ];
    // Writes that store more: they can reach a limit of the database.
    let limit = (
        "422",
        "A limit of the database reached (tables, fields of a table, types, relations, records per table, database bytes, bytes of one commit)",
    );
    let grow_fails: Vec<(&str, &str)> = write_fails.iter().copied().chain([limit]).collect();
    let grow_fails = grow_fails.as_slice();
    let mut paths = Map::new();
    paths.insert(
        "/health".into(),
        json!({ "get": op_open(op("Health: tick rate, last tick, durability, persistence errors", "meta", ("200", json_response("Health", json!({"type": "object"}))), &[("503", "Writes are stopped")], None, vec![])) }),
    );
    paths.insert(
        "/metrics".into(),
        json!({ "get": op("Prometheus metrics", "meta", ("200", json!({ "description": "Prometheus text", "content": { "text/plain": { "schema": { "type": "string" } } } })), &[], None, vec![]) }),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({ "get": op("This document", "meta", ("200", json_response("OpenAPI 3", json!({"type": "object"}))), &[], None, vec![]) }),
    );
    paths.insert(
        "/types".into(),
        json!({
            "get": op("List types", "types", ("200", json_response("Types", json!({"type": "array", "items": {"type": "object"}}))), &[], None, vec![]),
            "post": op("Register a composite type", "types", ("201", created_response("The type", json!({"type": "object"}), "`/types/{name}`")), grow_fails, Some(json!({ "$ref": "#/components/schemas/TypeDef" })), vec![]),
        }),
    );
    paths.insert(
        "/types/{name}".into(),
        json!({ "get": op("A type (built in, a string or array a field uses, or registered)", "types", ("200", json_response("The type", json!({"type": "object"}))), &[("400", "Bad input; the message names what is wrong"), ("404", "Unknown type")], None, vec![path_param("name", "Type name")]) }),
    );
    paths.insert(
        "/tables".into(),
        json!({ "get": op("List tables", "tables", ("200", json_response("Tables", json!({"type": "array", "items": { "$ref": "#/components/schemas/Table" }}))), &[], None, vec![]) }),
    );
    let name = || path_param("name", "Table name");
    paths.insert(
        "/tables/{name}".into(),
        json!({
            "get": op("A table's schema", "tables", ("200", json_response("The table", json!({ "$ref": "#/components/schemas/Table" }))), &err4, None, vec![name()]),
            "post": op("Create a table", "tables", ("201", created_response("The table", json!({ "$ref": "#/components/schemas/Table" }), "`/tables/{name}`")), grow_fails, Some(json!({ "type": "object", "properties": { "fields": { "type": "array", "items": { "$ref": "#/components/schemas/FieldDef" } } }, "required": ["fields"] })), vec![name()]),
            "delete": op("Drop a table", "tables", ("204", json!({ "description": "Dropped" })), &write_fails, None, vec![name()]),
        }),
    );
    paths.insert(
        "/tables/{name}/fields".into(),
        json!({ "post": op("Add a field (records are rewritten, the field zeroed)", "tables", ("201", created_response("The table", json!({ "$ref": "#/components/schemas/Table" }), "`/tables/{name}/fields/{field}`")), grow_fails, Some(json!({ "$ref": "#/components/schemas/FieldDef" })), vec![name()]) }),
    );
    paths.insert(
        "/tables/{name}/fields/{field}".into(),
        json!({
            "get": op("A field of a table", "tables", ("200", json_response("The field", json!({ "type": "object" }))), &[("400", "Bad input; the message names what is wrong"), ("404", "Unknown table or field")], None, vec![name(), path_param("field", "Field name")]),
            "delete": op("Remove a field", "tables", ("204", json!({ "description": "Removed" })), &write_fails, None, vec![name(), path_param("field", "Field name")]),
        }),
    );
    paths.insert(
        "/tables/{name}/compact".into(),
        json!({ "post": op("Drop deleted records (ids are kept)", "tables", ("200", json_response("The table", json!({ "$ref": "#/components/schemas/Table" }))), &write_fails, None, vec![name()]) }),
    );
    let list_params = vec![
        name(),
        query_param(
            "limit",
            "Records per page (at most the server's maximum page size)",
            json!({ "type": "integer", "minimum": 0 }),
        ),
        query_param("offset", "Records to skip", json!({ "type": "integer", "minimum": 0 })),
        query_param(
            "order",
            "`field.asc` or `field.desc` (also `id`); NaN sorts after every number",
            json!({ "type": "string" }),
        ),
        query_param("count", "`true` to include the total number of matches", json!({ "type": "boolean" })),
        json!({ "name": "filters", "in": "query", "required": false, "style": "form", "explode": true,
                "description": format!("`field=op.value` with op one of eq, neq, lt, lte, gt, gte, or `field=in.(a,b)`; at most {MAX_FILTERS} filters, and {MAX_IN_VALUES} values in one `in`"),
                "schema": { "type": "object", "additionalProperties": { "type": "string" } } }),
    ];
    paths.insert(
        "/tables/{name}/records".into(),
        json!({
            "get": op("List records", "records", ("200", json_response("A page of records", json!({ "type": "object", "properties": { "records": { "type": "array", "items": { "type": "object" } }, "total": { "type": "integer" }, "limit": { "type": "integer" }, "offset": { "type": "integer" } } }))), &err4, None, list_params),
            "post": op("Create a record (an object) or records in one transaction (an array)", "records", ("201", created_response("The stored record, or {\"ids\": [...]}", json!({ "type": "object" }), "`/tables/{name}/records/{id}` of the record created; none for an array")), grow_fails, Some(json!({ "oneOf": [ { "type": "object" }, { "type": "array", "items": { "type": "object" } } ] })), vec![name()]),
        }),
    );
    let rid = || path_param("id", "Record id");
    paths.insert(
        "/tables/{name}/records/{id}".into(),
        json!({
            "get": op("A record (JSON, or raw bytes with Accept: application/octet-stream)", "records", ("200", json!({ "description": "The record", "content": { "application/json": { "schema": { "type": "object" } }, "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } })), &err4, None, vec![name(), rid()]),
            "put": op("Replace a record (every field)", "records", ("200", json_response("The record", json!({ "type": "object" }))), grow_fails, Some(json!({ "type": "object" })), vec![name(), rid()]),
            "patch": op("Change some fields of a record", "records", ("200", json_response("The record", json!({ "type": "object" }))), grow_fails, Some(json!({ "type": "object" })), vec![name(), rid()]),
            "delete": op("Delete a record", "records", ("204", json!({ "description": "Deleted" })), &write_fails, None, vec![name(), rid()]),
        }),
    );
    paths.insert(
        "/relations".into(),
        json!({
            "get": op("List relations", "relations", ("200", json_response("Relations", json!({ "type": "array", "items": { "$ref": "#/components/schemas/Relation" } }))), &[], None, vec![]),
            "post": op("Create a relation (enforced on every write)", "relations", ("201", created_response("The relation", json!({ "$ref": "#/components/schemas/Relation" }), "`/relations/{id}`")), grow_fails, Some(json!({ "type": "object", "properties": { "name": { "type": "string" }, "from_table": { "type": "string" }, "from_field": { "type": "string" }, "to_table": { "type": "string" }, "to_field": { "type": "string", "description": "omitted: the target's id" } }, "required": ["from_table", "from_field", "to_table"] })), vec![]),
        }),
    );
    paths.insert(
        "/relations/{id}".into(),
        json!({
            "get": op("A relation", "relations", ("200", json_response("The relation", json!({ "$ref": "#/components/schemas/Relation" }))), &err4_relation, None, vec![path_param("id", "Relation id")]),
            "delete": op("Drop a relation", "relations", ("204", json!({ "description": "Dropped" })), &write_fails, None, vec![path_param("id", "Relation id")]),
        }),
    );
    paths.insert(
        "/rpc".into(),
        json!({ "get": op("List procedures and their parameters", "procedures", ("200", json_response("Procedures", json!({ "type": "array", "items": { "type": "object" } }))), &[], None, vec![]) }),
    );
    for p in s.rt.procedures().iter() {
        let summary = if p.doc.is_empty() {
            format!("Call `{}`", p.name)
        } else {
            p.doc.lines().next().unwrap_or_default().trim().to_owned()
        };
        let fails = [
            ("400", "A missing, extra or wrongly typed parameter (named)"),
            ("404", "Unknown procedure"),
            ("409", "Conflicted on every attempt"),
            ("422", "The procedure returned an error, or a limit of the database was reached"),
            ("503", "The request queue is full (see Retry-After)"),
            ("504", "The call ran over the procedure's timeout"),
        ];
        paths.insert(
            format!("/rpc/{}", p.name),
            json!({ "post": op(&summary, "procedures", ("200", json_response("The result", json!({}))), &fails, Some(p.params_schema()), vec![]) }),
        );
    }
    let mut schemas: Map<String, Value> = serde_json::from_value(json!({
        "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": { "code": { "type": "string" }, "message": { "type": "string" } }, "required": ["code", "message"] } }, "required": ["error"] },
        "FieldDef": { "type": "object", "properties": { "name": { "type": "string", "pattern": "^[a-z_][a-z0-9_]{0,62}$" }, "type": { "type": "string", "maxLength": MAX_TYPE_NAME_LEN, "description": format!("i8..u64, f32, f64, bool, string, string(N), T[N] (arrays nested at most {MAX_ARRAY_DEPTH} deep), or a registered type") }, "max_len": { "type": "integer", "description": "capacity of a string in bytes (default 256)" } }, "required": ["name", "type"] },
        "TypeDef": { "type": "object", "properties": { "name": { "type": "string" }, "fields": { "type": "array", "items": { "$ref": "#/components/schemas/FieldDef" } } }, "required": ["name", "fields"] },
        "Table": { "type": "object", "properties": { "name": { "type": "string" }, "id": { "type": "integer" }, "record_size": { "type": "integer" }, "records": { "type": "integer" }, "fields": { "type": "array", "items": { "type": "object" } } } },
        "Relation": { "type": "object", "properties": { "id": { "type": "integer" }, "name": { "type": "string" }, "from_table": { "type": "string" }, "from_field": { "type": "string" }, "to_table": { "type": "string" }, "to_field": { "type": "string" } } },
    }))
    .unwrap_or_default();
    for table in snap.table_names() {
        if let Ok(schema) = snap.schema(table) {
            let mut props: Map<String, Value> = Map::new();
            props.insert("id".into(), json!({ "type": "integer", "readOnly": true }));
            for f in &schema.fields {
                props.insert(f.name.clone(), type_schema(&f.layout));
            }
            schemas.insert(
                format!("record_{table}"),
                json!({ "type": "object", "properties": props, "required": schema.fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>() }),
            );
        }
    }
    document_access(&mut paths, s);
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": { "title": "tabledb", "version": env!("CARGO_PKG_VERSION"), "description": "Tables of fixed-size records, relations and stored procedures over REST." },
        "paths": paths,
        "components": { "schemas": schemas },
    });
    if !s.cfg.api_keys.is_empty() {
        doc["components"]["securitySchemes"] = json!({ "bearer": { "type": "http", "scheme": "bearer" } });
        doc["security"] = json!([{ "bearer": [] }]);
        // `/health` stays open.
        doc["paths"]["/health"]["get"]["security"] = json!([]);
    }
    doc
}
