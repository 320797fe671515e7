use tabledb::procedure;

#[procedure]
fn reset() -> Result<(), tabledb::Error> {
    Ok(())
}

fn main() {}
