// A procedure is a free function at module level: the generated module cannot go in an impl
// block, and the compiler says so.
use tabledb::procedure;
use tabledb::procedure::ProcCtx;

struct Bank;

impl Bank {
    #[procedure]
    fn balance(ctx: &mut ProcCtx<'_>, account: u64) -> Result<u64, tabledb::Error> {
        let _ = ctx;
        Ok(account)
    }
}

fn main() {}
