//! Typed access is sound only if a table's stored layout is exactly the Rust type's. Two
//! composite field types can share a name (two structs called `Pair` in different modules,
//! or a run-time type registered under the name of a program's type) while their members
//! differ; typed handles and table handles must tell them apart, or a `&T` could be handed
//! out over bytes that are not a valid `T` (a `bool` byte of 2) or are misaligned.

use tabledb::schema::FieldDef;
use tabledb::types::{MemberDef, TypeDef};
use tabledb::{Database, FieldHandle, Table};

mod bytes {
    #[derive(tabledb::FieldType, Clone, Copy, Debug)]
    #[repr(C)]
    pub struct Pair {
        pub a: u8,
        pub b: u8,
    }
}

mod flags {
    #[derive(tabledb::FieldType, Clone, Copy, Debug)]
    #[repr(C)]
    pub struct Pair {
        pub a: bool,
        pub b: u8,
    }
}

#[derive(Table, Clone, Copy, Debug)]
#[repr(C)]
#[table(name = "holder")]
struct Holder {
    p: flags::Pair,
}

#[derive(Table, Clone, Copy, Debug)]
#[repr(C)]
#[table(name = "holder")]
struct HolderBytes {
    p: bytes::Pair,
}

#[test]
fn a_field_handle_of_a_same_named_type_with_other_members_is_refused() {
    let forge = std::panic::catch_unwind(|| FieldHandle::<Holder, bytes::Pair>::new(0));
    assert!(forge.is_err(), "a handle typed `bytes::Pair` for a `flags::Pair` field");
    // The right one is fine.
    let handle = FieldHandle::<Holder, flags::Pair>::new(0);
    let db = Database::new();
    let t = db.create_table::<Holder>().unwrap();
    let id = db.insert(t, &Holder { p: flags::Pair { a: true, b: 1 } }).unwrap();
    db.set(t, id, handle, flags::Pair { a: false, b: 2 }).unwrap();
    assert!(!db.snapshot().get(t, id).unwrap().p.a);
}

#[test]
fn a_table_stored_with_a_same_named_type_with_other_members_is_not_opened_as_the_other() {
    let db = Database::new();
    let theirs = db.create_table::<HolderBytes>().unwrap();
    let id = db.insert(theirs, &HolderBytes { p: bytes::Pair { a: 2, b: 5 } }).unwrap();
    assert!(db.table::<Holder>().is_err());
    let snap = db.snapshot();
    assert!(snap.table_ref::<Holder>().is_err(), "a snapshot opens `holder` as `Holder`");
    // A handle from another database with the program's layout does not read this one.
    let other = Database::new();
    let ours = other.create_table::<Holder>().unwrap();
    assert!(snap.get(ours, id).is_none());
    assert!(snap.table(ours).is_err());
}

#[test]
fn a_table_built_at_run_time_with_a_same_named_type_is_not_opened_as_the_program_type() {
    let db = Database::new();
    db.register_type(TypeDef::new("pair", [MemberDef::new("a", "u8"), MemberDef::new("b", "u8")])).unwrap();
    db.create_table_from_defs("holder", &[FieldDef::new("p", "pair")]).unwrap();
    let id = db.create_record("holder", &[9, 0]).unwrap();
    let snap = db.snapshot();
    assert!(snap.table_ref::<Holder>().is_err());
    assert!(db.table::<Holder>().is_err());
    // The layout that matches opens.
    let t = snap.table_ref::<HolderBytes>().unwrap();
    assert_eq!(snap.get(t, id).unwrap().p.a, 9);
}
