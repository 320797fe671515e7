use tabledb::{FieldType, Table};

#[derive(FieldType, Clone, Copy)]
#[repr(C)]
struct Vec3 {
    x: f32,
    y: f32,
    z: f32,
}

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct Body {
    mass: f64,
    position: Vec3,
}

fn main() {}
