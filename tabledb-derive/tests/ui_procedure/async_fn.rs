use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
async fn balance(ctx: &mut ProcCtx<'_>, account: u64) -> Result<u64, tabledb::Error> {
    let _ = ctx;
    Ok(account)
}

fn main() {}
