use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn add(ctx: &mut ProcCtx<'_>, (a, b): (i32, i32)) -> Result<i32, tabledb::Error> {
    let _ = ctx;
    Ok(a + b)
}

fn main() {}
