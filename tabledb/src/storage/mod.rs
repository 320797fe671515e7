//! Storage: records in copy-on-write pages, pages in persistent trees, trees in snapshots.

pub(crate) mod block;
pub(crate) mod iter;
pub(crate) mod page;
pub(crate) mod reclaim;
pub(crate) mod snapshot;
pub(crate) mod table_data;
pub(crate) mod tree;

pub use block::counters;
pub use iter::{Iter, PageRecords, PageView, ParPages, RawIter, TypedPage};
pub use snapshot::{Catalog, RawTableView, Snapshot, TableKey, TableRef, TableView};
