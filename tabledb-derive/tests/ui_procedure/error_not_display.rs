use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[derive(Debug)]
enum PayError {
    Declined,
}

#[procedure]
fn pay(ctx: &mut ProcCtx<'_>, amount: i64) -> Result<i64, PayError> {
    let _ = ctx;
    if amount < 0 { Err(PayError::Declined) } else { Ok(amount) }
}

fn main() {}
