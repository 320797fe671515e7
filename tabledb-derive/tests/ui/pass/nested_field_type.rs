//! A composite field type, itself holding a composite, inside a table.

use tabledb::types::FieldType;
use tabledb::{FieldType, Table};

#[derive(FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Vec3 {
    x: f32,
    y: f32,
    z: f32,
}

#[derive(FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[field_type(name = "transform_v1")]
struct Transform {
    position: Vec3,
    velocity: Vec3,
    frozen: [bool; 4],
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Body {
    transform: Transform,
    mass: f32,
}

const _: () = {
    assert!(Body::TRANSFORM_OFFSET == 0);
    assert!(Body::MASS_OFFSET == 28);
    assert!(<Body as Table>::RECORD_SIZE == 32);
    assert!(<Transform as FieldType>::DESC.size == 28);
    assert!(<Transform as FieldType>::NEEDS_VALIDATION);
    assert!(!<Vec3 as FieldType>::NEEDS_VALIDATION);
};

fn main() {
    let v = Vec3 { x: 1.0, y: 2.0, z: 3.0 };
    let b = Body { transform: Transform { position: v, velocity: v, frozen: [false; 4] }, mass: 2.5 };
    assert_eq!(<Transform as FieldType>::DESC.name(), "transform_v1");
    assert_eq!(Body::read(b.as_bytes()).unwrap(), b);
}
