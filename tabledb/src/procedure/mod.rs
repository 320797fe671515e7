//! Stored procedures: typed Rust functions that run in their own transaction, callable
//! in-process and over REST.
//!
//! `#[procedure]` on `fn name(ctx: &mut ProcCtx, a: A, b: B) -> Result<R, E>` generates, in a
//! module of the same name, the parameter list (names, types, JSON schemas), a function that
//! deserializes the parameters from a JSON object (naming the parameter that is missing, extra
//! or of the wrong type), calls the function and serializes its result, and
//! `name::procedure()`, the [`Procedure`] to register in a [`ProcedureRegistry`].

mod finite;
mod params;

use std::any::Any;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub use params::ParamType;

use crate::Database;
use crate::error::Error;
use crate::schema::validate_name;
use crate::storage::snapshot::{TableRef, TableView};
use crate::table::Table;
use crate::txn::Transaction;

/// What a procedure receives: its transaction (through `Deref`, every [`Transaction`] method),
/// and its deadline.
pub struct ProcCtx<'a> {
    tx: &'a mut Transaction,
    name: &'static str,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for ProcCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcCtx").field("name", &self.name).field("deadline", &self.deadline).finish()
    }
}

impl Deref for ProcCtx<'_> {
    type Target = Transaction;
    fn deref(&self) -> &Transaction {
        self.tx
    }
}

impl DerefMut for ProcCtx<'_> {
    fn deref_mut(&mut self) -> &mut Transaction {
        self.tx
    }
}

impl<'a> ProcCtx<'a> {
    /// A context over `tx` for the procedure `name`.
    pub fn new(tx: &'a mut Transaction, name: &'static str, deadline: Option<Instant>) -> Self {
        ProcCtx { tx, name, deadline }
    }

    /// The procedure's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// When the call times out, if it has a timeout. A call that outlives it is answered with
    /// a timeout error and its transaction is discarded; long loops may check
    /// [`check_deadline`](Self::check_deadline) to stop early.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// An error once the deadline has passed.
    pub fn check_deadline(&self) -> Result<(), ProcError> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(ProcError::TimedOut { procedure: self.name.to_owned() }),
            _ => Ok(()),
        }
    }

    /// The typed handle of `T`'s table, after checking that its schema matches `T`.
    pub fn table<T: Table>(&self) -> Result<TableRef<T>, Error> {
        self.tx.snapshot().table_ref::<T>()
    }

    /// A read-only view of a typed table as of the transaction's start (for parallel
    /// reductions: `par_sum`, `par_count`, `par_reduce`, `par_iter`). The table counts as read
    /// as a whole. It does not show the transaction's own writes.
    pub fn view<T: Table>(&self, table: TableRef<T>) -> Result<TableView<'_, T>, Error> {
        let view = self.tx.snapshot().table(table)?;
        self.tx.track_scan(table.id());
        Ok(view)
    }
}

/// A parameter of a procedure.
#[derive(Debug, Clone, Copy)]
pub struct ParamInfo {
    pub name: &'static str,
    /// The Rust type, as written.
    pub type_name: &'static str,
    /// False for `Option<T>` parameters, which may be omitted.
    pub required: bool,
    /// The JSON schema of accepted values.
    pub schema: fn() -> Value,
}

/// The function generated for a procedure: parameters from a JSON object, result as JSON.
pub type Invoke = fn(&mut ProcCtx<'_>, Map<String, Value>) -> Result<Value, ProcError>;

/// The longest timeout a procedure may have (one hour, as `#[procedure(timeout_ms)]` allows):
/// a call holds its transaction open for its whole run.
pub const MAX_PROCEDURE_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// A registered procedure.
#[derive(Debug, Clone, Copy)]
pub struct Procedure {
    pub name: &'static str,
    pub params: &'static [ParamInfo],
    /// The documentation of the function.
    pub doc: &'static str,
    /// How long one call may take (from `#[procedure(timeout_ms = N)]`); the runtime's default
    /// applies otherwise. A registry accepts 1 ns to [`MAX_PROCEDURE_TIMEOUT`].
    pub timeout: Option<Duration>,
    pub invoke: Invoke,
}

impl Procedure {
    /// The parameters as a JSON schema of an object (for OpenAPI).
    pub fn params_schema(&self) -> Value {
        let properties: Map<String, Value> =
            self.params.iter().map(|p| (p.name.to_owned(), (p.schema)())).collect();
        let required: Vec<Value> =
            self.params.iter().filter(|p| p.required).map(|p| Value::from(p.name)).collect();
        let mut schema = serde_json::json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        });
        // OpenAPI 3.0 schemas may not state an empty `required` list.
        if !required.is_empty() {
            schema["required"] = Value::from(required);
        }
        schema
    }

    /// Runs one call in its own transaction on `db`, committing it (and retrying on a conflict
    /// up to `attempts` times in all). This is the in-process path without a runtime; the
    /// runtime runs calls in parallel and commits them in order.
    pub fn call(&self, db: &Database, args: Value, attempts: u32) -> Result<Value, ProcError> {
        let args = into_object(args)?;
        let mut last = None;
        for _ in 0..attempts.max(1) {
            let mut tx = db.begin();
            // A timeout too long to be represented as an instant is no deadline at all.
            let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
            let out = self.run(&mut tx, args.clone(), deadline)?;
            // Past its timeout, a call is discarded, as the runtime discards it.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ProcError::TimedOut { procedure: self.name.to_owned() });
            }
            match tx.commit() {
                Ok(_) => return Ok(out),
                Err(e) if e.is_conflict() => last = Some(e),
                Err(e) => return Err(ProcError::Db(e)),
            }
        }
        Err(ProcError::Conflict {
            procedure: self.name.to_owned(),
            detail: last.map(|e| e.to_string()).unwrap_or_default(),
        })
    }

    /// Runs the procedure's body in `tx` (without committing), catching panics and refusing
    /// nested calls.
    pub fn run(
        &self,
        tx: &mut Transaction,
        args: Map<String, Value>,
        deadline: Option<Instant>,
    ) -> Result<Value, ProcError> {
        if IN_PROCEDURE.with(Cell::get) {
            return Err(ProcError::Nested { procedure: self.name.to_owned() });
        }
        let _reset = Restore(IN_PROCEDURE.with(|f| f.replace(true)));
        let invoke = self.invoke;
        let name = self.name;
        let mut ctx = ProcCtx::new(tx, name, deadline);
        match catch_panic(|| invoke(&mut ctx, args)) {
            Ok(Err(ProcError::BadResult { detail, .. })) => {
                tracing::error!(procedure = name, %detail, "procedure returned a result that is not JSON; its transaction is discarded");
                Err(ProcError::BadResult { procedure: name.to_owned(), detail })
            }
            Ok(result) => result,
            Err(message) => {
                tracing::error!(procedure = name, panic = %message, "procedure panicked; its transaction is discarded");
                Err(ProcError::Panicked { procedure: name.to_owned() })
            }
        }
    }
}

thread_local! {
    /// Set while a procedure body runs on this thread: procedures may not call procedures.
    static IN_PROCEDURE: Cell<bool> = const { Cell::new(false) };
}

/// Puts back the flag's earlier value when dropped.
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        IN_PROCEDURE.with(|f| f.set(self.0));
    }
}

/// Runs `f` as a task of its own, outside any procedure this thread is in the middle of: a
/// worker that waits inside a procedure (in a Rayon join, as parallel iteration does) runs
/// other tasks meanwhile, which are not nested calls.
pub(crate) fn outside_procedure<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(IN_PROCEDURE.with(|c| c.replace(false)));
    f()
}

/// True while a procedure body runs on this thread.
pub fn in_procedure() -> bool {
    IN_PROCEDURE.with(Cell::get)
}

/// Runs program code, turning a panic into its message. The panic's payload is dropped here,
/// and one whose own `Drop` panics in turn is leaked rather than let that second panic out.
pub(crate) fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = panic_message(&*payload);
        if let Err(again) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload))) {
            std::mem::forget(again);
        }
        message
    })
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// The arguments of a call as a JSON object.
pub fn into_object(args: Value) -> Result<Map<String, Value>, ProcError> {
    match args {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(ProcError::BadParams {
            param: String::new(),
            message: "the parameters must be a JSON object of named parameters".into(),
        }),
    }
}

/// Why a procedure call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcError {
    #[error("unknown procedure {}", crate::schema::shown(.0))]
    NotFound(String),
    #[error("{}{message}", if param.is_empty() { String::new() } else { format!("parameter `{param}`: ") })]
    BadParams { param: String, message: String },
    /// The procedure returned an error of its own.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Db(Error),
    #[error("procedure `{procedure}` conflicted with concurrent changes on every attempt: {detail}")]
    Conflict { procedure: String, detail: String },
    #[error("procedure `{procedure}` panicked; its transaction was discarded")]
    Panicked { procedure: String },
    /// The procedure's result cannot be sent as JSON (a float that is NaN or infinite, a map
    /// whose keys are not strings or numbers): a mistake in the program, like a panic.
    #[error(
        "procedure `{procedure}` returned a result that is not JSON ({detail}); its transaction was discarded"
    )]
    BadResult { procedure: String, detail: String },
    #[error("procedure `{procedure}` timed out; its transaction was discarded")]
    TimedOut { procedure: String },
    /// A procedure called from inside another. The rule is checked on the threads that run
    /// procedures: a call made from a thread the procedure starts itself is not caught.
    #[error("procedure `{procedure}` cannot be called from inside a procedure")]
    Nested { procedure: String },
    #[error("the request queue is full; retry later")]
    Overloaded,
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// A procedure could not be registered.
    #[error("{0}")]
    Registration(String),
}

impl From<Error> for ProcError {
    fn from(e: Error) -> Self {
        ProcError::Db(e)
    }
}

/// Helpers for code generated by `#[procedure]`; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use serde_json::{Map, Value};

    use super::{ParamType, ProcError};

    /// Reads parameter `name` (see [`ParamType::from_json`]), or names what is wrong with it.
    pub fn param<T: ParamType>(
        args: &mut Map<String, Value>,
        name: &'static str,
        required: bool,
    ) -> Result<T, ProcError> {
        let value = match args.remove(name) {
            Some(v) => v,
            None if required => {
                return Err(ProcError::BadParams { param: name.to_owned(), message: "is required".into() });
            }
            None => Value::Null,
        };
        T::from_json(value).map_err(|message| ProcError::BadParams { param: name.to_owned(), message })
    }

    /// Refuses parameters that the procedure does not take.
    pub fn no_extra(args: &Map<String, Value>) -> Result<(), ProcError> {
        match args.keys().next() {
            Some(extra) => Err(ProcError::BadParams {
                param: extra.clone(),
                message: "is not a parameter of this procedure".into(),
            }),
            None => Ok(()),
        }
    }

    /// The procedure's result as JSON.
    ///
    /// A result that is not JSON is [`ProcError::BadResult`] (its procedure's name is filled
    /// in by [`Procedure::run`](super::Procedure::run)): `serde_json` would turn a NaN or
    /// infinite float into `null`, so those are looked for first.
    pub fn result<R: serde::Serialize>(r: R) -> Result<Value, ProcError> {
        let bad = |detail: String| ProcError::BadResult { procedure: String::new(), detail };
        super::finite::check(&r).map_err(|e| bad(e.to_string()))?;
        serde_json::to_value(r).map_err(|e| bad(e.to_string()))
    }

    /// The procedure's own error: a database error keeps its kind (so conflicts are retried and
    /// not-found stays not-found); anything else is reported by its message.
    pub fn error<E: std::fmt::Display + 'static>(e: E) -> ProcError {
        let any: &dyn std::any::Any = &e;
        if let Some(db) = any.downcast_ref::<crate::Error>() {
            return ProcError::Db(db.clone());
        }
        if let Some(p) = any.downcast_ref::<ProcError>() {
            return p.clone();
        }
        ProcError::Failed(e.to_string())
    }
}

/// The procedures a program offers, by name.
#[derive(Debug, Clone, Default)]
pub struct ProcedureRegistry {
    procedures: BTreeMap<&'static str, Procedure>,
}

/// The most procedures a registry holds.
pub const MAX_PROCEDURES: usize = 4096;

impl ProcedureRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a procedure; refused when the name breaks the name rule or is taken.
    pub fn register(&mut self, procedure: Procedure) -> Result<(), ProcError> {
        validate_name(procedure.name)
            .map_err(|e| ProcError::Registration(format!("procedure name `{}`: {e}", procedure.name)))?;
        if self.procedures.contains_key(procedure.name) {
            return Err(ProcError::Registration(format!(
                "procedure `{}` is already registered",
                procedure.name
            )));
        }
        if let Some(t) = procedure.timeout
            && (t.is_zero() || t > MAX_PROCEDURE_TIMEOUT)
        {
            return Err(ProcError::Registration(format!(
                "procedure `{}`: timeout {t:?} is outside 1ns..={MAX_PROCEDURE_TIMEOUT:?}",
                procedure.name
            )));
        }
        if self.procedures.len() >= MAX_PROCEDURES {
            return Err(ProcError::Registration(format!("at most {MAX_PROCEDURES} procedures")));
        }
        self.procedures.insert(procedure.name, procedure);
        Ok(())
    }

    /// Registers a procedure, builder style.
    pub fn with(mut self, procedure: Procedure) -> Result<Self, ProcError> {
        self.register(procedure)?;
        Ok(self)
    }

    /// The procedure with this name.
    pub fn get(&self, name: &str) -> Result<&Procedure, ProcError> {
        self.procedures.get(name).ok_or_else(|| ProcError::NotFound(name.to_owned()))
    }

    /// Every procedure, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Procedure> {
        self.procedures.values()
    }

    pub fn len(&self) -> usize {
        self.procedures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procedures.is_empty()
    }
}
