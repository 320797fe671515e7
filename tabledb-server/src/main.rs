//! `tabledb-server`: see `tabledb-server --help`.

/// mimalloc: a commit frees on the tick thread what a worker allocated while running the
/// transaction, and requests allocate on one runtime thread and free on another; mimalloc's
/// per-thread heaps keep that cheap (about 2.7× the procedure calls per second of the system
/// allocator in `tabledb-bench procedures`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tabledb_server::main_with(tabledb::ProcedureRegistry::new())
}
