//! `tabledb-server`: see `tabledb-server --help`.

fn main() -> std::process::ExitCode {
    tabledb_server::main_with(tabledb::ProcedureRegistry::new())
}
