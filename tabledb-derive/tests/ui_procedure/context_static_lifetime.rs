use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn balance(ctx: &mut ProcCtx<'static>, account: u64) -> Result<u64, tabledb::Error> {
    let _ = ctx;
    Ok(account)
}

fn main() {}
