//! Compile-time behaviour of `#[procedure]`: every refused function fails with its own message
//! (`tests/ui_procedure/*.rs`, one mistake per file, next to the expected `.stderr`; one file,
//! `many_errors.rs`, shows that every mistake of a function is reported in one build), and every
//! supported function compiles and runs (`tests/ui_procedure/pass/*.rs`).
//!
//! Regenerate the expected output after an intended change with `TRYBUILD=overwrite`.

#[test]
fn ui_procedure() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_procedure/*.rs");
    t.pass("tests/ui_procedure/pass/*.rs");
}
