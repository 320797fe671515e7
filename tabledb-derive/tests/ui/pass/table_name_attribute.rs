//! `#[table(name = "...")]` overrides the snake_case default; raw identifiers lose their prefix.

use tabledb::Table;

#[derive(Table, Clone, Copy)]
#[repr(C)]
#[table(name = "players_v2")]
struct PlayerRecord {
    r#type: u32,
    level: u32,
}

#[derive(Table, Clone, Copy)]
#[repr(C)]
struct HTTPLogEntry {
    status: u16,
}

fn main() {
    assert_eq!(<PlayerRecord as Table>::NAME, "players_v2");
    assert_eq!(<PlayerRecord as Table>::FIELDS[0].name, "type");
    assert_eq!(PlayerRecord::TYPE_OFFSET, 0);
    assert_eq!(PlayerRecord::LEVEL_OFFSET, 4);
    assert_eq!(<HTTPLogEntry as Table>::NAME, "http_log_entry");
}
