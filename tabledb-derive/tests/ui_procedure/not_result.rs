use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn balance(ctx: &mut ProcCtx<'_>, account: u64) -> u64 {
    let _ = ctx;
    account
}

// The refused function still gets a stand-in module: its uses add no errors of their own.
fn main() {
    let _ = (balance::procedure(), balance::PARAMS);
}
