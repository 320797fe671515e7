use tabledb::procedure;
use tabledb::procedure::ProcCtx;

struct Point {
    x: i64,
    y: i64,
}

#[procedure]
fn place(ctx: &mut ProcCtx<'_>, at: Point) -> Result<i64, tabledb::Error> {
    let _ = ctx;
    Ok(at.x + at.y)
}

fn main() {}
