use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
#[allow(non_snake_case)]
fn addPoints(ctx: &mut ProcCtx<'_>, amount: i64) -> Result<i64, tabledb::Error> {
    let _ = ctx;
    Ok(amount)
}

fn main() {}
