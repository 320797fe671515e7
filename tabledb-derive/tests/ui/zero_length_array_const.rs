use tabledb::Table;

const SLOTS: usize = 0;

// The length is a constant, so only the compile-time description can refuse it.
#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    hp: u32,
    items: [u32; SLOTS],
}

fn main() {}
