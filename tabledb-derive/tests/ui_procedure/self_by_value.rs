use tabledb::procedure;
use tabledb::procedure::ProcCtx;

struct Bank;

impl Bank {
    #[procedure]
    fn close(self, ctx: &mut ProcCtx<'_>) -> Result<(), tabledb::Error> {
        let _ = ctx;
        Ok(())
    }
}

fn main() {}
