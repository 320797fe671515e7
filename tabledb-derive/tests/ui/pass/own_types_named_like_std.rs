//! A program's own types may have the names of standard library types the derive refuses as
//! fields (`Cell`, `Box`, `Option`...): a grid cell or a bounding box is a type like any other.

use tabledb::{FieldType, Table};

#[derive(FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Cell {
    x: u16,
    y: u16,
}

#[derive(FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Box {
    min: [f32; 2],
    max: [f32; 2],
}

mod grid {
    #[derive(tabledb::FieldType, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Option {
        pub value: u32,
    }
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Unit {
    hp: u32,
    cell: Cell,
    bounds: Box,
    choice: grid::Option,
    path: [Cell; 2],
}

fn main() {
    assert_eq!(Unit::CELL_OFFSET, 4);
    assert_eq!(Unit::BOUNDS_OFFSET, 8);
    assert_eq!(Unit::CHOICE_OFFSET, 24);
    assert_eq!(Unit::PATH_OFFSET, 28);
    assert_eq!(<Unit as Table>::RECORD_SIZE, 36);

    let db = tabledb::Database::new();
    let t = db.create_table::<Unit>().unwrap();
    let unit = Unit {
        hp: 7,
        cell: Cell { x: 1, y: 2 },
        bounds: Box { min: [0.0, 0.5], max: [1.0, 1.5] },
        choice: grid::Option { value: 9 },
        path: [Cell { x: 3, y: 4 }, Cell { x: 5, y: 6 }],
    };
    let mut tx = db.begin();
    let id = tx.insert(t, &unit).unwrap();
    tx.commit().unwrap();
    assert_eq!(db.snapshot().get(t, id), Some(&unit));
}
