//! A model of the input struct: its fields, and what their types are known to be.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Expr, ExprLit, GenericArgument, Lit, PathArguments, Type};

/// Which derive is running.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Table,
    FieldType,
}

impl Kind {
    pub fn attr_name(self) -> &'static str {
        match self {
            Kind::Table => "table",
            Kind::FieldType => "field_type",
        }
    }

    pub fn derive_name(self) -> &'static str {
        match self {
            Kind::Table => "Table",
            Kind::FieldType => "FieldType",
        }
    }
}

/// A field of the struct.
pub struct FieldModel<'a> {
    pub ident: &'a syn::Ident,
    /// The name without a raw-identifier prefix: `r#type` is `type`.
    pub name: String,
    pub ty: &'a Type,
    pub class: TyClass,
}

/// What a field type is, as far as the macro can tell from its tokens.
#[derive(Clone, Debug)]
pub enum TyClass {
    /// A built-in scalar: size (which equals its alignment).
    Scalar(usize),
    /// `FixedStr<N>` with a literal capacity.
    Str(usize),
    /// `[T; N]` with a literal length.
    Array(Box<TyClass>, usize),
    /// Some other type; the trait bound and const assertions check it.
    Other,
    /// A type that can never be a field, with the reason.
    Forbidden(String),
}

impl TyClass {
    /// Size and alignment, when the macro can compute them.
    pub fn layout(&self) -> Option<(usize, usize)> {
        match self {
            TyClass::Scalar(n) => Some((*n, *n)),
            TyClass::Str(cap) => Some((cap + 2, 1)),
            TyClass::Array(elem, len) => {
                let (size, align) = elem.layout()?;
                Some((size.checked_mul(*len)?, align))
            }
            TyClass::Other | TyClass::Forbidden(_) => None,
        }
    }

    fn forbidden_reason(&self) -> Option<&str> {
        match self {
            TyClass::Forbidden(why) => Some(why),
            TyClass::Array(elem, _) => elem.forbidden_reason(),
            _ => None,
        }
    }

    /// The reason the type can never be a field, if it cannot.
    pub fn forbidden(&self) -> Option<&str> {
        self.forbidden_reason()
    }
}

fn literal_usize(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => int.base10_parse().ok(),
        Expr::Group(g) => literal_usize(&g.expr),
        Expr::Paren(p) => literal_usize(&p.expr),
        _ => None,
    }
}

/// Generic types of the standard library refused as fields (when written with arguments).
const GENERIC_STD: &[&str] = &[
    "Vec",
    "VecDeque",
    "HashMap",
    "BTreeMap",
    "HashSet",
    "BTreeSet",
    "Box",
    "Rc",
    "Arc",
    "Cow",
    "Option",
    "Cell",
    "RefCell",
    "UnsafeCell",
    "Mutex",
    "RwLock",
    "PhantomData",
];

/// Classifies a field type from its tokens.
pub fn classify(ty: &Type) -> TyClass {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else { return TyClass::Other };
            let name = last.ident.to_string();
            let bare = p.path.segments.len() == 1 && last.arguments.is_none();
            if bare && let Some(class) = scalar(&name) {
                return class;
            }
            // The standard library's types below are refused by name only where the name can
            // be theirs: written alone or from `std`/`core`/`alloc`, and, for the generic ones,
            // with their type arguments. A program's own `Cell` or `grid::Cell` is its own type,
            // which the trait bound checks.
            let std_path = p.path.segments.len() == 1
                || ["std", "core", "alloc"].iter().any(|root| p.path.segments[0].ident == root);
            let generic = matches!(last.arguments, PathArguments::AngleBracketed(_));
            if name != "FixedStr" && (!std_path || !generic && GENERIC_STD.contains(&name.as_str())) {
                return TyClass::Other;
            }
            match name.as_str() {
                "FixedStr" => {
                    if let PathArguments::AngleBracketed(args) = &last.arguments
                        && let Some(GenericArgument::Const(e)) = args.args.first()
                        && let Some(cap) = literal_usize(e)
                    {
                        if cap == 0 {
                            return TyClass::Forbidden(
                                "a string of capacity 0 holds nothing; the capacity is at least 1 byte".to_owned(),
                            );
                        }
                        return TyClass::Str(cap);
                    }
                    if let PathArguments::AngleBracketed(args) = &last.arguments
                        && let Some(GenericArgument::Type(Type::Path(tp))) = args.args.first()
                        && tp.path.segments.len() == 1
                    {
                        // `FixedStr<N>` where N is a const item: the bound checks it.
                        return TyClass::Other;
                    }
                    TyClass::Other
                }
                "String" | "str" => TyClass::Forbidden(format!(
                    "`{name}` is heap-allocated and variable-sized; use `tabledb::FixedStr<N>` with a capacity of N bytes"
                )),
                "Vec" | "VecDeque" | "HashMap" | "BTreeMap" | "HashSet" | "BTreeSet" => TyClass::Forbidden(format!(
                    "`{name}` is heap-allocated and variable-sized; use a fixed-size array `[T; N]` or a separate table"
                )),
                "Box" | "Rc" | "Arc" | "Cow" => {
                    TyClass::Forbidden(format!("`{name}` is a pointer; records hold plain data only"))
                }
                "Option" => TyClass::Forbidden(
                    "`Option` has no fixed byte representation in a record; use a sentinel value or a bool flag field"
                        .to_owned(),
                ),
                "Cell" | "RefCell" | "UnsafeCell" | "Mutex" | "RwLock" => TyClass::Forbidden(format!(
                    "`{name}` has interior mutability; records are immutable snapshots"
                )),
                "PhantomData" => TyClass::Forbidden("`PhantomData` has no bytes to store".to_owned()),
                _ => TyClass::Other,
            }
        }
        Type::Array(a) => {
            let elem = classify(&a.elem);
            if let TyClass::Forbidden(why) = elem {
                return TyClass::Forbidden(why);
            }
            match literal_usize(&a.len) {
                Some(0) => TyClass::Forbidden("an array of zero elements has no bytes to store".to_owned()),
                Some(len) => TyClass::Array(Box::new(elem), len),
                None => TyClass::Other,
            }
        }
        Type::Reference(_) => {
            TyClass::Forbidden("references point outside the record; records hold plain data only".to_owned())
        }
        Type::Ptr(_) => TyClass::Forbidden(
            "raw pointers are addresses that mean nothing once stored; records hold plain data only"
                .to_owned(),
        ),
        Type::Slice(_) => {
            TyClass::Forbidden("slices are variable-sized; use a fixed-size array `[T; N]`".to_owned())
        }
        Type::Tuple(t) if t.elems.is_empty() => TyClass::Forbidden("`()` has no bytes to store".to_owned()),
        Type::Tuple(_) => TyClass::Forbidden(
            "tuples have an unspecified layout; use a #[derive(FieldType)] #[repr(C)] struct".to_owned(),
        ),
        Type::FnPtr(_) => TyClass::Forbidden("function pointers cannot be stored in a record".to_owned()),
        Type::TraitObject(_) | Type::ImplTrait(_) => {
            TyClass::Forbidden("trait objects are unsized; records hold plain data only".to_owned())
        }
        Type::Never(_) => TyClass::Forbidden("`!` has no values".to_owned()),
        Type::Group(g) => classify(&g.elem),
        Type::Paren(p) => classify(&p.elem),
        _ => TyClass::Other,
    }
}

fn scalar(name: &str) -> Option<TyClass> {
    Some(match name {
        "i8" | "u8" | "bool" => TyClass::Scalar(1),
        "i16" | "u16" => TyClass::Scalar(2),
        "i32" | "u32" | "f32" => TyClass::Scalar(4),
        "i64" | "u64" | "f64" => TyClass::Scalar(8),
        "usize" | "isize" => {
            return Some(TyClass::Forbidden(format!(
                "`{name}` has a different size on different platforms, so records would not be portable; use `u64`/`i64` or `u32`/`i32`"
            )));
        }
        "char" => {
            return Some(TyClass::Forbidden(
                "`char` is not plain data (most u32 values are not valid chars); store a `u32` or a `FixedStr<N>`"
                    .to_owned(),
            ));
        }
        "i128" | "u128" => {
            return Some(TyClass::Forbidden(format!(
                "`{name}` has an alignment that differs between compiler versions; use two `u64` fields"
            )));
        }
        _ => return None,
    })
}

/// A type as a user wrote it, for messages: `*const u64`, `&'static str`, `[u8; 4]`, `Vec<u32>`.
///
/// `TokenStream::to_string` puts a space between every two tokens (`Vec < u32 >`), and removing
/// every space glues words together (`*constu64`), so spaces are placed by token kind instead.
pub fn display_type(ty: &Type) -> String {
    let mut out = String::new();
    write_tokens(&mut out, ty.to_token_stream());
    out
}

fn write_tokens(out: &mut String, tokens: TokenStream) {
    // What the previous token was, which decides whether the next one needs a space before it.
    #[derive(PartialEq)]
    enum Prev {
        Start,
        Word,
        Tick,
        Lifetime,
        Punct,
    }
    let mut prev = Prev::Start;
    for tt in tokens {
        match tt {
            TokenTree::Ident(ident) => {
                if matches!(prev, Prev::Word | Prev::Lifetime) {
                    out.push(' ');
                }
                out.push_str(&ident.to_string());
                prev = if prev == Prev::Tick { Prev::Lifetime } else { Prev::Word };
            }
            TokenTree::Literal(lit) => {
                if matches!(prev, Prev::Word | Prev::Lifetime) {
                    out.push(' ');
                }
                out.push_str(&lit.to_string());
                prev = Prev::Word;
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                match c {
                    '+' | '=' => out.push_str(&format!(" {c} ")),
                    ',' | ';' => out.push_str(&format!("{c} ")),
                    '-' if p.spacing() == Spacing::Joint => out.push_str(" -"),
                    '>' if out.ends_with('-') => out.push_str("> "),
                    _ => out.push(c),
                }
                prev = if c == '\'' { Prev::Tick } else { Prev::Punct };
            }
            TokenTree::Group(g) => {
                if prev == Prev::Lifetime {
                    out.push(' ');
                }
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write_tokens(out, g.stream());
                out.push_str(close);
                prev = Prev::Word;
            }
        }
    }
}
