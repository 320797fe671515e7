//! The type system: built-in values through bytes and JSON, every refused value with its own
//! error, composite type registration and its refusals, custom serializers, and type ids
//! agreeing between compile time and run time.

use std::sync::Arc;

use serde_json::{Value, json};
use tabledb::schema::NameError;
use tabledb::types::{
    FieldType, MAX_ARRAY_DEPTH, MAX_RECORD_SIZE, MAX_TYPE_NAME_LEN, MemberDef, Primitive, Serializer,
    TypeDef, TypeError, TypeId, TypeKind, TypeLayout, TypeRegistry, ValueError,
};
use tabledb::{FieldType, FixedStr};

fn layout(reg: &mut TypeRegistry, name: &str) -> Arc<TypeLayout> {
    reg.resolve(name).unwrap_or_else(|e| panic!("resolve `{name}`: {e}"))
}

/// Parses JSON text, so that numbers take the representation serde_json gives them on input.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("parse {text}: {e}"))
}

/// `bytes` → JSON (must equal `json`) → JSON text → JSON → bytes (must equal `bytes`).
fn assert_round_trip(layout: &TypeLayout, bytes: &[u8], json: &Value) {
    layout.validate(bytes).unwrap_or_else(|e| panic!("{}: {bytes:?} invalid: {e}", layout.name));
    let shown = layout.to_json(bytes).unwrap_or_else(|e| panic!("{}: to_json: {e}", layout.name));
    assert_eq!(&shown, json, "{}: to_json of {bytes:?}", layout.name);
    let reparsed = parse(&serde_json::to_string(&shown).unwrap());
    // Scratch full of garbage: from_json must write every byte of the value.
    let mut out = vec![0xA5; layout.size];
    layout
        .from_json(&reparsed, &mut out)
        .unwrap_or_else(|e| panic!("{}: from_json {reparsed}: {e}", layout.name));
    assert_eq!(out, bytes, "{}: from_json of {reparsed}", layout.name);
}

fn from_json(layout: &TypeLayout, value: &Value) -> Result<Vec<u8>, ValueError> {
    let mut out = vec![0u8; layout.size];
    layout.from_json(value, &mut out).map(|()| out)
}

/// The canonical bytes of a string of capacity `cap`: little-endian u16 length, body, zeros.
fn str_bytes(cap: usize, s: &str) -> Vec<u8> {
    let mut b = (s.len() as u16).to_le_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    b.resize(cap + 2, 0);
    b
}

macro_rules! assert_ints_round_trip {
    ($reg:expr, $($t:ident),*) => {$(
        let l = layout($reg, stringify!($t));
        assert_eq!((l.size, l.align), (std::mem::size_of::<$t>(), std::mem::align_of::<$t>()));
        for v in [$t::MIN, $t::MIN / 3, 0, 1, 100, $t::MAX / 7, $t::MAX] {
            assert_round_trip(&l, &v.to_le_bytes(), &json!(v));
        }
    )*};
}

#[test]
fn integers_round_trip_through_bytes_and_json() {
    let mut reg = TypeRegistry::new();
    assert_ints_round_trip!(&mut reg, i8, i16, i32, i64, u8, u16, u32, u64);
}

#[test]
fn floats_round_trip_through_bytes_and_json() {
    let mut reg = TypeRegistry::new();
    let f32_ = layout(&mut reg, "f32");
    assert_eq!((f32_.size, f32_.align), (4, 4));
    for v in
        [0.0f32, -0.0, 1.5, -2.25, 0.1, f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-45, std::f32::consts::PI]
    {
        // Shown as the shortest decimal that reads back as this f32: 0.1, not 0.10000000149011612.
        let shortest: f64 = v.to_string().parse().unwrap();
        assert_round_trip(&f32_, &v.to_le_bytes(), &json!(shortest));
    }
    assert_eq!(serde_json::to_string(&f32_.to_json(&0.1f32.to_le_bytes()).unwrap()).unwrap(), "0.1");
    let f64_ = layout(&mut reg, "f64");
    assert_eq!((f64_.size, f64_.align), (8, 8));
    for v in [0.0f64, -0.0, 1.5, 0.1, f64::MAX, f64::MIN, f64::MIN_POSITIVE, 5e-324, std::f64::consts::E] {
        assert_round_trip(&f64_, &v.to_le_bytes(), &json!(v));
    }
}

/// Every finite f32 of a sweep over the bit patterns (both signs, subnormals, the largest)
/// comes back with the same bits from its JSON text, which has no more significant digits
/// than the f32's own shortest decimal.
#[test]
fn f32_json_text_reads_back_as_the_same_f32() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "f32");
    let stride = 9_973u32; // prime: the sweep visits every exponent with varied mantissas
    let edges = [0u32, 1, 2, 0x007F_FFFF, 0x0080_0000, 0x3DCC_CCCD, 0x7F7F_FFFF, 0x7F7F_FFFE];
    let sweep = (0..=u32::MAX / stride).map(|k| k * stride);
    for bits in sweep.chain(edges).flat_map(|b| [b, b | 0x8000_0000]) {
        let v = f32::from_bits(bits);
        if !v.is_finite() {
            continue;
        }
        let text = serde_json::to_string(&l.to_json(&v.to_le_bytes()).unwrap()).unwrap();
        let back = from_json(&l, &parse(&text)).unwrap_or_else(|e| panic!("{v:e} as {text}: {e}"));
        assert_eq!(back, v.to_le_bytes(), "{v:e} ({bits:#010x}) written as {text}");
        // Significant digits: those of the mantissa without leading and trailing zeros.
        let significant = |t: &str| {
            let mantissa: String =
                t.split(['e', 'E']).next().unwrap().chars().filter(char::is_ascii_digit).collect();
            mantissa.trim_start_matches('0').trim_end_matches('0').len()
        };
        assert!(significant(&text) <= significant(&format!("{v:e}")), "{v:e} written as {text}");
    }
}

#[test]
fn non_finite_floats_are_shown_as_null_and_null_is_not_a_float() {
    let mut reg = TypeRegistry::new();
    for name in ["f32", "f64"] {
        let l = layout(&mut reg, name);
        let nan =
            if name == "f32" { f32::NAN.to_le_bytes().to_vec() } else { f64::NAN.to_le_bytes().to_vec() };
        let inf = if name == "f32" {
            f32::INFINITY.to_le_bytes().to_vec()
        } else {
            f64::NEG_INFINITY.to_le_bytes().to_vec()
        };
        assert_eq!(l.to_json(&nan).unwrap(), Value::Null);
        assert_eq!(l.to_json(&inf).unwrap(), Value::Null);
        assert!(matches!(from_json(&l, &Value::Null), Err(ValueError::WrongJsonType { got: "null", .. })));
    }
}

#[test]
fn bool_round_trips_and_accepts_zero_and_one() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "bool");
    assert_eq!((l.size, l.align), (1, 1));
    assert_round_trip(&l, &[0], &json!(false));
    assert_round_trip(&l, &[1], &json!(true));
    assert_eq!(from_json(&l, &json!(0)).unwrap(), [0]);
    assert_eq!(from_json(&l, &json!(1)).unwrap(), [1]);
}

#[test]
fn bool_2_is_refused_from_bytes_and_from_json() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "bool");
    assert_eq!(l.validate(&[2]), Err(ValueError::InvalidBool(2)));
    assert_eq!(l.to_json(&[2]), Err(ValueError::InvalidBool(2)));
    assert_eq!(l.validate(&[0xff]), Err(ValueError::InvalidBool(0xff)));
    assert!(l.needs_validation());
    let err = from_json(&l, &json!(2)).unwrap_err();
    assert!(matches!(&err, ValueError::OutOfRange { ty: "bool", value } if value == "2"), "{err:?}");
    assert!(matches!(from_json(&l, &json!(-1)), Err(ValueError::OutOfRange { ty: "bool", .. })));
    assert!(matches!(from_json(&l, &json!(0.5)), Err(ValueError::OutOfRange { ty: "bool", .. })));
}

#[test]
fn strings_round_trip_and_are_zero_filled() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "string(8)");
    assert_eq!((l.size, l.align), (10, 1));
    assert!(matches!(l.kind, TypeKind::Str { capacity: 8 }));
    for s in ["", "a", "ada", "12345678", "héllo", "日本"] {
        assert_round_trip(&l, &str_bytes(8, s), &json!(s));
    }
    // Writing a short string over a long one leaves no trace of the long one.
    let mut out = str_bytes(8, "abcdefgh");
    l.from_json(&json!("xy"), &mut out).unwrap();
    assert_eq!(out, str_bytes(8, "xy"));

    let default = layout(&mut reg, "string");
    assert_eq!(default.name, "string(256)");
    assert_eq!(default.size, 258);
}

#[test]
fn a_string_too_long_is_refused_never_truncated() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "string(4)");
    assert_eq!(from_json(&l, &json!("abcde")), Err(ValueError::StringTooLong { len: 5, capacity: 4 }));
    // Three two-byte characters: 6 bytes, even though a 2-character prefix would fit.
    assert_eq!(from_json(&l, &json!("ééé")), Err(ValueError::StringTooLong { len: 6, capacity: 4 }));
    assert_eq!(from_json(&l, &json!("abcd")).unwrap(), str_bytes(4, "abcd"));

    assert_eq!(FixedStr::<4>::new("abcde").unwrap_err(), ValueError::StringTooLong { len: 5, capacity: 4 });
    let mut s = FixedStr::<4>::new("ok").unwrap();
    assert_eq!(s.set("too long"), Err(ValueError::StringTooLong { len: 8, capacity: 4 }));
    assert_eq!(s.as_str(), "ok", "a refused set leaves the string unchanged");
    assert!(serde_json::from_str::<FixedStr<4>>("\"abcde\"").is_err());
}

#[test]
fn invalid_string_bytes_are_refused() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "string(4)");

    let bad_utf8 = [2, 0, 0xff, 0xfe, 0, 0];
    assert_eq!(l.validate(&bad_utf8), Err(ValueError::InvalidUtf8));
    assert_eq!(l.to_json(&bad_utf8), Err(ValueError::InvalidUtf8));
    // A lone continuation byte, and a multi-byte character cut by the length.
    assert_eq!(l.validate(&[1, 0, 0x80, 0, 0, 0]), Err(ValueError::InvalidUtf8));
    assert_eq!(l.validate(&[1, 0, 0xc3, 0xa9, 0, 0]), Err(ValueError::InvalidUtf8));

    let tail = [1, 0, b'a', b'x', 0, 0];
    assert_eq!(l.validate(&tail), Err(ValueError::StringTail));
    assert_eq!(l.to_json(&tail), Err(ValueError::StringTail));
    assert_eq!(l.validate(&[0, 0, 0, 0, 0, 1]), Err(ValueError::StringTail));

    let long = [5, 0, b'a', b'b', b'c', b'd'];
    assert_eq!(l.validate(&long), Err(ValueError::StringTooLong { len: 5, capacity: 4 }));
    assert_eq!(
        l.validate(&[0xff, 0xff, 0, 0, 0, 0]),
        Err(ValueError::StringTooLong { len: 65535, capacity: 4 })
    );
}

#[test]
fn json_numbers_out_of_range_are_refused_for_every_integer_width() {
    let cases = [
        ("i8", "128", "-129"),
        ("i16", "32768", "-32769"),
        ("i32", "2147483648", "-2147483649"),
        ("i64", "9223372036854775808", "-9223372036854775809"),
        ("u8", "256", "-1"),
        ("u16", "65536", "-1"),
        ("u32", "4294967296", "-1"),
        ("u64", "18446744073709551616", "-1"),
    ];
    let mut reg = TypeRegistry::new();
    for (ty, above, below) in cases {
        let l = layout(&mut reg, ty);
        for text in [above, below, "100000000000000000000000"] {
            let err = from_json(&l, &parse(text)).unwrap_err();
            assert!(
                matches!(&err, ValueError::OutOfRange { ty: t, .. } if *t == ty),
                "{ty} from {text}: expected OutOfRange, got {err:?}"
            );
        }
    }
}

#[test]
fn non_integers_are_refused_by_integer_types() {
    let mut reg = TypeRegistry::new();
    for ty in ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"] {
        let l = layout(&mut reg, ty);
        for text in ["1.5", "-0.25", "1.0", "1e2"] {
            let err = from_json(&l, &parse(text)).unwrap_err();
            assert!(matches!(err, ValueError::NotAnInteger { .. }), "{ty} from {text}: {err:?}");
        }
    }
}

#[test]
fn f32_overflow_is_refused() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "f32");
    for text in ["1e40", "-1e40", "3.5e38"] {
        let err = from_json(&l, &parse(text)).unwrap_err();
        assert!(matches!(err, ValueError::OutOfRange { ty: "f32", .. }), "{text}: {err:?}");
    }
    // The largest f32 itself is accepted, and f64 takes 1e40 as it is.
    assert_eq!(from_json(&l, &json!(f32::MAX as f64)).unwrap(), f32::MAX.to_le_bytes());
    let f64_ = layout(&mut reg, "f64");
    assert_eq!(from_json(&f64_, &parse("1e40")).unwrap(), 1e40f64.to_le_bytes());
}

#[test]
fn wrong_json_types_are_refused() {
    let mut reg = TypeRegistry::new();
    reg.register_type(TypeDef::new("vec3", ["x", "y", "z"].map(|m| MemberDef::new(m, "f32")))).unwrap();
    let cases = [
        ("u32", json!("5"), "a string"),
        ("i8", json!(true), "a boolean"),
        ("u64", Value::Null, "null"),
        ("f32", json!("1.0"), "a string"),
        ("f64", json!([1.0]), "an array"),
        ("bool", json!("true"), "a string"),
        ("bool", json!({}), "an object"),
        ("string(4)", json!(5), "a number"),
        ("string(4)", json!(["a"]), "an array"),
        ("u8[2]", json!({"0": 1}), "an object"),
        ("u8[2]", json!("ab"), "a string"),
        ("vec3", json!([1, 2, 3]), "an array"),
        ("vec3", json!(1), "a number"),
    ];
    for (ty, value, kind) in cases {
        let l = layout(&mut reg, ty);
        let err = from_json(&l, &value).unwrap_err();
        assert!(
            matches!(&err, ValueError::WrongJsonType { got, .. } if *got == kind),
            "{ty} from {value}: expected WrongJsonType({kind}), got {err:?}"
        );
    }
}

#[test]
fn arrays_round_trip_and_refuse_a_wrong_length() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "u16[3]");
    assert_eq!((l.size, l.align), (6, 2));
    assert_round_trip(&l, &[1, 0, 2, 0, 0xff, 0xff], &json!([1, 2, 65535]));
    assert_eq!(from_json(&l, &json!([1, 2])), Err(ValueError::ArrayLength { expected: 3, got: 2 }));
    assert_eq!(from_json(&l, &json!([1, 2, 3, 4])), Err(ValueError::ArrayLength { expected: 3, got: 4 }));
    // The failing element is named.
    let err = from_json(&l, &json!([1, 70000, 3])).unwrap_err();
    assert!(
        matches!(&err, ValueError::In { path, source } if path == "[1]" && matches!(**source, ValueError::OutOfRange { ty: "u16", .. })),
        "{err:?}"
    );

    let nested = layout(&mut reg, "bool[2][2]");
    assert_eq!(nested.size, 4);
    assert_round_trip(&nested, &[1, 0, 0, 1], &json!([[true, false], [false, true]]));
    let err = nested.validate(&[1, 0, 0, 2]).unwrap_err();
    assert!(
        matches!(&err, ValueError::In { path, source } if path == "[1]"
            && matches!(&**source, ValueError::In { path, source } if path == "[1]" && **source == ValueError::InvalidBool(2))),
        "{err:?}"
    );

    let strings = layout(&mut reg, "string(2)[2]");
    let mut bytes = str_bytes(2, "ab");
    bytes.extend(str_bytes(2, "c"));
    assert_round_trip(&strings, &bytes, &json!(["ab", "c"]));
}

#[test]
fn composites_round_trip_and_refuse_missing_or_unknown_members() {
    let mut reg = TypeRegistry::new();
    let vec3 =
        reg.register_type(TypeDef::new("vec3", ["x", "y", "z"].map(|m| MemberDef::new(m, "f32")))).unwrap();
    assert_eq!((vec3.size, vec3.align), (12, 4));
    assert!(!vec3.needs_validation());
    let bytes: Vec<u8> = [1.0f32, -2.5, 8.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_round_trip(&vec3, &bytes, &json!({"x": 1.0, "y": -2.5, "z": 8.0}));

    assert_eq!(from_json(&vec3, &json!({"x": 1.0, "y": 2.0})), Err(ValueError::MissingMember("z".into())));
    assert_eq!(
        from_json(&vec3, &json!({"x": 1.0, "y": 2.0, "z": 3.0, "w": 4.0})),
        Err(ValueError::UnknownMember("w".into()))
    );
    let err = from_json(&vec3, &json!({"x": 1.0, "y": "2", "z": 3.0})).unwrap_err();
    assert!(matches!(&err, ValueError::In { path, .. } if path == "y"), "{err:?}");
}

#[test]
fn composite_padding_is_zero_on_output_and_checked_on_input() {
    let mut reg = TypeRegistry::new();
    // `b` is aligned to 4, so bytes 1..4 are padding.
    let hit = reg
        .register_type(TypeDef::new("hit", [MemberDef::new("a", "u8"), MemberDef::new("b", "u32")]))
        .unwrap();
    assert_eq!(hit.size, 8);
    assert!(hit.needs_validation(), "padding must be checked");
    let mut out = vec![0xEE; 8];
    hit.from_json(&json!({"a": 7, "b": 9}), &mut out).unwrap();
    assert_eq!(out, [7, 0, 0, 0, 9, 0, 0, 0]);
    hit.validate(&out).unwrap();
    out[2] = 1;
    assert_eq!(hit.validate(&out), Err(ValueError::NonZeroPadding { offset: 2 }));
}

#[test]
fn a_wrong_number_of_bytes_is_refused() {
    let mut reg = TypeRegistry::new();
    let l = layout(&mut reg, "u32");
    assert_eq!(l.to_json(&[1, 2, 3]), Err(ValueError::SizeMismatch { expected: 4, got: 3 }));
    assert_eq!(l.validate(&[1, 2, 3, 4, 5]), Err(ValueError::SizeMismatch { expected: 4, got: 5 }));
    let mut short = [0u8; 2];
    assert_eq!(l.from_json(&json!(1), &mut short), Err(ValueError::SizeMismatch { expected: 4, got: 2 }));
}

fn vec3_def() -> TypeDef {
    TypeDef::new("vec3", ["x", "y", "z"].map(|m| MemberDef::new(m, "f32")))
}

fn register_err(def: TypeDef) -> TypeError {
    let mut reg = TypeRegistry::new();
    let before: Vec<String> = reg.iter().map(|l| l.name.clone()).collect();
    let err = reg.register_type(def).unwrap_err();
    let after: Vec<String> = reg.iter().map(|l| l.name.clone()).collect();
    assert_eq!(before, after, "a refused registration leaves the registry unchanged");
    err
}

fn def(name: &str, members: Vec<MemberDef>, size: Option<usize>, align: Option<usize>) -> TypeDef {
    TypeDef { name: name.into(), members, size, align }
}

fn at(name: &str, ty: &str, offset: usize) -> MemberDef {
    MemberDef { offset: Some(offset), ..MemberDef::new(name, ty) }
}

#[test]
fn register_type_computes_c_layout_and_accepts_explicit_consistent_layouts() {
    let mut reg = TypeRegistry::new();
    let t = reg
        .register_type(TypeDef::new(
            "mixed",
            [MemberDef::new("a", "u8"), MemberDef::new("b", "f64"), MemberDef::new("c", "u16")],
        ))
        .unwrap();
    let TypeKind::Composite { members } = &t.kind else { panic!("not a composite: {t:?}") };
    let offsets: Vec<usize> = members.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [0, 8, 16]);
    assert_eq!((t.size, t.align), (24, 8));
    assert_eq!(t.id, TypeId::of_name("mixed"));
    assert!(reg.get_by_name("mixed").is_some_and(|l| Arc::ptr_eq(l, &t)));
    assert!(reg.get(t.id).is_some_and(|l| Arc::ptr_eq(l, &t)));

    let explicit = reg
        .register_type(def("wide", vec![at("a", "u8", 0), at("b", "u32", 8)], Some(32), Some(16)))
        .unwrap();
    assert_eq!((explicit.size, explicit.align), (32, 16));

    let with_string = reg
        .register_type(TypeDef::new(
            "label",
            [
                MemberDef { max_len: Some(6), ..MemberDef::new("text", "string") },
                MemberDef::new("pos", "vec2[1]"),
            ],
        ))
        .unwrap_err();
    assert_eq!(with_string, TypeError::UnknownType("vec2".into()));
    let with_string = reg
        .register_type(TypeDef::new(
            "label",
            [
                MemberDef { max_len: Some(6), ..MemberDef::new("text", "string") },
                MemberDef::new("pos", "mixed[2]"),
            ],
        ))
        .unwrap();
    assert_eq!(with_string.size, 8 + 48);
    assert!(reg.get_by_name("string(6)").is_some());
}

#[test]
fn a_refused_registration_leaves_no_string_or_array_behind() {
    let mut reg = TypeRegistry::new();
    let err = reg
        .register_type(TypeDef::new("t", [MemberDef::new("a", "string(77)"), MemberDef::new("b", "nope")]))
        .unwrap_err();
    assert_eq!(err, TypeError::UnknownType("nope".into()));
    assert!(reg.get_by_name("string(77)").is_none());
    assert!(reg.get_by_name("t").is_none());
}

#[test]
fn register_type_refuses_size_not_multiple_of_align() {
    let err = register_err(def("odd", vec![MemberDef::new("a", "u16")], Some(6), Some(4)));
    assert_eq!(err, TypeError::SizeNotMultipleOfAlign { name: "odd".into(), size: 6, align: 4 });
}

#[test]
fn register_type_refuses_zero_size() {
    let err = register_err(def("empty", vec![MemberDef::new("a", "u8")], Some(0), None));
    assert_eq!(err, TypeError::ZeroSize("empty".into()));
}

#[test]
fn register_type_refuses_no_members() {
    assert_eq!(register_err(TypeDef::new("none", [])), TypeError::NoMembers("none".into()));
}

#[test]
fn register_type_refuses_unknown_member_types() {
    let cases = [
        ("nope", TypeError::UnknownType("nope".into())),
        ("u32[", TypeError::UnknownType("u32[".into())),
        ("string(x)", TypeError::UnknownType("string(x)".into())),
        ("string(007)", TypeError::UnknownType("string(007)".into())),
        ("vec3[2]", TypeError::UnknownType("vec3".into())),
        ("string(0)", TypeError::BadStringCapacity(0)),
        ("string(65535)", TypeError::BadStringCapacity(65535)),
        ("u8[0]", TypeError::BadArrayLen(0)),
    ];
    for (ty, expected) in cases {
        assert_eq!(register_err(TypeDef::new("t", [MemberDef::new("a", ty)])), expected, "{ty}");
    }
    assert_eq!(
        register_err(TypeDef::new("t", [MemberDef { max_len: Some(4), ..MemberDef::new("a", "u32") }])),
        TypeError::MaxLenOnNonString("u32".into())
    );
}

#[test]
fn register_type_refuses_duplicate_and_builtin_names() {
    let mut reg = TypeRegistry::new();
    reg.register_type(vec3_def()).unwrap();
    assert_eq!(reg.register_type(vec3_def()), Err(TypeError::DuplicateType("vec3".into())));
    for builtin in ["u32", "i8", "f64", "bool", "string"] {
        assert_eq!(
            reg.register_type(TypeDef::new(builtin, [MemberDef::new("a", "u8")])),
            Err(TypeError::Builtin(builtin.into()))
        );
    }
}

#[test]
fn register_type_refuses_invalid_type_names() {
    let long = "a".repeat(64);
    let cases: [(&str, NameError); 8] = [
        ("../x", NameError::InvalidChar { ch: '.', pos: 0 }),
        ("", NameError::Empty),
        ("a b", NameError::InvalidChar { ch: ' ', pos: 1 }),
        ("a\0b", NameError::InvalidChar { ch: '\0', pos: 1 }),
        ("Vec3", NameError::InvalidChar { ch: 'V', pos: 0 }),
        ("vec-3", NameError::InvalidChar { ch: '-', pos: 3 }),
        ("3d", NameError::LeadingDigit('3')),
        (&long, NameError::TooLong { len: 64 }),
    ];
    for (name, source) in cases {
        let err = register_err(TypeDef::new(name, [MemberDef::new("a", "u8")]));
        assert_eq!(err, TypeError::InvalidName { name: name.into(), source }, "{name:?}");
    }
    let mut reg = TypeRegistry::new();
    reg.register_type(TypeDef::new("a".repeat(63), [MemberDef::new("a", "u8")])).unwrap();
    reg.register_type(TypeDef::new("_v2", [MemberDef::new("a", "u8")])).unwrap();
}

#[test]
fn register_type_refuses_invalid_or_duplicate_member_names() {
    let err = register_err(TypeDef::new("t", [MemberDef::new("X", "u8")]));
    assert_eq!(
        err,
        TypeError::InvalidName { name: "X".into(), source: NameError::InvalidChar { ch: 'X', pos: 0 } }
    );
    let err = register_err(TypeDef::new("t", [MemberDef::new("a", "u8"), MemberDef::new("a", "u16")]));
    assert_eq!(err, TypeError::DuplicateMember { name: "t".into(), member: "a".into() });
}

#[test]
fn register_type_refuses_misaligned_and_overlapping_members() {
    let err = register_err(def("t", vec![at("a", "u8", 0), at("b", "u32", 2)], None, None));
    assert_eq!(
        err,
        TypeError::MisalignedMember { name: "t".into(), member: "b".into(), offset: 2, align: 4 }
    );

    let err = register_err(def("t", vec![at("a", "u32", 4), at("b", "u32", 4)], None, None));
    assert_eq!(err, TypeError::OverlappingMember { name: "t".into(), member: "b".into() });
    let err = register_err(def("t", vec![at("a", "u64", 0), at("b", "u32", 4)], None, None));
    assert_eq!(err, TypeError::OverlappingMember { name: "t".into(), member: "b".into() });
    // Members are listed in offset order; a computed offset follows the member before it.
    let err = register_err(def("t", vec![at("a", "u32", 8), at("b", "u32", 0)], None, None));
    assert_eq!(err, TypeError::OverlappingMember { name: "t".into(), member: "b".into() });

    let err = register_err(def("t", vec![at("a", "u32", 0), at("b", "u8", 4)], Some(4), Some(4)));
    assert_eq!(err, TypeError::MemberOutOfBounds { name: "t".into(), member: "b".into(), end: 5, size: 4 });
}

#[test]
fn register_type_refuses_bad_alignments() {
    for align in [0, 3, 6, 128] {
        let err = register_err(def("t", vec![MemberDef::new("a", "u8")], None, Some(align)));
        assert_eq!(err, TypeError::BadAlign { name: "t".into(), align }, "align {align}");
    }
    let err = register_err(def("t", vec![MemberDef::new("a", "u32")], None, Some(2)));
    assert_eq!(
        err,
        TypeError::AlignTooSmall { name: "t".into(), align: 2, member: "a".into(), member_align: 4 }
    );
}

#[test]
fn register_type_refuses_types_over_the_record_limit() {
    let err = register_err(TypeDef::new(
        "big",
        [MemberDef::new("a", "u8[40000]"), MemberDef::new("b", "u8[40000]")],
    ));
    assert_eq!(err, TypeError::TooLarge { name: "big".into(), size: 80000 });
    let err = register_err(def("big", vec![MemberDef::new("a", "u8")], Some(MAX_RECORD_SIZE + 1), Some(1)));
    assert_eq!(err, TypeError::TooLarge { name: "big".into(), size: MAX_RECORD_SIZE + 1 });
    let err = register_err(TypeDef::new("big", [MemberDef::new("a", "u64[10000]")]));
    assert_eq!(err, TypeError::TooLarge { name: "u64[10000]".into(), size: 80000 });
    // Exactly the limit is allowed.
    let mut reg = TypeRegistry::new();
    let max = reg.register_type(TypeDef::new("max", [MemberDef::new("a", "u8[65536]")])).unwrap();
    assert_eq!(max.size, MAX_RECORD_SIZE);
}

#[test]
fn type_defs_round_trip_through_a_fresh_registry() {
    let mut reg = TypeRegistry::new();
    reg.register_type(vec3_def()).unwrap();
    let label = reg
        .register_type(TypeDef::new(
            "label",
            [
                MemberDef { max_len: Some(10), ..MemberDef::new("text", "string") },
                MemberDef::new("at", "vec3"),
                MemberDef::new("flags", "bool[3]"),
            ],
        ))
        .unwrap();
    let order: Vec<&str> = reg.composites().map(|l| l.name.as_str()).collect();
    assert_eq!(order, ["vec3", "label"]);

    let mut fresh = TypeRegistry::new();
    for name in order {
        let def = reg.type_def(name).unwrap();
        let text = serde_json::to_string(&def).unwrap();
        let back: TypeDef = serde_json::from_str(&text).unwrap();
        assert_eq!(back, def);
        fresh.register_type(back).unwrap();
    }
    assert_eq!(**fresh.get_by_name("label").unwrap(), *label);
    assert!(reg.type_def("u32").is_none());
}

// A custom serializer: a 3-vector as `[x, y, z]`.

fn vec3_to_json(layout: &TypeLayout, bytes: &[u8]) -> Result<Value, ValueError> {
    let TypeKind::Composite { members } = &layout.kind else { unreachable!("vec3 is a composite") };
    let items = members
        .iter()
        .map(|m| m.layout.to_json(&bytes[m.offset..m.offset + m.layout.size]))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::Array(items))
}

fn vec3_from_json(layout: &TypeLayout, value: &Value, out: &mut [u8]) -> Result<(), ValueError> {
    let TypeKind::Composite { members } = &layout.kind else { unreachable!("vec3 is a composite") };
    let Value::Array(items) = value else {
        return Err(ValueError::WrongJsonType { expected: "[x, y, z]".into(), got: "not an array" });
    };
    if items.len() != members.len() {
        return Err(ValueError::ArrayLength { expected: members.len(), got: items.len() });
    }
    for (m, item) in members.iter().zip(items) {
        m.layout
            .from_json(item, &mut out[m.offset..m.offset + m.layout.size])
            .map_err(|e| e.within(m.name.clone()))?;
    }
    Ok(())
}

const VEC3_AS_ARRAY: Serializer = Serializer { to_json: vec3_to_json, from_json: vec3_from_json };

#[test]
fn a_custom_serializer_presents_a_vector_as_an_array() {
    let mut reg = TypeRegistry::new();
    let vec3 = reg.register_type_with(vec3_def(), VEC3_AS_ARRAY).unwrap();
    let bytes: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_round_trip(&vec3, &bytes, &json!([1.0, 2.0, 3.0]));
    assert_eq!(from_json(&vec3, &json!([1.0, 2.0])), Err(ValueError::ArrayLength { expected: 3, got: 2 }));
    assert!(matches!(
        from_json(&vec3, &json!({"x": 1, "y": 2, "z": 3})),
        Err(ValueError::WrongJsonType { .. })
    ));

    // Arrays of the type, and composites holding it, use its serializer.
    let path = layout(&mut reg, "vec3[2]");
    let mut two = bytes.clone();
    two.extend(&bytes);
    assert_eq!(path.to_json(&two).unwrap(), json!([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]));
    let ray = reg
        .register_type(TypeDef::new("ray", [MemberDef::new("from", "vec3"), MemberDef::new("to", "vec3")]))
        .unwrap();
    assert_eq!(ray.to_json(&two).unwrap(), json!({"from": [1.0, 2.0, 3.0], "to": [1.0, 2.0, 3.0]}));
    assert_round_trip(&ray, &two, &json!({"from": [1.0, 2.0, 3.0], "to": [1.0, 2.0, 3.0]}));

    // Validation stays structural whatever the serializer, and a serializer only ever sees
    // exactly one value's bytes.
    assert_eq!(vec3.validate(&bytes[..8]), Err(ValueError::SizeMismatch { expected: 12, got: 8 }));
    assert_eq!(vec3.to_json(&bytes[..8]), Err(ValueError::SizeMismatch { expected: 12, got: 8 }));
    let mut short = [0u8; 8];
    assert_eq!(
        vec3.from_json(&json!([1, 2, 3]), &mut short),
        Err(ValueError::SizeMismatch { expected: 12, got: 8 })
    );
}

#[test]
fn set_serializer_replaces_it_on_composites_only() {
    let mut reg = TypeRegistry::new();
    reg.register_type(vec3_def()).unwrap();
    let bytes: Vec<u8> = [1.0f32, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let before = layout(&mut reg, "vec3");
    assert_eq!(before.to_json(&bytes).unwrap(), json!({"x": 1.0, "y": 2.0, "z": 3.0}));
    reg.set_serializer("vec3", VEC3_AS_ARRAY).unwrap();
    assert_eq!(layout(&mut reg, "vec3").to_json(&bytes).unwrap(), json!([1.0, 2.0, 3.0]));
    assert_eq!(reg.set_serializer("u32", VEC3_AS_ARRAY), Err(TypeError::Builtin("u32".into())));
    assert_eq!(reg.set_serializer("nope", VEC3_AS_ARRAY), Err(TypeError::UnknownType("nope".into())));
}

// Compile-time descriptions and run-time layouts.

#[derive(FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Vec3 {
    x: f32,
    y: f32,
    z: f32,
}

#[derive(FieldType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[field_type(name = "particle_v1")]
struct Particle {
    mass: f64,
    at: Vec3,
    name: FixedStr<8>,
    alive: bool,
    kind: u8,
}

fn assert_id_matches<T: FieldType>(name: &str) {
    let mut reg = TypeRegistry::new();
    assert_eq!(T::TYPE_ID, TypeId::of_name(name), "{name}");
    assert_eq!(T::DESC.type_id(), TypeId::of_name(name), "{name}");
    assert_eq!(T::DESC.name(), name);
    assert_eq!(tabledb::schema::type_id_of::<T>(), TypeId::of_name(name));
    let registered = reg.register_desc(&T::DESC).unwrap();
    assert_eq!(registered.id, T::TYPE_ID, "{name}");
    assert_eq!(registered.name, name);
    assert_eq!((registered.size, registered.align), (std::mem::size_of::<T>(), std::mem::align_of::<T>()));
}

#[test]
fn compile_time_type_ids_equal_run_time_ids() {
    assert_id_matches::<i8>("i8");
    assert_id_matches::<i16>("i16");
    assert_id_matches::<i32>("i32");
    assert_id_matches::<i64>("i64");
    assert_id_matches::<u8>("u8");
    assert_id_matches::<u16>("u16");
    assert_id_matches::<u32>("u32");
    assert_id_matches::<u64>("u64");
    assert_id_matches::<f32>("f32");
    assert_id_matches::<f64>("f64");
    assert_id_matches::<bool>("bool");
    assert_id_matches::<FixedStr<1>>("string(1)");
    assert_id_matches::<FixedStr<32>>("string(32)");
    assert_id_matches::<FixedStr<256>>("string(256)");
    assert_id_matches::<FixedStr<65534>>("string(65534)");
    assert_id_matches::<[u32; 4]>("u32[4]");
    assert_id_matches::<[bool; 10]>("bool[10]");
    assert_id_matches::<[FixedStr<8>; 3]>("string(8)[3]");
    assert_id_matches::<[[u16; 3]; 2]>("u16[3][2]");
    assert_id_matches::<[[[i8; 1]; 2]; 3]>("i8[1][2][3]");
    assert_id_matches::<Vec3>("vec3");
    assert_id_matches::<[Vec3; 2]>("vec3[2]");
    assert_id_matches::<Particle>("particle_v1");

    for p in Primitive::ALL {
        assert_eq!(p.type_id(), TypeId::of_name(p.name()));
    }
    // Run-time names resolve to the same ids.
    let mut reg = TypeRegistry::new();
    assert_eq!(layout(&mut reg, "u16[3][2]").id, <[[u16; 3]; 2] as FieldType>::TYPE_ID);
    assert_eq!(layout(&mut reg, "string(32)").id, <FixedStr<32> as FieldType>::TYPE_ID);
    assert_ne!(TypeId::of_name("u32"), TypeId::of_name("i32"));
}

#[test]
fn derived_composites_register_with_their_members() {
    let mut reg = TypeRegistry::new();
    let p = reg.register_desc(&Particle::DESC).unwrap();
    assert_eq!((p.size, p.align), (32, 8));
    let TypeKind::Composite { members } = &p.kind else { panic!("{p:?}") };
    let shape: Vec<(&str, usize, &str)> =
        members.iter().map(|m| (m.name.as_str(), m.offset, m.layout.name.as_str())).collect();
    assert_eq!(
        shape,
        [
            ("mass", 0, "f64"),
            ("at", 8, "vec3"),
            ("name", 20, "string(8)"),
            ("alive", 30, "bool"),
            ("kind", 31, "u8")
        ]
    );
    assert!(reg.get_by_name("vec3").is_some(), "member types are registered too");
    // A bool and a string need checking; three floats do not. Compile time agrees with run time.
    assert!(p.needs_validation());
    assert_eq!(p.needs_validation(), Particle::NEEDS_VALIDATION);
    let vec3 = reg.get_by_name("vec3").unwrap();
    assert!(!vec3.needs_validation());
    assert_eq!(vec3.needs_validation(), Vec3::NEEDS_VALIDATION);
}

#[test]
fn registering_a_derived_composite_twice_is_idempotent_but_a_different_layout_is_refused() {
    let mut reg = TypeRegistry::new();
    let first = reg.register_desc(&Vec3::DESC).unwrap();
    let second = reg.register_desc(&Vec3::DESC).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(reg.composites().count(), 1);

    // The same layout declared at run time first is the same type.
    let mut reg = TypeRegistry::new();
    let runtime = reg.register_type(vec3_def()).unwrap();
    let derived = reg.register_desc(&Vec3::DESC).unwrap();
    assert!(Arc::ptr_eq(&runtime, &derived));

    // A different `vec3` under the same name is refused, whichever comes first.
    let mut reg = TypeRegistry::new();
    reg.register_type(TypeDef::new("vec3", ["x", "y", "z"].map(|m| MemberDef::new(m, "f64")))).unwrap();
    assert_eq!(reg.register_desc(&Vec3::DESC), Err(TypeError::DuplicateType("vec3".into())));
    let mut reg = TypeRegistry::new();
    reg.register_desc(&Vec3::DESC).unwrap();
    assert_eq!(
        reg.register_type(TypeDef::new("vec3", [MemberDef::new("x", "f32")])),
        Err(TypeError::DuplicateType("vec3".into()))
    );
    let renamed = TypeDef::new("vec3", ["a", "b", "c"].map(|m| MemberDef::new(m, "f32")));
    let mut reg = TypeRegistry::new();
    reg.register_type(renamed).unwrap();
    assert_eq!(reg.register_desc(&Vec3::DESC), Err(TypeError::DuplicateType("vec3".into())));
}

#[test]
fn derived_values_have_the_bytes_the_codec_expects() {
    let mut reg = TypeRegistry::new();
    let l = reg.register_desc(&Particle::DESC).unwrap();
    let json =
        json!({"mass": 2.5, "at": {"x": 1.0, "y": 2.0, "z": 3.0}, "name": "ab", "alive": true, "kind": 7});
    let bytes = from_json(&l, &json).unwrap();
    let mut expected = 2.5f64.to_le_bytes().to_vec();
    for v in [1.0f32, 2.0, 3.0] {
        expected.extend(v.to_le_bytes());
    }
    expected.extend(str_bytes(8, "ab"));
    expected.extend([1, 7]);
    assert_eq!(bytes, expected);
    assert_eq!(l.to_json(&bytes).unwrap(), json);
    // The compile-time description validates with the same rules.
    Particle::DESC.validate(&bytes).unwrap();
    let mut bad = bytes.clone();
    bad[30] = 2;
    let err = Particle::DESC.validate(&bad).unwrap_err();
    assert!(
        matches!(&err, ValueError::In { path, source } if path == "alive" && **source == ValueError::InvalidBool(2))
    );
    assert_eq!(Particle::DESC.validate(&bad), l.validate(&bad));
}

#[test]
fn fixed_str_behaves_as_a_string() {
    let s = FixedStr::<8>::new("héllo").unwrap();
    assert_eq!(s.as_str(), "héllo");
    assert_eq!(s.len(), 6);
    assert!(!s.is_empty());
    assert!(FixedStr::<8>::EMPTY.is_empty());
    assert_eq!(FixedStr::<8>::default(), FixedStr::<8>::EMPTY);
    assert_eq!(s, "héllo");
    assert_eq!(s.to_string(), "héllo");
    assert_eq!(format!("{s:?}"), "\"héllo\"");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"héllo\"");
    assert_eq!(serde_json::from_str::<FixedStr<8>>("\"abc\"").unwrap(), "abc");
    assert_eq!(FixedStr::<8>::try_from("abc").unwrap(), FixedStr::<8>::new("abc").unwrap());
    assert_eq!(std::mem::size_of::<FixedStr<8>>(), 10);
    assert_eq!(std::mem::align_of::<FixedStr<8>>(), 1);
    assert_eq!(FixedStr::<8>::CAPACITY, 8);
    assert_eq!(<FixedStr<8> as FieldType>::DESC.size, 10);
}

/// A type name is bounded in length and in array nesting, and refused before anything is
/// parsed recursively or registered: a name of a hundred thousand `[1]` suffixes does not
/// overflow the stack, and a refused name leaves the registry as it was.
#[test]
fn type_names_are_bounded_in_length_and_array_depth() {
    let mut reg = TypeRegistry::new();
    let names = |reg: &TypeRegistry| reg.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    let before = names(&reg);

    let huge = format!("u8{}", "[1]".repeat(100_000));
    assert_eq!(reg.resolve(&huge).unwrap_err(), TypeError::NameTooLong { len: huge.len() });
    assert_eq!(reg.resolve_spec(&huge, Some(4)).unwrap_err(), TypeError::NameTooLong { len: huge.len() });
    let long = "a".repeat(MAX_TYPE_NAME_LEN + 1);
    assert_eq!(reg.resolve(&long).unwrap_err(), TypeError::NameTooLong { len: MAX_TYPE_NAME_LEN + 1 });

    let too_deep = format!("u8{}", "[1]".repeat(MAX_ARRAY_DEPTH + 1));
    assert_eq!(
        reg.resolve(&too_deep).unwrap_err(),
        TypeError::ArrayTooDeep { name: too_deep.clone(), depth: MAX_ARRAY_DEPTH + 1 }
    );
    assert_eq!(names(&reg), before, "a refused name registers nothing");

    // A member over a limit is named, with the limit.
    let err = register_err(TypeDef::new("t", [MemberDef::new("a", too_deep.as_str())]));
    assert_eq!(
        err,
        TypeError::MemberType {
            name: "t".into(),
            member: "a".into(),
            source: Box::new(TypeError::ArrayTooDeep { name: too_deep.clone(), depth: MAX_ARRAY_DEPTH + 1 }),
        }
    );
    assert!(err.to_string().contains(&format!("the limit is {MAX_ARRAY_DEPTH}")), "{err}");
    let err = register_err(TypeDef::new("t", [MemberDef::new("a", huge.as_str())]));
    assert!(matches!(&err, TypeError::MemberType { member, .. } if member == "a"), "{err:?}");
    assert!(err.to_string().contains(&MAX_TYPE_NAME_LEN.to_string()), "{err}");

    // Exactly the depth limit resolves, one type per level, innermost first.
    let deepest = format!("u8{}", "[2]".repeat(MAX_ARRAY_DEPTH));
    let l = layout(&mut reg, &deepest);
    assert_eq!(l.size, 1 << MAX_ARRAY_DEPTH);
    assert_eq!(names(&reg).len(), before.len() + MAX_ARRAY_DEPTH);
    // An array of it is one level too deep, however it is built.
    assert_eq!(
        reg.array(l.clone(), 2).unwrap_err(),
        TypeError::ArrayTooDeep { name: format!("{deepest}[2]"), depth: MAX_ARRAY_DEPTH + 1 }
    );

    // The longest canonical name fits: a 63-byte composite nested as deep as allowed, with
    // the longest counts (whose size is then refused for the record limit, not the name).
    let composite = "c".repeat(63);
    reg.register_type(TypeDef::new(composite.as_str(), [MemberDef::new("a", "u8")])).unwrap();
    let longest = format!("{composite}{}", "[65536]".repeat(MAX_ARRAY_DEPTH));
    assert!(longest.len() <= MAX_TYPE_NAME_LEN, "{}", longest.len());
    assert!(matches!(reg.resolve(&longest), Err(TypeError::TooLarge { .. })));
    let nested = format!("{composite}{}", "[1]".repeat(MAX_ARRAY_DEPTH));
    assert_eq!(layout(&mut reg, &nested).name, nested);

    // The parse errors name the part that is wrong, as before.
    assert_eq!(reg.resolve("u8[x][1]").unwrap_err(), TypeError::UnknownType("u8[x]".into()));
    assert_eq!(reg.resolve("nope[2][2]").unwrap_err(), TypeError::UnknownType("nope".into()));
}

/// Compile-time types obey the same nesting limit, so that every stored schema resolves again:
/// a derived array nested deeper does not compile (tabledb-derive's `array_nested_too_deep`),
/// and a description built by hand is refused at registration.
#[test]
fn derived_arrays_deeper_than_the_limit_are_refused() {
    let mut reg = TypeRegistry::new();
    type Ok8 = [[[[[[[[u8; 1]; 1]; 1]; 1]; 1]; 1]; 1]; 1];
    let l = reg.register_desc(&<Ok8 as FieldType>::DESC).unwrap();
    assert_eq!(reg.resolve(&l.name).unwrap().id, l.id);
    assert_eq!(<Ok8 as FieldType>::DESC.array_depth(), MAX_ARRAY_DEPTH);
    static NINE: tabledb::types::TypeDesc = tabledb::types::TypeDesc {
        kind: tabledb::types::DescKind::Array { elem: &<Ok8 as FieldType>::DESC, len: 1 },
        size: 1,
        align: 1,
    };
    let err = reg.register_desc(&NINE).unwrap_err();
    assert!(matches!(err, TypeError::ArrayTooDeep { depth, .. } if depth == MAX_ARRAY_DEPTH + 1), "{err:?}");
}
