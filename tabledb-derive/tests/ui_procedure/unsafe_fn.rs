use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
unsafe fn poke(ctx: &mut ProcCtx<'_>, amount: i64) -> Result<i64, tabledb::Error> {
    let _ = ctx;
    Ok(amount)
}

fn main() {}
