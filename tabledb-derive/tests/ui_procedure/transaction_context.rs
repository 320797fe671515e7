use tabledb::Transaction;
use tabledb::procedure;

#[procedure]
fn balance(tx: &mut Transaction, account: u64) -> Result<u64, tabledb::Error> {
    let _ = tx;
    Ok(account)
}

fn main() {}
