use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn echo<'a>(ctx: &mut ProcCtx<'a>, value: u64) -> Result<u64, tabledb::Error> {
    let _ = ctx;
    Ok(value)
}

fn main() {}
