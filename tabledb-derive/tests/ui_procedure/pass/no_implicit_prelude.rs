//! The generated module compiles without the prelude: it names every path absolutely
//! (`::core::...`, `::tabledb::...`), and names a careless expansion might pick up instead of
//! the real ones are in scope.
#![no_implicit_prelude]

#[allow(dead_code)]
mod shadows {
    pub struct Option;
    pub struct Result;
    pub struct Ok;
    pub struct Err;
    pub struct Some;
    pub struct None;
    pub struct ParamType;
    pub struct ProcError;
    pub struct Duration;
    pub fn param() {}
    pub fn no_extra() {}
}
#[allow(unused_imports)]
use shadows::*;

/// Sums two numbers.
#[::tabledb::procedure(timeout_ms = 5)]
fn sum(
    ctx: &mut ::tabledb::ProcCtx<'_>,
    args: i64,
    ctx2: ::core::option::Option<i64>,
) -> ::core::result::Result<i64, ::tabledb::Error> {
    let _ = ctx;
    ::core::result::Result::Ok(args + ctx2.unwrap_or(0))
}

fn main() {
    let p = sum::procedure();
    ::core::assert_eq!(p.name, "sum");
    ::core::assert_eq!(sum::PARAMS.len(), 2);
    ::core::assert_eq!(p.timeout, ::core::option::Option::Some(::core::time::Duration::from_millis(5)));
    let db = ::tabledb::Database::new();
    let args = ::core::result::Result::unwrap(::core::str::FromStr::from_str(r#"{"args": 2, "ctx2": 3}"#));
    let out = ::core::result::Result::unwrap(p.call(&db, args, 1));
    ::core::assert_eq!(::std::string::ToString::to_string(&out), "5");
}
