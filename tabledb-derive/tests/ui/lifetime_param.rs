use tabledb::Table;

#[derive(Clone, Copy)]
struct Tag<'a>(core::marker::PhantomData<&'a ()>);

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Player<'a> {
    hp: u32,
    tag: Tag<'a>,
}

fn main() {}
