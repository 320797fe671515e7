use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn import(ctx: &mut ProcCtx<'_>, file: std::fs::File) -> Result<(), tabledb::Error> {
    let _ = (ctx, file);
    Ok(())
}

fn main() {}
