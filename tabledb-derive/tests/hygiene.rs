//! The derives compile in a crate without the prelude: the generated code names every path
//! absolutely (`::core::...`, `::tabledb::...`), so user scopes cannot break it.
#![no_implicit_prelude]

// Names a careless expansion might pick up instead of the real ones.
#[allow(dead_code)]
mod shadows {
    pub struct Option;
    pub struct Result;
    pub struct FieldType;
    pub struct TypeDesc;
    pub fn align_offset() {}
}
#[allow(unused_imports)]
use shadows::*;

#[derive(::tabledb::FieldType, ::core::clone::Clone, ::core::marker::Copy)]
#[repr(C)]
struct Vec3 {
    x: f32,
    y: f32,
    z: f32,
}

#[derive(::tabledb::Table, ::core::clone::Clone, ::core::marker::Copy)]
#[repr(C)]
#[table(name = "hygienic_body")]
struct Body {
    mass: f64,
    position: Vec3,
    tag: ::tabledb::FixedStr<8>,
    alive: bool,
    team: u8,
}

#[test]
fn generated_constants_under_no_implicit_prelude() {
    ::core::assert_eq!(<Body as ::tabledb::Table>::NAME, "hygienic_body");
    ::core::assert_eq!(Body::MASS_OFFSET, 0);
    ::core::assert_eq!(Body::POSITION_OFFSET, 8);
    ::core::assert_eq!(Body::TAG_OFFSET, 20);
    ::core::assert_eq!(Body::ALIVE_OFFSET, 30);
    ::core::assert_eq!(Body::TEAM_OFFSET, 31);
    ::core::assert_eq!(<Body as ::tabledb::Table>::RECORD_SIZE, 32);
    ::core::assert_eq!(<Body as ::tabledb::Table>::RECORD_SIZE, ::core::mem::size_of::<Body>());

    let names: [&str; 5] = ::core::array::from_fn(|i| <Body as ::tabledb::Table>::FIELDS[i].name);
    ::core::assert_eq!(names, ["mass", "position", "tag", "alive", "team"]);
    ::core::assert_eq!(Body::POSITION.name(), "position");
    ::core::assert_eq!(Body::TEAM.offset(), ::core::mem::offset_of!(Body, team));

    let desc = <Vec3 as ::tabledb::types::FieldType>::DESC;
    ::core::assert_eq!(desc.size, 12);
    ::core::assert_eq!(desc.align, 4);
    ::core::assert_eq!(desc.type_id(), ::tabledb::types::TypeId::of_name("vec3"));
}
