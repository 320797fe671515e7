//! tabledb: an in-memory database of fixed-size records for programs that run on a fixed tick.
//!
//! Declare a table with `#[derive(Table)]` on a `#[repr(C)]` struct; its layout is checked at
//! compile time and its records are read without copying.
//!
//! ```
//! use tabledb::Table;
//!
//! #[derive(Table, Clone, Copy, Debug)]
//! #[repr(C)]
//! struct Player {
//!     x: f32,
//!     y: f32,
//!     hp: u32,
//!     level: u32,
//! }
//!
//! assert_eq!(Player::RECORD_SIZE, 16);
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(target_endian = "big")]
compile_error!("tabledb stores records in little-endian byte order and supports little-endian targets only");

mod config;
mod db;
mod error;
mod ids;
pub mod persist;
pub mod procedure;
mod relations;
pub mod runtime;
pub mod schema;
mod stats;
pub mod storage;
mod table;
pub mod txn;
pub mod types;

pub use config::Config;
pub use db::Database;
pub use error::{Error, ErrorKind, Result};
pub use ids::{CommitSeq, RecordId, TableId};
pub use persist::{Durability, PersistOptions};
pub use procedure::{ProcCtx, ProcError, Procedure, ProcedureRegistry};
pub use runtime::{Runtime, RuntimeConfig, RuntimeHandle};
pub use stats::StatsSnapshot;
pub use storage::{RawTableView, Snapshot, TableKey, TableRef, TableView};
pub use table::{FieldDesc, FieldHandle, Table, ViewError};
pub use tabledb_derive::{FieldType, Table};
// The attribute macro lives in the macro namespace, the module `procedure` in the type
// namespace: `tabledb::procedure` names both, and `use tabledb::procedure;` imports both.
pub use tabledb_derive::procedure;
pub use txn::{CommitInfo, Transaction};
pub use types::FixedStr;

/// Items used by generated code; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use core;
    pub use serde;
    pub use serde_json;
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
