//! Compile-time behaviour of `#[derive(Table)]` and `#[derive(FieldType)]`: every refused input
//! fails with its own message (`tests/ui/*.rs`, one mistake per file, next to the expected
//! `.stderr`), and every supported input compiles and runs (`tests/ui/pass/*.rs`).
//!
//! Regenerate the expected output after an intended change with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
