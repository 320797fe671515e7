//! A model of a procedure function that passed the checks: what the generated module needs.

use proc_macro2::TokenStream;
use syn::{ItemFn, Type};

use super::attr::ProcAttrs;

/// A procedure function, checked.
pub struct ProcModel<'a> {
    pub func: &'a ItemFn,
    pub attrs: ProcAttrs,
    /// Where `tabledb` is found: `crate = "..."`, else `::tabledb`.
    pub krate: syn::Path,
    /// The procedure's name: `name = "..."`, else the function's name without `r#`.
    pub name: String,
    /// An expression of type `&'static str`: the function's documentation.
    pub doc: TokenStream,
    /// The parameters after the context, in order.
    pub params: Vec<ParamModel<'a>>,
    pub output: OutputModel<'a>,
}

/// A JSON parameter: everything after the context.
pub struct ParamModel<'a> {
    /// The JSON key: the parameter's name without `r#`.
    pub name: String,
    pub ty: &'a Type,
}

/// The return type, `Result<T, E>` as written.
pub struct OutputModel<'a> {
    pub ty: &'a Type,
    /// `T`, when written out (an alias such as `tabledb::Result<T>` names only `T`).
    pub ok: Option<&'a Type>,
    /// `E`, when written out.
    pub err: Option<&'a Type>,
}

/// What the expansion of a refused function still needs.
pub struct Failed {
    pub errors: Vec<syn::Error>,
    pub krate: syn::Path,
}
