use tabledb::procedure;

struct Session;

// A first parameter `&mut` of some other type: the generated call says which type it needs.
#[procedure]
fn balance(ctx: &mut Session, account: u64) -> Result<u64, tabledb::Error> {
    let _ = ctx;
    Ok(account)
}

fn main() {}
