use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn checksum(ctx: &mut ProcCtx<'_>, data: &[u8]) -> Result<u64, tabledb::Error> {
    let _ = ctx;
    Ok(data.iter().map(|&b| u64::from(b)).sum())
}

fn main() {}
