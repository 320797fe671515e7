//! `crate = "path"`: tabledb reached through a re-export instead of as a direct dependency.

mod reexport {
    pub use ::tabledb as db;
}

#[tabledb::procedure(crate = "crate::reexport::db")]
fn double(ctx: &mut tabledb::ProcCtx<'_>, value: i32) -> Result<i32, tabledb::Error> {
    let _ = ctx;
    Ok(value * 2)
}

fn main() {
    assert_eq!(double::PARAMS[0].name, "value");
    let out = double::procedure().call(&tabledb::Database::new(), r#"{"value": 21}"#.parse().unwrap(), 1);
    assert_eq!(out.unwrap().to_string(), "42");
}
