//! The REST server with procedures: `tabledb_server::main_with` runs exactly what the
//! `tabledb-server` binary runs (same options, same routes), with these procedures at
//! `POST /rpc/{name}`, listed at `GET /rpc` and described in `/openapi.json`.
//!
//! ```text
//! cargo run --example server_with_procedures -- --port 7878
//! curl -s -X POST localhost:7878/rpc/add -H 'content-type: application/json' -d '{"a": 2, "b": 3}'
//! ```
//!
//! The procedures are written out by hand here (`#[tabledb::procedure]` generates the same);
//! `crash` panics on purpose, to show that the client then gets a generic 500 carrying the
//! request id while the panic is only logged.

use std::process::ExitCode;

use serde_json::{Map, Value, json};
use tabledb::procedure::{ParamInfo, ParamType};
use tabledb::{ProcCtx, ProcError, Procedure, ProcedureRegistry};

/// Takes parameter `name` out of `args`, or names what is wrong with it.
fn param<T: ParamType>(args: &mut Map<String, Value>, name: &str) -> Result<T, ProcError> {
    let value = args
        .remove(name)
        .ok_or_else(|| ProcError::BadParams { param: name.to_owned(), message: "is required".into() })?;
    serde_json::from_value(value)
        .map_err(|e| ProcError::BadParams { param: name.to_owned(), message: e.to_string() })
}

/// Refuses parameters that a procedure does not take.
fn no_extra(args: &Map<String, Value>) -> Result<(), ProcError> {
    match args.keys().next() {
        Some(extra) => Err(ProcError::BadParams {
            param: extra.clone(),
            message: "is not a parameter of this procedure".into(),
        }),
        None => Ok(()),
    }
}

fn info<T: ParamType>(name: &'static str) -> ParamInfo {
    ParamInfo { name, type_name: std::any::type_name::<T>(), required: T::REQUIRED, schema: T::json_schema }
}

fn add(_ctx: &mut ProcCtx<'_>, mut args: Map<String, Value>) -> Result<Value, ProcError> {
    let a: i64 = param(&mut args, "a")?;
    let b: i64 = param(&mut args, "b")?;
    no_extra(&args)?;
    let sum = a.checked_add(b).ok_or_else(|| ProcError::Failed(format!("{a} + {b} overflows")))?;
    Ok(json!(sum))
}

fn insert_record(ctx: &mut ProcCtx<'_>, mut args: Map<String, Value>) -> Result<Value, ProcError> {
    let table: String = param(&mut args, "table")?;
    let record: Value = param(&mut args, "record")?;
    no_extra(&args)?;
    let Value::Object(fields) = record else {
        return Err(ProcError::BadParams { param: "record".into(), message: "must be a JSON object".into() });
    };
    let schema = ctx.snapshot().schema(table.as_str())?.clone();
    let bytes = schema.record_from_json(&fields, None).map_err(|e| ProcError::Db(e.into()))?;
    let id = ctx.create_record(table.as_str(), &bytes)?;
    Ok(json!({ "id": id.0 }))
}

fn fail(_ctx: &mut ProcCtx<'_>, mut args: Map<String, Value>) -> Result<Value, ProcError> {
    let message: String = param(&mut args, "message")?;
    no_extra(&args)?;
    Err(ProcError::Failed(message))
}

fn crash(_ctx: &mut ProcCtx<'_>, args: Map<String, Value>) -> Result<Value, ProcError> {
    no_extra(&args)?;
    panic!("crash was called (this text stays in the server's log)");
}

fn procedures() -> Result<ProcedureRegistry, ProcError> {
    static ADD: std::sync::OnceLock<[ParamInfo; 2]> = std::sync::OnceLock::new();
    static INSERT: std::sync::OnceLock<[ParamInfo; 2]> = std::sync::OnceLock::new();
    static FAIL: std::sync::OnceLock<[ParamInfo; 1]> = std::sync::OnceLock::new();
    let add_params = ADD.get_or_init(|| [info::<i64>("a"), info::<i64>("b")]);
    let insert_params = INSERT.get_or_init(|| [info::<String>("table"), info::<Value>("record")]);
    let fail_params = FAIL.get_or_init(|| [info::<String>("message")]);
    ProcedureRegistry::new()
        .with(Procedure {
            name: "add",
            params: add_params,
            doc: "Adds two integers.",
            timeout: None,
            invoke: add,
        })?
        .with(Procedure {
            name: "insert_record",
            params: insert_params,
            doc: "Inserts a record (a JSON object of fields) into a table; returns its id.",
            timeout: None,
            invoke: insert_record,
        })?
        .with(Procedure {
            name: "fail",
            params: fail_params,
            doc: "Fails with the given message.",
            timeout: None,
            invoke: fail,
        })?
        .with(Procedure { name: "crash", params: &[], doc: "Panics.", timeout: None, invoke: crash })
}

fn main() -> ExitCode {
    match procedures() {
        Ok(registry) => tabledb_server::main_with(registry),
        Err(e) => {
            eprintln!("server_with_procedures: {e}");
            ExitCode::FAILURE
        }
    }
}
