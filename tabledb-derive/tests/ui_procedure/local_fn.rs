// A procedure is a free function at module level: the generated module reaches the function
// as `super::balance`, which does not see items declared inside a function body.
use tabledb::procedure;
use tabledb::procedure::ProcCtx;

fn main() {
    #[procedure]
    fn balance(ctx: &mut ProcCtx<'_>, account: u64) -> Result<u64, tabledb::Error> {
        let _ = ctx;
        Ok(account)
    }
    let _ = balance::procedure();
}
