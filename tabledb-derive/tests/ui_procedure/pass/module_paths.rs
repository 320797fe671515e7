//! Parameter types written relative to the function's module (`super::T`, `self::T`, nested
//! in other types) mean what they mean there.

use serde::Deserialize;
use serde_json::{Value, json};
use tabledb::procedure::ParamType;

#[derive(Deserialize, Debug)]
pub struct Order {
    pub qty: u32,
}

pub trait HasParam {
    type P;
}

impl HasParam for Order {
    type P = u32;
}

pub const LEN: usize = 2;

impl ParamType for Order {
    fn json_schema() -> Value {
        json!({ "type": "object" })
    }
}

mod shop {
    use tabledb::procedure;
    use tabledb::procedure::ProcCtx;

    #[derive(serde::Deserialize, Debug)]
    pub struct Note {
        pub text: String,
    }

    impl tabledb::procedure::ParamType for Note {
        fn json_schema() -> serde_json::Value {
            serde_json::json!({ "type": "object" })
        }
    }

    #[procedure]
    pub fn place(
        _ctx: &mut ProcCtx<'_>,
        order: super::Order,
        extra: Vec<super::Order>,
        note: Option<self::Note>,
        notes: Vec<self::Note>,
        bonus: <super::Order as super::HasParam>::P,
        code: tabledb::FixedStr<{ super::LEN }>,
    ) -> Result<u32, tabledb::Error> {
        let text = note.map_or(0, |n| n.text.len() as u32) + notes[0].text.len() as u32;
        let pairs = code.as_str().len() as u32;
        Ok(order.qty + extra.iter().map(|o| o.qty).sum::<u32>() + text + bonus + pairs)
    }
}

fn main() {
    let db = tabledb::Database::new();
    let args = json!({
        "order": { "qty": 3 },
        "extra": [{ "qty": 1 }, { "qty": 2 }],
        "note": { "text": "ab" },
        "notes": [{ "text": "xyz" }],
        "bonus": 100,
        "code": "ab",
    });
    let out = shop::place::procedure().call(&db, args, 1).unwrap();
    assert_eq!(out, json!(113));
    assert_eq!(shop::place::PARAMS[0].type_name, "super::Order");
}
