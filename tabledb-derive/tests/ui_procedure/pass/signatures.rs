//! The signatures `#[procedure]` accepts, and what it generates for them.

use tabledb::procedure::{ProcCtx, ProcError, Procedure};
use tabledb::{Database, FixedStr, RecordId, procedure};

/// Moves `amount` between two accounts.
///
///     Indented lines keep their extra indentation.
#[procedure(timeout_ms = 250)]
pub fn transfer(ctx: &mut ProcCtx<'_>, from: RecordId, to: RecordId, amount: i64) -> Result<i64, ProcError> {
    let _ = (ctx, from, to);
    Ok(amount)
}

// A context without its elided lifetime, a `mut` binding, a renamed procedure, and the
// `tabledb::Result` alias.
#[allow(elided_lifetimes_in_paths)]
#[procedure(name = "add_points", crate = "::tabledb")]
fn add(_ctx: &mut tabledb::ProcCtx, mut points: u32, bonus: Option<u32>) -> tabledb::Result<u32> {
    points += bonus.unwrap_or(0);
    Ok(points)
}

// A raw identifier as the function's name: the procedure is `match`.
#[procedure]
fn r#match(ctx: &mut ProcCtx<'_>, r#type: String, tags: Vec<FixedStr<8>>) -> Result<(), std::fmt::Error> {
    let _ = (ctx, r#type, tags);
    Ok(())
}

// Any Display error type; the unit result.
#[procedure]
fn fail(ctx: &mut ProcCtx<'_>) -> Result<(), String> {
    let _ = ctx;
    Err("refused".to_owned())
}

fn main() {
    let p: Procedure = transfer::procedure();
    assert_eq!(p.name, "transfer");
    assert_eq!(
        p.doc,
        "Moves `amount` between two accounts.\n\n    Indented lines keep their extra indentation."
    );
    assert_eq!(p.timeout, Some(std::time::Duration::from_millis(250)));
    let names: Vec<&str> = transfer::PARAMS.iter().map(|p| p.name).collect();
    assert_eq!(names, ["from", "to", "amount"]);
    let types: Vec<&str> = transfer::PARAMS.iter().map(|p| p.type_name).collect();
    assert_eq!(types, ["RecordId", "RecordId", "i64"]);
    assert!(transfer::PARAMS.iter().all(|p| p.required));

    let add = add::procedure();
    assert_eq!(add.name, "add_points");
    assert_eq!(add.doc, "");
    assert_eq!(add.timeout, None);
    assert_eq!(add::PARAMS[1].type_name, "Option<u32>");
    assert!(!add::PARAMS[1].required);

    assert_eq!(r#match::PROCEDURE.name, "match");
    let names: Vec<&str> = r#match::PARAMS.iter().map(|p| p.name).collect();
    assert_eq!(names, ["type", "tags"]);
    assert_eq!(r#match::PARAMS[1].type_name, "Vec<FixedStr<8>>");

    let db = Database::new();
    let out = p.call(&db, r#"{"from": 1, "to": 2, "amount": 7}"#.parse().unwrap(), 1).unwrap();
    assert_eq!(out.to_string(), "7");
    let out = add.call(&db, r#"{"points": 3, "bonus": 4}"#.parse().unwrap(), 1).unwrap();
    assert_eq!(out.to_string(), "7");
    let err = fail::procedure().call(&db, r#"{}"#.parse().unwrap(), 1).unwrap_err();
    assert_eq!(err, ProcError::Failed("refused".to_owned()));
}
