use tabledb::procedure;
use tabledb::procedure::{ParamType, ProcCtx};

#[procedure]
fn echo<T: ParamType>(ctx: &mut ProcCtx<'_>, value: T) -> Result<u64, tabledb::Error> {
    let _ = (ctx, value);
    Ok(0)
}

fn main() {}
