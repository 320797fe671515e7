//! Checks on the input struct. Every mistake is recorded, spanned on what is wrong, before any
//! code is generated.

use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields, GenericParam};

use crate::ast::{FieldModel, Kind, TyClass, classify, display_type};
use crate::attr::{self, Attrs};
use crate::case::{snake_case, upper_case};
use crate::ctxt::Ctxt;

/// The largest record, mirroring `tabledb::types::MAX_RECORD_SIZE` (the generated const
/// assertion checks against the real one).
pub const MAX_RECORD_SIZE: usize = 64 * 1024;

/// A struct that passed every check.
pub struct Checked<'a> {
    pub input: &'a DeriveInput,
    pub attrs: Attrs,
    /// Table or type name.
    pub name: String,
    pub fields: Vec<FieldModel<'a>>,
}

/// Names a composite type may not take: the built-in types' (`tabledb::types::Primitive` and
/// `string`), which the type registry refuses.
const BUILTIN_TYPE_NAMES: &[&str] =
    &["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "bool", "string"];

/// The name rule of tabledb (`tabledb::schema::validate_name`): 1 to 63 characters from
/// a-z, 0-9 and _, not starting with a digit.
pub(crate) fn name_problem(name: &str) -> Option<String> {
    const RULE: &str = "names are 1 to 63 characters from a-z, 0-9 and _, not starting with a digit";
    if name.is_empty() {
        return Some(format!("the name is empty; {RULE}"));
    }
    if let Some((pos, ch)) = name.chars().enumerate().find(|(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        return Some(format!("the name has {ch:?} at position {pos}; {RULE}"));
    }
    if name.len() > 63 {
        return Some(format!("the name is {} bytes long; {RULE}", name.len()));
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Some(format!("the name starts with a digit; {RULE}"));
    }
    None
}

pub fn check(input: &DeriveInput, kind: Kind) -> Result<Checked<'_>, Vec<syn::Error>> {
    let mut cx = Ctxt::default();
    let derive = kind.derive_name();
    let attrs = attr::parse(&mut cx, &input.attrs, kind);
    let ident = &input.ident;

    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => Some(named),
            Fields::Unnamed(fields) => {
                cx.error_spanned_by(
                    fields,
                    format!("#[derive({derive})] needs named fields: each field name becomes a column name"),
                );
                None
            }
            Fields::Unit => {
                cx.error_spanned_by(ident, format!("#[derive({derive})] needs a struct with named fields"));
                None
            }
        },
        Data::Enum(e) => {
            cx.error_spanned_by(
                e.enum_token,
                format!("#[derive({derive})] is for structs; an enum has no fixed set of fields (store its tag as an integer field)"),
            );
            None
        }
        Data::Union(u) => {
            cx.error_spanned_by(
                u.union_token,
                format!("#[derive({derive})] is for structs; a union's fields overlap"),
            );
            None
        }
    };

    for param in &input.generics.params {
        let what = match param {
            GenericParam::Lifetime(_) => "lifetime parameters (a record cannot borrow)",
            GenericParam::Type(_) => "type parameters (a record's layout must be fixed)",
            GenericParam::Const(_) => "const parameters (a record's layout must be fixed)",
        };
        cx.error_spanned_by(param, format!("#[derive({derive})] does not support {what}"));
    }
    if let Some(where_clause) = &input.generics.where_clause {
        cx.error_spanned_by(where_clause, format!("#[derive({derive})] does not support where clauses"));
    }

    if !attrs.repr_c {
        cx.error_spanned_by(
            ident,
            format!("#[derive({derive})] needs #[repr(C)] on `{ident}`: the Rust layout is unspecified, and records are stored as their bytes"),
        );
    }

    let name = attrs.name.as_ref().map_or_else(|| snake_case(&ident.unraw().to_string()), syn::LitStr::value);
    if let Some(problem) = name_problem(&name) {
        let what = if kind == Kind::Table { "table" } else { "type" };
        cx.syn_error(syn::Error::new(
            attr::name_span(&attrs, ident),
            format!("invalid {what} name `{name}`: {problem}"),
        ));
    }
    if kind == Kind::FieldType && BUILTIN_TYPE_NAMES.contains(&name.as_str()) {
        cx.syn_error(syn::Error::new(
            attr::name_span(&attrs, ident),
            format!(
                "type name `{name}` is the name of a built-in type; name the type with #[field_type(name = \"...\")]"
            ),
        ));
    }

    let mut fields = Vec::new();
    if let Some(named) = named {
        for f in &named.named {
            let Some(fident) = f.ident.as_ref() else { continue };
            let fname = fident.unraw().to_string();
            if let Some(problem) = name_problem(&fname) {
                cx.error_spanned_by(fident, format!("invalid field name `{fname}`: {problem}"));
            } else if kind == Kind::Table && fname == "id" {
                cx.error_spanned_by(
                    fident,
                    "`id` is reserved: every record already has an `id`, assigned by the database",
                );
            }
            for a in &f.attrs {
                if a.path().is_ident(kind.attr_name()) {
                    cx.error_spanned_by(a, format!("#[{}] has no field options", kind.attr_name()));
                }
            }
            let class = classify(&f.ty);
            if let Some(why) = class.forbidden() {
                let ty = &f.ty;
                let shown = display_type(ty);
                cx.error_spanned_by(
                    ty,
                    format!(
                        "field `{fname}` has type `{shown}`, which is not a fixed-size field type: {why}"
                    ),
                );
            }
            fields.push(FieldModel { ident: fident, name: fname, ty: &f.ty, class });
        }
        if named.named.is_empty() {
            cx.error_spanned_by(ident, format!("`{ident}` has no fields; a record needs at least one"));
        }
        if kind == Kind::Table {
            check_constant_names(&mut cx, &fields);
        }
        check_layout(&mut cx, ident, &fields);
    }

    cx.check()?;
    Ok(Checked { input, attrs, name, fields })
}

/// `#[derive(Table)]` emits `NAME` and `NAME_OFFSET` per field; two fields must not produce
/// the same constant.
fn check_constant_names(cx: &mut Ctxt, fields: &[FieldModel<'_>]) {
    for f in fields {
        let upper = upper_case(&f.name);
        if let Some(other) = fields.iter().find(|o| upper_case(&o.name) == format!("{upper}_OFFSET")) {
            cx.error_spanned_by(
                other.ident,
                format!(
                    "field `{}` collides with `{upper}_OFFSET`, the offset constant generated for field `{}`; rename one",
                    other.name, f.name
                ),
            );
        }
    }
}

/// When every field has a layout the macro knows, checks padding and size here, where the
/// error can point at the field; otherwise the generated const assertions check them.
fn check_layout(cx: &mut Ctxt, ident: &syn::Ident, fields: &[FieldModel<'_>]) {
    let mut end = 0usize;
    let mut max_align = 1usize;
    for f in fields {
        let (size, align) = match f.class {
            TyClass::Forbidden(_) | TyClass::Other => return,
            _ => match f.class.layout() {
                Some(l) => l,
                None => return,
            },
        };
        let offset = end.div_ceil(align) * align;
        if offset > end {
            cx.error_spanned_by(
                f.ident,
                format!(
                    "{} byte(s) of padding before field `{}` (alignment {align}); records may not contain padding: reorder the fields from the largest alignment to the smallest, or add an explicit field",
                    offset - end,
                    f.name
                ),
            );
        }
        end = offset.saturating_add(size);
        max_align = max_align.max(align);
    }
    let size = end.div_ceil(max_align) * max_align;
    if size > end {
        let last = fields.last().map(|f| f.ident).unwrap_or(ident);
        cx.error_spanned_by(
            last,
            format!(
                "{} byte(s) of padding after the last field to reach alignment {max_align}; records may not contain padding: add an explicit field or reorder",
                size - end
            ),
        );
    }
    if size > MAX_RECORD_SIZE {
        cx.error_spanned_by(
            ident,
            format!("`{ident}` is {size} bytes; a record is at most {MAX_RECORD_SIZE} bytes"),
        );
    }
}
