use tabledb::procedure;

#[procedure]
struct Transfer {
    amount: i64,
}

fn main() {}
