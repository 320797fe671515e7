//! Database configuration: the limits on everything that grows.

/// Limits and tuning of a database. Every limit is checked before a change is made; reaching
/// one is an [`Error::LimitReached`](crate::Error::LimitReached) that changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Live records one table may hold.
    pub max_records_per_table: u64,
    /// Bytes of stored record slots over all tables (`slots * record_size`): live and
    /// soft-deleted records, and the zeroed slots of ids handed to transactions that did not
    /// commit, below a committed id of the same page. Compaction drops all but the live ones.
    pub max_database_bytes: u64,
    /// Tables a database may hold.
    pub max_tables: usize,
    /// Point reads a transaction tracks before it tracks whole tables instead (which is
    /// coarser: any change to such a table conflicts).
    pub max_read_set: usize,
    /// Relations a database may hold.
    pub max_relations: usize,
    /// Composite types a database may hold.
    pub max_types: usize,
    /// Fields one table may have.
    pub max_fields_per_table: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_records_per_table: 1 << 30,
            max_database_bytes: 16 << 30,
            max_tables: 1024,
            max_read_set: 1 << 20,
            max_relations: 1024,
            max_types: 1024,
            max_fields_per_table: 1024,
        }
    }
}
