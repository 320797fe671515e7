//! Derive macros for tabledb. Use them through the `tabledb` crate, which re-exports them:
//! `#[derive(tabledb::Table)]`, `#[derive(tabledb::FieldType)]` and `#[tabledb::procedure]`.
//!
//! Each macro runs the same pipeline: attributes (module `attr`) → a model of the struct
//! (`ast`) → checks that collect every mistake with its span (`check`) → generated code
//! (`expand`). `#[procedure]` runs the same pipeline in module `procedure`.

mod ast;
mod attr;
mod case;
mod check;
mod ctxt;
mod expand;
mod procedure;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `tabledb::Table` for a `#[repr(C)]` struct whose fields are field types.
///
/// Optional attribute: `#[table(name = "...")]` (default: the struct name in snake_case) and
/// `#[table(crate = "path")]` when `tabledb` is not a direct dependency.
///
/// For each field `hp` the struct gets inherent constants `HP` (a typed field handle) and
/// `HP_OFFSET`. Inherent constants win over trait constants in `Type::CONST` paths, so for a
/// field called `name` (or `record_size`, ...) `Player::NAME` is the field handle; write
/// `<Player as Table>::NAME` for the table name.
#[proc_macro_derive(Table, attributes(table))]
pub fn derive_table(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input, ast::Kind::Table).unwrap_or_else(to_compile_errors).into()
}

/// Derives `tabledb::types::FieldType` for a `#[repr(C)]` struct, making it usable as a
/// composite field type of tables (for example a `Vec3 { x: f32, y: f32, z: f32 }`).
///
/// Optional attribute: `#[field_type(name = "...")]` (default: the struct name in snake_case)
/// and `#[field_type(crate = "path")]`.
#[proc_macro_derive(FieldType, attributes(field_type))]
pub fn derive_field_type(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input, ast::Kind::FieldType).unwrap_or_else(to_compile_errors).into()
}

/// Makes `fn name(ctx: &mut ProcCtx<'_>, a: A, b: B) -> Result<T, E>` a stored procedure: the
/// function stays as it is, and a module of the same name (with the function's visibility)
/// holds `PARAMS` (each parameter's name, type and JSON schema), `PROCEDURE` and
/// `procedure()`, the `tabledb::procedure::Procedure` to register in a `ProcedureRegistry`.
///
/// Options: `#[procedure(name = "...")]` (default: the function's name), `timeout_ms = N` (how
/// long one call may take) and `crate = "path"` when `tabledb` is not a direct dependency.
///
/// The function is a free function at module level (the module refers to it as `super::name`,
/// and to the parameter types through `use super::*`). Its parameters after the context are
/// owned `tabledb::procedure::ParamType`s; `T` is `serde::Serialize` and `E` is `Display`
/// (a `tabledb::Error` keeps its kind).
#[proc_macro_attribute]
pub fn procedure(args: TokenStream, item: TokenStream) -> TokenStream {
    procedure::expand(args.into(), item.into()).into()
}

fn to_compile_errors(errors: Vec<syn::Error>) -> proc_macro2::TokenStream {
    let compile_errors = errors.iter().map(syn::Error::to_compile_error);
    quote::quote!(#(#compile_errors)*)
}
