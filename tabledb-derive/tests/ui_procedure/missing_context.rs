use tabledb::RecordId;
use tabledb::procedure;

#[procedure]
fn transfer(from: RecordId, to: RecordId, amount: i64) -> Result<i64, tabledb::Error> {
    let _ = (from, to);
    Ok(amount)
}

fn main() {}
