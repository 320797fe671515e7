use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player<T> {
    hp: T,
}

fn main() {}
