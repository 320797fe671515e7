use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure]
fn count(ctx: &mut ProcCtx<'_>, names: Vec<&'static str>) -> Result<usize, tabledb::Error> {
    let _ = ctx;
    Ok(names.len())
}

fn main() {}
