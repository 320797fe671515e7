//! Stored procedures declared with `#[procedure]`, called through `Procedure::call` (own
//! transaction, committed) and `Procedure::run` (a given transaction, not committed): parameters
//! from JSON, results to JSON, errors with their kind, panics, nesting, schemas, the registry,
//! and typed table access through `ProcCtx`.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tabledb::procedure::{ParamType, ProcCtx, ProcError, Procedure};
use tabledb::{Database, ErrorKind, ProcedureRegistry, RecordId, Table, TableRef, procedure};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Account {
    balance: i64,
    owner: u32,
    frozen: u32,
}

thread_local! {
    /// The accounts table of the database the current test made. Procedures are plain functions
    /// without access to the `Database`, and `Procedure::call` runs them on the calling thread.
    static ACCOUNTS: Cell<Option<TableRef<Account>>> = const { Cell::new(None) };
}

fn accounts() -> TableRef<Account> {
    ACCOUNTS.with(Cell::get).expect("the test opened the accounts table on this thread")
}

/// A database with one account per balance, owned by its index.
fn bank(balances: &[i64]) -> (Database, Vec<RecordId>) {
    let db = Database::new();
    let table = db.create_table::<Account>().unwrap();
    ACCOUNTS.with(|a| a.set(Some(table)));
    let mut tx = db.begin();
    let ids = balances
        .iter()
        .enumerate()
        .map(|(owner, &balance)| {
            tx.insert(table, &Account { balance, owner: owner as u32, frozen: 0 }).unwrap()
        })
        .collect();
    tx.commit().unwrap();
    (db, ids)
}

fn balances(db: &Database, ids: &[RecordId]) -> Vec<i64> {
    let snapshot = db.snapshot();
    ids.iter().map(|&id| snapshot.get(accounts(), id).unwrap().balance).collect()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The errors of the bank's procedures, reported by their message.
#[derive(Debug)]
enum BankError {
    NotPositive(i64),
    SameAccount,
    UnknownAccount(RecordId),
    Frozen(RecordId),
    Insufficient { account: RecordId, balance: i64, amount: i64 },
    Db(tabledb::Error),
}

impl fmt::Display for BankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BankError::NotPositive(amount) => write!(f, "the amount must be positive, not {amount}"),
            BankError::SameAccount => write!(f, "cannot transfer to the same account"),
            BankError::UnknownAccount(id) => write!(f, "no account {id}"),
            BankError::Frozen(id) => write!(f, "account {id} is frozen"),
            BankError::Insufficient { account, balance, amount } => {
                write!(f, "account {account} has {balance}, needs {amount}")
            }
            BankError::Db(e) => write!(f, "{e}"),
        }
    }
}

impl From<tabledb::Error> for BankError {
    fn from(e: tabledb::Error) -> Self {
        BankError::Db(e)
    }
}

#[derive(Serialize)]
struct Receipt {
    from_balance: i64,
    to_balance: i64,
}

/// Moves `amount` from one account to another.
///
/// Returns both new balances.
#[procedure(timeout_ms = 500)]
fn transfer(ctx: &mut ProcCtx<'_>, from: RecordId, to: RecordId, amount: i64) -> Result<Receipt, BankError> {
    if amount <= 0 {
        return Err(BankError::NotPositive(amount));
    }
    if from == to {
        return Err(BankError::SameAccount);
    }
    let table = accounts();
    let source = *ctx.get(table, from)?.ok_or(BankError::UnknownAccount(from))?;
    let target = *ctx.get(table, to)?.ok_or(BankError::UnknownAccount(to))?;
    for (id, account) in [(from, source), (to, target)] {
        if account.frozen != 0 {
            return Err(BankError::Frozen(id));
        }
    }
    if source.balance < amount {
        return Err(BankError::Insufficient { account: from, balance: source.balance, amount });
    }
    ctx.set(table, from, Account::BALANCE, source.balance - amount)?;
    ctx.set(table, to, Account::BALANCE, target.balance + amount)?;
    Ok(Receipt { from_balance: source.balance - amount, to_balance: target.balance + amount })
}

/// Adds `amount` to an account; returns the new balance.
#[procedure]
fn deposit(ctx: &mut ProcCtx<'_>, account: RecordId, amount: i64) -> Result<i64, tabledb::Error> {
    ctx.modify(accounts(), account, |a| {
        a.balance += amount;
        a.balance
    })
}

/// Opens an account; the initial balance may be left out.
#[procedure(name = "open_account")]
fn open(ctx: &mut ProcCtx<'_>, owner: u32, initial: Option<i64>) -> Result<RecordId, tabledb::Error> {
    ctx.insert(accounts(), &Account { balance: initial.unwrap_or(0), owner, frozen: 0 })
}

/// The sum of all balances, as of the transaction's start.
#[procedure]
fn total_balance(ctx: &mut ProcCtx<'_>) -> Result<i64, tabledb::Error> {
    Ok(ctx.view(accounts())?.par_sum(|a| a.balance))
}

/// Adds `percent` interest to every account, in parallel; returns how many accounts there are.
#[procedure]
fn apply_interest(ctx: &mut ProcCtx<'_>, percent: i64) -> Result<u64, tabledb::Error> {
    ctx.par_update(accounts(), move |_, a| a.balance += a.balance * percent / 100)
}

/// Zeroes an account, then panics.
#[procedure]
fn explode(ctx: &mut ProcCtx<'_>, account: RecordId) -> Result<(), tabledb::Error> {
    ctx.set(accounts(), account, Account::BALANCE, 0)?;
    panic!("the procedure failed halfway");
}

/// Deposits, then calls `deposit` again through the procedure API, `how` = "run" or "call".
#[procedure]
fn deposit_twice(
    ctx: &mut ProcCtx<'_>,
    account: RecordId,
    amount: i64,
    how: String,
) -> Result<(), ProcError> {
    ctx.modify(accounts(), account, |a| a.balance += amount)?;
    let args = json!({ "account": account, "amount": amount });
    match how.as_str() {
        "run" => deposit::procedure().run(ctx, object(args), None)?,
        _ => deposit::procedure().call(&Database::new(), args, 1)?,
    };
    Ok(())
}

/// What the procedure sees of its context.
#[procedure(name = "who_am_i", timeout_ms = 60_000)]
fn whoami(ctx: &mut ProcCtx<'_>) -> Result<(String, bool), tabledb::Error> {
    ctx.check_deadline().map_err(|e| tabledb::Error::Persistence(e.to_string()))?;
    Ok((ctx.name().to_owned(), ctx.deadline().is_some()))
}

/// A parameter type of the program's own: a share of a payment.
#[derive(Deserialize)]
struct Share {
    to: RecordId,
    percent: u8,
}

impl ParamType for Share {
    fn json_schema() -> Value {
        json!({
            "type": "object",
            "properties": { "to": RecordId::json_schema(), "percent": u8::json_schema() },
            "required": ["to", "percent"],
        })
    }
}

/// Pays `amount` out of `from`, split between `shares`.
#[procedure]
fn split(ctx: &mut ProcCtx<'_>, from: RecordId, shares: Vec<Share>, amount: i64) -> Result<usize, BankError> {
    if shares.iter().map(|s| u32::from(s.percent)).sum::<u32>() != 100 {
        return Err(BankError::NotPositive(0));
    }
    let table = accounts();
    for share in &shares {
        let part = amount * i64::from(share.percent) / 100;
        ctx.modify(table, from, |a| a.balance -= part)?;
        ctx.modify(table, share.to, |a| a.balance += part)?;
    }
    Ok(shares.len())
}

#[test]
fn transfer_moves_money_and_returns_the_serialized_result() {
    let (db, ids) = bank(&[100, 50]);
    let out =
        transfer::procedure().call(&db, json!({ "from": ids[0], "to": ids[1], "amount": 30 }), 1).unwrap();
    assert_eq!(out, json!({ "from_balance": 70, "to_balance": 80 }));
    assert_eq!(balances(&db, &ids), [70, 80]);

    // The function itself is unchanged: callable directly with a context.
    let mut tx = db.begin();
    let mut ctx = ProcCtx::new(&mut tx, "transfer", None);
    let receipt = transfer(&mut ctx, ids[1], ids[0], 80).unwrap();
    assert_eq!((receipt.from_balance, receipt.to_balance), (0, 150));
    tx.commit().unwrap();
    assert_eq!(balances(&db, &ids), [150, 0]);
}

#[test]
fn run_stages_in_the_given_transaction_without_committing() {
    let (db, ids) = bank(&[100, 50]);
    let mut tx = db.begin();
    let args = object(json!({ "from": ids[0], "to": ids[1], "amount": 10 }));
    let out = transfer::procedure().run(&mut tx, args, None).unwrap();
    assert_eq!(out, json!({ "from_balance": 90, "to_balance": 60 }));
    assert_eq!(tx.get(accounts(), ids[0]).unwrap().unwrap().balance, 90, "the transaction sees its writes");
    assert_eq!(balances(&db, &ids), [100, 50], "nothing is committed yet");
    tx.commit().unwrap();
    assert_eq!(balances(&db, &ids), [90, 60]);
}

#[test]
fn missing_parameter_is_named() {
    let (db, ids) = bank(&[100, 50]);
    let err = transfer::procedure().call(&db, json!({ "from": ids[0], "to": ids[1] }), 1).unwrap_err();
    assert_eq!(err, ProcError::BadParams { param: "amount".into(), message: "is required".into() });
    assert_eq!(err.to_string(), "parameter `amount`: is required");
    assert_eq!(balances(&db, &ids), [100, 50]);
}

#[test]
fn extra_parameter_is_named() {
    let (db, ids) = bank(&[100, 50]);
    let args = json!({ "from": ids[0], "to": ids[1], "amount": 5, "memo": "rent" });
    let err = transfer::procedure().call(&db, args, 1).unwrap_err();
    assert_eq!(
        err,
        ProcError::BadParams { param: "memo".into(), message: "is not a parameter of this procedure".into() }
    );
    assert_eq!(balances(&db, &ids), [100, 50]);
}

#[test]
fn wrongly_typed_parameter_is_named() {
    let (db, ids) = bank(&[100, 50]);
    let err = transfer::procedure().call(&db, json!({ "from": ids[0], "to": ids[1], "amount": "ten" }), 1);
    let Err(ProcError::BadParams { param, message }) = err else { panic!("expected BadParams, got {err:?}") };
    assert_eq!(param, "amount");
    assert!(message.contains("invalid type: string \"ten\", expected i64"), "{message}");

    let err = transfer::procedure().call(&db, json!({ "from": -1, "to": ids[1], "amount": 1 }), 1);
    let Err(ProcError::BadParams { param, .. }) = err else { panic!("expected BadParams, got {err:?}") };
    assert_eq!(param, "from", "a record id is an unsigned integer");

    let err = deposit::procedure().call(&db, json!({ "account": ids[0], "amount": 1.5 }), 1);
    let Err(ProcError::BadParams { param, .. }) = err else { panic!("expected BadParams, got {err:?}") };
    assert_eq!(param, "amount");

    let err = transfer::procedure().call(&db, json!([ids[0], ids[1], 5]), 1).unwrap_err();
    assert!(matches!(&err, ProcError::BadParams { param, .. } if param.is_empty()), "{err:?}");
    assert_eq!(balances(&db, &ids), [100, 50]);
}

#[test]
fn option_parameter_may_be_omitted() {
    let (db, _) = bank(&[]);
    let open = open::procedure();
    assert_eq!(open.name, "open_account");
    let first = open.call(&db, json!({ "owner": 7 }), 1).unwrap();
    let second = open.call(&db, json!({ "owner": 8, "initial": 25 }), 1).unwrap();
    let third = open.call(&db, json!({ "owner": 9, "initial": null }), 1).unwrap();
    let ids: Vec<RecordId> =
        [first, second, third].into_iter().map(|v| serde_json::from_value(v).unwrap()).collect();
    assert_eq!(balances(&db, &ids), [0, 25, 0]);
    assert_eq!(db.snapshot().get(accounts(), ids[1]).unwrap().owner, 8);

    let err = open.call(&db, json!({ "initial": 5 }), 1).unwrap_err();
    assert_eq!(err, ProcError::BadParams { param: "owner".into(), message: "is required".into() });
}

#[procedure]
fn nan_balance(ctx: &mut ProcCtx<'_>, account: RecordId) -> Result<f64, tabledb::Error> {
    ctx.modify(accounts(), account, |a| a.balance += 1)?;
    Ok(f64::NAN)
}

#[procedure]
fn rates(ctx: &mut ProcCtx<'_>, account: RecordId) -> Result<Vec<Option<f32>>, tabledb::Error> {
    ctx.modify(accounts(), account, |a| a.balance += 1)?;
    Ok(vec![Some(0.5), None, Some(f32::INFINITY)])
}

#[procedure]
fn by_pair(
    ctx: &mut ProcCtx<'_>,
    account: RecordId,
) -> Result<std::collections::HashMap<(u8, u8), i32>, tabledb::Error> {
    ctx.modify(accounts(), account, |a| a.balance += 1)?;
    Ok(std::collections::HashMap::from([((1, 2), 3)]))
}

/// A result JSON cannot hold (a NaN or infinite float, which would become `null`; a map with
/// tuple keys) is the program's mistake, like a panic: the call fails with `BadResult`, not
/// as the procedure's own error, and its writes are discarded.
#[test]
fn a_result_that_is_not_json_fails_the_call_and_changes_nothing() {
    let (db, ids) = bank(&[10]);
    for p in [nan_balance::procedure(), rates::procedure(), by_pair::procedure()] {
        let err = p.call(&db, json!({ "account": ids[0] }), 1).unwrap_err();
        match &err {
            ProcError::BadResult { procedure, detail } => {
                assert_eq!(procedure, p.name);
                assert!(!detail.is_empty(), "{err}");
            }
            other => panic!("{}: expected BadResult, got {other:?}", p.name),
        }
        assert!(err.to_string().contains("not JSON"), "{err}");
    }
    assert_eq!(balances(&db, &ids), [10], "nothing was committed");
}

#[test]
fn user_error_is_failed_with_its_message_and_changes_nothing() {
    let (db, ids) = bank(&[30, 50]);
    let err = transfer::procedure()
        .call(&db, json!({ "from": ids[0], "to": ids[1], "amount": 50 }), 1)
        .unwrap_err();
    assert_eq!(err, ProcError::Failed(format!("account {} has 30, needs 50", ids[0])));

    let err =
        transfer::procedure().call(&db, json!({ "from": ids[0], "to": ids[0], "amount": 5 }), 1).unwrap_err();
    assert_eq!(err, ProcError::Failed("cannot transfer to the same account".into()));

    // A frozen target is found after nothing was written; an unknown one likewise.
    db.set(accounts(), ids[1], Account::FROZEN, 1).unwrap();
    let err =
        transfer::procedure().call(&db, json!({ "from": ids[0], "to": ids[1], "amount": 5 }), 1).unwrap_err();
    assert_eq!(err, ProcError::Failed(format!("account {} is frozen", ids[1])));
    let err =
        transfer::procedure().call(&db, json!({ "from": ids[0], "to": 999, "amount": 5 }), 1).unwrap_err();
    assert_eq!(err, ProcError::Failed("no account 999".into()));
    assert_eq!(balances(&db, &ids), [30, 50]);

    // An error after writes: the transaction is discarded with them.
    let args = json!({ "from": ids[0], "shares": [{ "to": ids[1], "percent": 50 }, { "to": 999, "percent": 50 }], "amount": 20 });
    let err = split::procedure().call(&db, args, 1).unwrap_err();
    assert_eq!(
        err,
        ProcError::Failed("no record 999 in table `account`".into()),
        "a tabledb::Error wrapped in a user error is reported by its message"
    );
    assert_eq!(balances(&db, &ids), [30, 50]);
}

#[test]
fn database_error_keeps_its_kind() {
    let (db, ids) = bank(&[10]);
    let err = deposit::procedure().call(&db, json!({ "account": 42, "amount": 5 }), 1).unwrap_err();
    let ProcError::Db(e) = &err else { panic!("expected ProcError::Db, got {err:?}") };
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(*e, tabledb::Error::RecordNotFound { table: "account".into(), id: RecordId(42) });

    let out = deposit::procedure().call(&db, json!({ "account": ids[0], "amount": 5 }), 1).unwrap();
    assert_eq!(out, json!(15));
}

#[test]
fn panicking_procedure_is_reported_and_changes_nothing() {
    let (db, ids) = bank(&[100, 50]);
    let err = explode::procedure().call(&db, json!({ "account": ids[0] }), 3).unwrap_err();
    assert_eq!(err, ProcError::Panicked { procedure: "explode".into() });
    assert_eq!(balances(&db, &ids), [100, 50]);

    // The thread is usable afterwards: it is no longer marked as inside a procedure.
    assert!(!tabledb::procedure::in_procedure());
    let out =
        transfer::procedure().call(&db, json!({ "from": ids[0], "to": ids[1], "amount": 1 }), 1).unwrap();
    assert_eq!(out, json!({ "from_balance": 99, "to_balance": 51 }));
}

#[test]
fn procedures_cannot_call_procedures() {
    let (db, ids) = bank(&[100]);
    for how in ["run", "call"] {
        let err = deposit_twice::procedure()
            .call(&db, json!({ "account": ids[0], "amount": 5, "how": how }), 1)
            .unwrap_err();
        assert_eq!(err, ProcError::Nested { procedure: "deposit".into() }, "through {how}");
    }
    assert_eq!(balances(&db, &ids), [100], "the outer procedure's own write is discarded");
}

#[test]
fn params_schema_lists_parameters_with_schemas_and_required() {
    let transfer = transfer::procedure();
    // Bounded both ways, as the call accepts: one past u64::MAX is refused.
    let id_schema =
        json!({ "type": "integer", "minimum": 1, "maximum": u64::MAX, "description": "a record id" });
    assert_eq!(
        transfer.params_schema(),
        json!({
            "type": "object",
            "properties": {
                "from": id_schema,
                "to": id_schema,
                "amount": { "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX },
            },
            "required": ["from", "to", "amount"],
            "additionalProperties": false,
        })
    );
    let names: Vec<(&str, &str, bool)> =
        transfer::PARAMS.iter().map(|p| (p.name, p.type_name, p.required)).collect();
    assert_eq!(names, [("from", "RecordId", true), ("to", "RecordId", true), ("amount", "i64", true)]);
    assert_eq!(transfer.doc, "Moves `amount` from one account to another.\n\nReturns both new balances.");

    let open = open::procedure().params_schema();
    assert_eq!(open["required"], json!(["owner"]));
    assert_eq!(
        open["properties"]["initial"],
        json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX, "nullable": true }),
        "an optional parameter may be null, as the call accepts"
    );
    assert_eq!(open::PARAMS[1].type_name, "Option<i64>");

    let split = split::procedure().params_schema();
    assert_eq!(split["properties"]["shares"]["type"], "array");
    assert_eq!(split["properties"]["shares"]["items"]["required"], json!(["to", "percent"]));

    assert_eq!(total_balance::procedure().params_schema()["properties"], json!({}));
    // OpenAPI 3.0 refuses an empty `required` list: none is stated.
    assert_eq!(total_balance::procedure().params_schema().get("required"), None);
}

#[test]
fn registry_rejects_duplicate_and_invalid_names() {
    let mut registry =
        ProcedureRegistry::new().with(transfer::procedure()).unwrap().with(open::procedure()).unwrap();
    let err = registry.register(transfer::procedure()).unwrap_err();
    assert!(
        matches!(&err, ProcError::Registration(message) if message == "procedure `transfer` is already registered"),
        "{err:?}"
    );
    let renamed = Procedure { name: "open_account", ..deposit::procedure() };
    assert!(registry.register(renamed).is_err(), "the name is what must be unique");

    for name in ["Transfer", "", "9lives", "two words"] {
        let err = registry.register(Procedure { name, ..deposit::procedure() }).unwrap_err();
        assert!(
            matches!(&err, ProcError::Registration(message) if message.starts_with(&format!("procedure name `{name}`"))),
            "{name:?}: {err:?}"
        );
    }
    assert_eq!(registry.len(), 2);
    let names: Vec<&str> = registry.iter().map(|p| p.name).collect();
    assert_eq!(names, ["open_account", "transfer"]);
    assert_eq!(registry.get("deposit").unwrap_err(), ProcError::NotFound("deposit".into()));

    let (db, ids) = bank(&[100, 0]);
    let out =
        registry.get("transfer").unwrap().call(&db, json!({ "from": ids[0], "to": ids[1], "amount": 1 }), 1);
    assert_eq!(out.unwrap()["to_balance"], 1);
}

#[test]
fn timeout_ms_becomes_the_procedure_timeout_and_the_context_deadline() {
    assert_eq!(transfer::procedure().timeout, Some(Duration::from_millis(500)));
    assert_eq!(deposit::procedure().timeout, None);
    assert_eq!(whoami::PROCEDURE.timeout, Some(Duration::from_secs(60)));

    let (db, _) = bank(&[]);
    assert_eq!(whoami::procedure().call(&db, Value::Null, 1).unwrap(), json!(["who_am_i", true]));
    let mut tx = db.begin();
    assert_eq!(whoami::procedure().run(&mut tx, Map::new(), None).unwrap(), json!(["who_am_i", false]));
}

#[test]
fn context_gives_typed_views_and_parallel_updates() {
    let balances_before: Vec<i64> = (1..=2000).map(|i| i * 10).collect();
    let (db, ids) = bank(&balances_before);
    let total: i64 = balances_before.iter().sum();
    assert_eq!(total_balance::procedure().call(&db, json!({}), 1).unwrap(), json!(total));

    let out = apply_interest::procedure().call(&db, json!({ "percent": 10 }), 1).unwrap();
    assert_eq!(out, json!(2000));
    let expected: Vec<i64> = balances_before.iter().map(|b| b + b / 10).collect();
    assert_eq!(balances(&db, &ids), expected);
    assert_eq!(
        total_balance::procedure().call(&db, Value::Null, 1).unwrap(),
        json!(expected.iter().sum::<i64>())
    );
}

#[test]
fn custom_parameter_types_compose_with_vec() {
    let (db, ids) = bank(&[100, 0, 0]);
    let args = json!({
        "from": ids[0],
        "shares": [{ "to": ids[1], "percent": 25 }, { "to": ids[2], "percent": 75 }],
        "amount": 40,
    });
    assert_eq!(split::procedure().call(&db, args, 1).unwrap(), json!(2));
    assert_eq!(balances(&db, &ids), [60, 10, 30]);

    let args = json!({ "from": ids[0], "shares": [{ "to": ids[1] }], "amount": 40 });
    let err = split::procedure().call(&db, args, 1).unwrap_err();
    assert!(
        matches!(&err, ProcError::BadParams { param, message } if param == "shares" && message.contains("percent")),
        "{err:?}"
    );
}

// ---- parameter ranges: what a parameter's JSON schema promises is what the call gets ----

#[procedure]
fn echo_f32(
    _ctx: &mut ProcCtx<'_>,
    x: f32,
    more: Option<f32>,
    list: Vec<f32>,
) -> Result<Vec<f32>, tabledb::Error> {
    Ok([x].into_iter().chain(more).chain(list).collect())
}

#[procedure]
fn echo_ids(
    _ctx: &mut ProcCtx<'_>,
    id: RecordId,
    other: Option<RecordId>,
    list: Vec<RecordId>,
) -> Result<Vec<u64>, tabledb::Error> {
    Ok([id].into_iter().chain(other).chain(list).map(|id| id.0).collect())
}

#[procedure]
fn echo_ints(
    _ctx: &mut ProcCtx<'_>,
    a: u8,
    b: i16,
    c: u32,
    d: i64,
    e: u64,
    f: f64,
) -> Result<Value, tabledb::Error> {
    Ok(json!([a, b, c, d, e, f]))
}

/// The parameter a call was refused for, with the message.
fn refused(r: Result<Value, ProcError>) -> (String, String) {
    match r {
        Err(ProcError::BadParams { param, message }) => (param, message),
        other => panic!("expected BadParams, got {other:?}"),
    }
}

#[test]
fn an_f32_parameter_out_of_range_is_refused_not_made_infinite() {
    let db = Database::new();
    let p = echo_f32::procedure();
    let call = |args: Value| p.call(&db, args, 1);
    for too_big in [1e39, -1e39, f64::MAX, 3.5e38] {
        let (param, message) = refused(call(json!({ "x": too_big, "list": [] })));
        assert_eq!(param, "x", "{too_big}");
        assert!(message.contains("out of range for f32"), "{message}");
    }
    assert_eq!(refused(call(json!({ "x": 1, "more": 1e39, "list": [] }))).0, "more");
    let (param, message) = refused(call(json!({ "x": 1, "list": [1, 2, 1e39] })));
    assert_eq!(param, "list");
    assert!(message.contains("item 2") && message.contains("out of range for f32"), "{message}");

    // In range: rounded to the nearest f32, the extremes included; tiny values round to zero.
    let max = f64::from(f32::MAX);
    assert_eq!(
        call(json!({ "x": max, "more": -max, "list": [0.5, 1e-50, 16_777_217] })).unwrap(),
        json!([f32::MAX, -f32::MAX, 0.5, 0.0, 16_777_216.0])
    );
    assert_eq!(call(json!({ "x": 2, "more": null, "list": [] })).unwrap(), json!([2.0]));
    // A value of the wrong type is still refused as before.
    assert_eq!(refused(call(json!({ "x": "1", "list": [] }))).0, "x");
    assert_eq!(refused(call(json!({ "x": 1, "list": 1 }))).0, "list");
}

#[procedure]
fn rename(_ctx: &mut ProcCtx<'_>, name: tabledb::FixedStr<4>) -> Result<String, tabledb::Error> {
    Ok(name.as_str().to_owned())
}

/// A `FixedStr<N>` holds N bytes of UTF-8. JSON Schema's `maxLength` counts characters, so the
/// schema states the capacity as `x-max-bytes` (as record schemas do) and no value it allows
/// is refused for a limit it hides.
#[test]
fn a_fixed_string_parameter_schema_states_its_capacity_in_bytes() {
    let db = Database::new();
    let schema = (rename::PARAMS[0].schema)();
    assert_eq!(schema["type"], "string");
    assert_eq!(schema["x-max-bytes"], 4);
    assert!(schema.get("maxLength").is_none(), "maxLength counts characters: {schema}");
    let p = rename::procedure();
    assert_eq!(p.call(&db, json!({ "name": "éé" }), 1).unwrap(), json!("éé"));
    let (param, message) = refused(p.call(&db, json!({ "name": "ééé" }), 1));
    assert_eq!(param, "name");
    assert!(message.contains("6 bytes") && message.contains("4 bytes"), "{message}");
}

#[test]
fn a_record_id_parameter_of_zero_is_refused() {
    let db = Database::new();
    let p = echo_ids::procedure();
    assert_eq!((p.params[0].schema)()["minimum"], json!(1));
    let call = |args: Value| p.call(&db, args, 1);
    let (param, message) = refused(call(json!({ "id": 0, "list": [] })));
    assert_eq!(param, "id");
    assert!(message.contains("start at 1"), "{message}");
    assert_eq!(refused(call(json!({ "id": 1, "other": 0, "list": [] }))).0, "other");
    let (param, message) = refused(call(json!({ "id": 1, "list": [3, 0] })));
    assert_eq!(param, "list");
    assert!(message.contains("item 1"), "{message}");
    assert_eq!(refused(call(json!({ "id": -1, "list": [] }))).0, "id");

    assert_eq!(
        call(json!({ "id": 1, "other": u64::MAX, "list": [2, 3] })).unwrap(),
        json!([1, u64::MAX, 2, 3])
    );
    assert_eq!(call(json!({ "id": 5, "list": [] })).unwrap(), json!([5]));
}

#[test]
fn integer_parameters_out_of_range_are_refused() {
    let db = Database::new();
    let p = echo_ints::procedure();
    let ok = json!({ "a": 255, "b": -32768, "c": u32::MAX, "d": i64::MIN, "e": u64::MAX, "f": 1e300 });
    assert_eq!(p.call(&db, ok, 1).unwrap(), json!([255, -32768, u32::MAX, i64::MIN, u64::MAX, 1e300]));
    for (param, bad) in [
        ("a", json!(256)),
        ("a", json!(-1)),
        ("a", json!(1.5)),
        ("b", json!(32768)),
        ("c", json!(u64::from(u32::MAX) + 1)),
        ("d", json!(u64::MAX)),
        ("d", json!(1e19)),
        ("e", json!(-1)),
    ] {
        let mut args = object(json!({ "a": 0, "b": 0, "c": 0, "d": 0, "e": 0, "f": 0 }));
        args.insert(param.to_owned(), bad.clone());
        assert_eq!(refused(p.call(&db, Value::Object(args), 1)).0, param, "{param} = {bad}");
    }
}

/// A timeout too long to be a deadline (a hand-built `Procedure`; `#[procedure(timeout_ms)]`
/// allows at most an hour) means no deadline in `Procedure::call`, and a registry refuses it.
#[test]
fn a_procedure_timeout_too_long_for_a_deadline_does_not_panic_and_is_not_registered() {
    let long = Procedure { timeout: Some(Duration::MAX), ..whoami::procedure() };
    let (db, _) = bank(&[]);
    assert_eq!(long.call(&db, Value::Null, 1).unwrap(), json!(["who_am_i", false]));

    let mut registry = ProcedureRegistry::new();
    for timeout in
        [Duration::MAX, tabledb::procedure::MAX_PROCEDURE_TIMEOUT + Duration::from_nanos(1), Duration::ZERO]
    {
        let err = registry.register(Procedure { timeout: Some(timeout), ..whoami::procedure() }).unwrap_err();
        assert!(matches!(&err, ProcError::Registration(m) if m.contains("timeout")), "{err:?}");
    }
    registry
        .register(Procedure {
            timeout: Some(tabledb::procedure::MAX_PROCEDURE_TIMEOUT),
            ..whoami::procedure()
        })
        .unwrap();
}
