use tabledb::procedure;
use tabledb::procedure::ProcCtx;

struct Receipt {
    amount: i64,
}

#[procedure]
fn pay(ctx: &mut ProcCtx<'_>, amount: i64) -> Result<Receipt, tabledb::Error> {
    let _ = ctx;
    Ok(Receipt { amount })
}

fn main() {}
