use tabledb::procedure;
use tabledb::procedure::ProcCtx;

struct Bank;

impl Bank {
    #[procedure]
    fn balance(&self, ctx: &mut ProcCtx<'_>, account: u64) -> Result<u64, tabledb::Error> {
        let _ = ctx;
        Ok(account)
    }
}

fn main() {}
