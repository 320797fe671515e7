use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn touch(ctx: &mut ProcCtx<'_>, account: u64) {
    let _ = (ctx, account);
}

fn main() {}
