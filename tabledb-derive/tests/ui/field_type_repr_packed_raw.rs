use tabledb::FieldType;

// A raw identifier is the same attribute to the compiler, so it is refused the same way.
#[derive(FieldType, Clone, Copy)]
#[r#repr(C, packed)]
struct Pair {
    x: u64,
}

fn main() {}
