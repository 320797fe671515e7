//! The module has the function's visibility: a `pub(crate)` procedure in a nested module is
//! reachable from the crate root, like the function.

mod bank {
    pub mod accounts {
        use tabledb::procedure::ProcCtx;

        /// The balance of an account.
        #[tabledb::procedure]
        pub(crate) fn balance(ctx: &mut ProcCtx<'_>, account: u64) -> Result<u64, tabledb::Error> {
            let _ = ctx;
            Ok(account * 10)
        }

        // A private procedure, reachable inside this module only.
        #[tabledb::procedure]
        fn audit(ctx: &mut ProcCtx<'_>) -> Result<(), tabledb::Error> {
            let _ = ctx;
            Ok(())
        }

        pub fn all() -> [tabledb::Procedure; 2] {
            [balance::procedure(), audit::procedure()]
        }
    }
}

fn main() {
    let registry = tabledb::ProcedureRegistry::new()
        .with(bank::accounts::balance::procedure())
        .unwrap()
        .with(bank::accounts::all()[1])
        .unwrap();
    assert_eq!(registry.len(), 2);
    let db = tabledb::Database::new();
    let out = registry.get("balance").unwrap().call(&db, r#"{"account": 4}"#.parse().unwrap(), 1).unwrap();
    assert_eq!(out.to_string(), "40");
    // The function itself is unchanged and callable as before.
    let mut tx = db.begin();
    let mut ctx = tabledb::ProcCtx::new(&mut tx, "balance", None);
    assert_eq!(bank::accounts::balance(&mut ctx, 5).unwrap(), 50);
}
