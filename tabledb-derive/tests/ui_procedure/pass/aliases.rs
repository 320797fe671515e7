//! Under `deny(warnings)`: the context imported under another name, a result type that is the
//! program's own alias of `Result`, a deprecated procedure, and documentation partly made by a
//! macro.
#![deny(warnings)]

use serde_json::json;
use tabledb::procedure;
use tabledb::procedure::{ProcCtx as Ctx, ProcError};

type ProcResult<T> = Result<T, ProcError>;

/// Answers.
#[procedure]
fn answer(_ctx: &mut Ctx<'_>, x: u32) -> ProcResult<u32> {
    if x == 0 {
        return Err(ProcError::Failed("x is 0".into()));
    }
    Ok(x + 41)
}

/// Old name of `answer`.
#[deprecated(note = "call answer")]
#[procedure]
pub fn old_answer(_ctx: &mut Ctx<'_>) -> Result<u32, tabledb::Error> {
    Ok(42)
}

#[doc = concat!("Moves ", "a unit.")]
/// Second line.
///
///     indented example
#[procedure]
fn documented(_ctx: &mut Ctx<'_>) -> Result<(), tabledb::Error> {
    Ok(())
}

fn main() {
    let db = tabledb::Database::new();
    assert_eq!(answer::procedure().call(&db, json!({ "x": 1 }), 1).unwrap(), json!(42));
    let refused = answer::procedure().call(&db, json!({ "x": 0 }), 1).unwrap_err();
    assert!(refused.to_string().contains("x is 0"), "{refused}");
    assert_eq!(answer::procedure().doc, "Answers.");

    #[allow(deprecated)]
    let p = old_answer::procedure();
    assert_eq!(p.call(&db, json!({}), 1).unwrap(), json!(42));

    assert_eq!(documented::procedure().doc, "Moves a unit.\nSecond line.\n\n    indented example");
}
