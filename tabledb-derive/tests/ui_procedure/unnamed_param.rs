use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn ping(ctx: &mut ProcCtx<'_>, _: u64) -> Result<(), tabledb::Error> {
    let _ = ctx;
    Ok(())
}

fn main() {}
