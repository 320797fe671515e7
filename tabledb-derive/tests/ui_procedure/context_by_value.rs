use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn balance(ctx: ProcCtx<'_>, account: u64) -> Result<u64, tabledb::Error> {
    let _ = ctx;
    Ok(account)
}

fn main() {}
