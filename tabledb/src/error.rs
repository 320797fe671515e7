//! The errors of tabledb.

use crate::ids::RecordId;
use crate::schema::SchemaError;
use crate::types::TypeError;

/// Everything that can go wrong in a database operation. Every error leaves the database as it
/// was.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("unknown table {}", crate::schema::shown(.0))]
    UnknownTable(String),
    #[error("table `{0}` already exists")]
    TableExists(String),
    #[error("no record {id} in table `{table}`")]
    RecordNotFound { table: String, id: RecordId },
    #[error("table `{table}` does not match the type `{type_name}`: {detail}")]
    SchemaMismatch { table: String, type_name: &'static str, detail: String },
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Type(#[from] TypeError),
    #[error("transaction conflict on table `{table}`{}: {reason}", id.map(|i| format!(", record {i}")).unwrap_or_default())]
    Conflict { table: String, id: Option<RecordId>, reason: &'static str },
    #[error("{what} limit reached: {limit}")]
    LimitReached { what: &'static str, limit: u64 },
    #[error("unknown relation {0}")]
    UnknownRelation(u64),
    /// A relation refused a change. `record` is the table and id of the referring record
    /// the violation is about, when it is about one (a reference that points nowhere, or one
    /// to a target the change removes); `detail` says what is wrong, naming that record too.
    #[error("relation `{relation}`: {detail}")]
    Constraint { relation: String, record: Option<(String, RecordId)>, detail: String },
    #[error("{0}")]
    Persistence(String),
    #[error("the database is read-only after a write failure: {0}")]
    WritesStopped(String),
    #[error("the transaction was begun on another database")]
    ForeignTransaction,
}

/// What kind of failure an error is, for callers that map errors to statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is wrong: a bad name, type, value or size.
    BadInput,
    /// What the request names does not exist.
    NotFound,
    /// The request clashes with the current state: a concurrent change, a taken name, a
    /// constraint.
    Conflict,
    /// A configured limit was reached.
    Limit,
    /// The database cannot accept writes now.
    Unavailable,
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::UnknownTable(_) | Error::RecordNotFound { .. } | Error::UnknownRelation(_) => {
                ErrorKind::NotFound
            }
            Error::Schema(SchemaError::UnknownField { .. }) => ErrorKind::BadInput,
            Error::Type(TypeError::DuplicateType(_)) => ErrorKind::Conflict,
            Error::TableExists(_)
            | Error::Conflict { .. }
            | Error::Constraint { .. }
            | Error::SchemaMismatch { .. } => ErrorKind::Conflict,
            Error::Schema(_) | Error::Type(_) | Error::ForeignTransaction => ErrorKind::BadInput,
            Error::LimitReached { .. } => ErrorKind::Limit,
            Error::Persistence(_) | Error::WritesStopped(_) => ErrorKind::Unavailable,
        }
    }

    /// A short stable code naming the error, for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownTable(_) => "unknown_table",
            Error::TableExists(_) => "table_exists",
            Error::RecordNotFound { .. } => "record_not_found",
            Error::SchemaMismatch { .. } => "schema_mismatch",
            Error::Schema(SchemaError::UnknownField { .. }) => "unknown_field",
            Error::Schema(SchemaError::InvalidValue { .. } | SchemaError::NonZeroPadding { .. }) => {
                "invalid_value"
            }
            Error::Schema(SchemaError::MissingField { .. }) => "missing_field",
            Error::Schema(SchemaError::RecordSize { .. }) => "invalid_record",
            Error::Schema(SchemaError::InvalidName { .. }) => "invalid_name",
            Error::Schema(SchemaError::DuplicateField { .. }) => "field_exists",
            Error::Schema(_) => "invalid_schema",
            Error::Type(TypeError::UnknownType(_)) => "unknown_type",
            Error::Type(TypeError::DuplicateType(_)) => "type_exists",
            Error::Type(_) => "invalid_type",
            Error::Conflict { .. } => "conflict",
            Error::LimitReached { .. } => "limit_reached",
            Error::UnknownRelation(_) => "unknown_relation",
            Error::Constraint { .. } => "constraint_violation",
            Error::Persistence(_) => "persistence_error",
            Error::WritesStopped(_) => "writes_stopped",
            Error::ForeignTransaction => "foreign_transaction",
        }
    }

    /// True for a conflict that a retry of the whole transaction may resolve.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

/// The result of a database operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
