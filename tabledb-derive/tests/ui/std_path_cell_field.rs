use tabledb::Table;

// The standard library's `Cell`, by its full path, is refused like `Cell<T>` written alone.
#[derive(Table)]
#[repr(C)]
struct Player {
    hp: u32,
    mana: std::cell::Cell<u32>,
}

fn main() {}
