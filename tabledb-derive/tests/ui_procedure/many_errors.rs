use tabledb::procedure;
use tabledb::procedure::ProcCtx;

#[procedure(name = "Pay", retries = 3)]
async fn pay<T>(ctx: &ProcCtx<'_>, note: &str, (a, b): (i64, i64), extra: T) -> i64 {
    let _ = (ctx, note, extra);
    a + b
}

fn main() {}
