use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn scale<const N: u64>(ctx: &mut ProcCtx<'_>, value: u64) -> Result<u64, tabledb::Error> {
    let _ = ctx;
    Ok(value * N)
}

fn main() {}
