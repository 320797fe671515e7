//! Parsing of the attributes the derives read: `#[repr(...)]`, `#[table(...)]`,
//! `#[field_type(...)]`.

use proc_macro2::Span;
use syn::{Attribute, LitStr};

use crate::ast::Kind;
use crate::ctxt::Ctxt;

/// What the attributes of a struct say.
pub struct Attrs {
    /// `#[table(name = "...")]` or `#[field_type(name = "...")]`.
    pub name: Option<LitStr>,
    /// `crate = "path"`: where `tabledb` is found.
    pub krate: Option<syn::Path>,
    /// `#[repr(C)]` is present.
    pub repr_c: bool,
}

/// Reads the attributes of the struct. Unsupported reprs and unknown options are errors.
pub fn parse(cx: &mut Ctxt, attrs: &[Attribute], kind: Kind) -> Attrs {
    let mut out = Attrs { name: None, krate: None, repr_c: false };
    for attr in attrs {
        if is_named(attr.path(), "repr") {
            parse_repr(cx, attr, &mut out);
        } else if is_named(attr.path(), kind.attr_name()) {
            parse_options(cx, attr, kind, &mut out);
        }
    }
    out
}

/// Whether `path` is the single identifier `name`, also when written raw (`r#repr`), as the
/// compiler reads it.
fn is_named(path: &syn::Path, name: &str) -> bool {
    use syn::ext::IdentExt;
    path.get_ident().is_some_and(|i| i.unraw() == name)
}

fn parse_repr(cx: &mut Ctxt, attr: &Attribute, out: &mut Attrs) {
    let result = attr.parse_nested_meta(|meta| {
        if is_named(&meta.path, "C") {
            out.repr_c = true;
            return Ok(());
        }
        // Consume a parenthesized argument such as `packed(2)` or `align(8)` so that the
        // error below covers the whole item and parsing can continue.
        let name =
            meta.path.get_ident().map(|i| syn::ext::IdentExt::unraw(i).to_string()).unwrap_or_default();
        if meta.input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in meta.input);
            let _: proc_macro2::TokenStream = content.parse()?;
        }
        let why = match name.as_str() {
            "packed" => "packed structs allow unaligned fields, which cannot be borrowed from a record",
            "align" => "an explicit alignment adds padding that a record would store",
            "transparent" => "use #[repr(C)]",
            "Rust" => "the Rust layout is unspecified; use #[repr(C)]",
            _ => "tabledb records use exactly #[repr(C)]",
        };
        cx.error_spanned_by(&meta.path, format!("unsupported `repr({name})`: {why}"));
        Ok(())
    });
    if let Err(e) = result {
        cx.syn_error(e);
    }
}

fn parse_options(cx: &mut Ctxt, attr: &Attribute, kind: Kind, out: &mut Attrs) {
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if out.name.is_some() {
                cx.error_spanned_by(&lit, "duplicate `name` option");
            }
            out.name = Some(lit);
        } else if meta.path.is_ident("crate") {
            let lit: LitStr = meta.value()?.parse()?;
            if out.krate.is_some() {
                cx.error_spanned_by(&lit, "duplicate `crate` option");
            }
            match lit.parse::<syn::Path>() {
                Ok(path) => out.krate = Some(path),
                Err(_) => cx.error_spanned_by(&lit, "`crate` must be a path, such as \"::tabledb\""),
            }
        } else {
            let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
            return Err(meta.error(format!(
                "unknown option `{key}` in #[{}(...)]; expected `name` or `crate`",
                kind.attr_name()
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        cx.syn_error(e);
    }
}

/// The span to report a name error on: the literal when the name was given, else the struct.
pub fn name_span(attrs: &Attrs, ident: &syn::Ident) -> Span {
    attrs.name.as_ref().map_or(ident.span(), LitStr::span)
}
