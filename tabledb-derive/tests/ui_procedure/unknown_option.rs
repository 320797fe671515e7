use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure(timeout = 100)]
fn transfer(ctx: &mut ProcCtx<'_>, amount: i64) -> Result<i64, tabledb::Error> {
    let _ = ctx;
    Ok(amount)
}

fn main() {}
