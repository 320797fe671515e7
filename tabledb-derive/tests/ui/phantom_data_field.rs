use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player {
    hp: u32,
    marker: core::marker::PhantomData<&'static ()>,
}

fn main() {}
