use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn greet(ctx: &mut ProcCtx<'_>, name: &str) -> Result<String, tabledb::Error> {
    let _ = ctx;
    Ok(format!("hello {name}"))
}

fn main() {}
