//! Checks on the function under `#[procedure]`. Every mistake is recorded, spanned on what is
//! wrong, before any code is generated; what passes becomes the model.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{
    Attribute, Expr, ExprLit, FnArg, GenericArgument, GenericParam, ItemFn, Lit, LitStr, Pat, PatType,
    PathArguments, ReturnType, Safety, Signature, Type,
};

use super::attr;
use super::model::{Failed, OutputModel, ParamModel, ProcModel};
use crate::ast::display_type;
use crate::check::name_problem;
use crate::ctxt::Ctxt;

/// How a procedure is written, for messages.
const SHAPE: &str = "fn name(ctx: &mut ProcCtx<'_>, a: A, b: B) -> Result<T, E>";

pub fn check(args: TokenStream, func: &ItemFn) -> Result<ProcModel<'_>, Failed> {
    let mut cx = Ctxt::default();
    let attrs = attr::parse(&mut cx, args);
    let krate = attrs.krate.clone().unwrap_or_else(|| syn::parse_quote!(::tabledb));
    let sig = &func.sig;

    check_qualifiers(&mut cx, sig);
    check_generics(&mut cx, sig);
    let params = check_inputs(&mut cx, sig);
    let output = check_output(&mut cx, sig);

    let name = attrs.name.as_ref().map_or_else(|| sig.ident.unraw().to_string(), LitStr::value);
    if let Some(problem) = name_problem(&name) {
        match &attrs.name {
            Some(lit) => cx.error_spanned_by(lit, format!("invalid procedure name `{name}`: {problem}")),
            None => cx.error_spanned_by(
                &sig.ident,
                format!(
                    "invalid procedure name `{name}` (the function's name): {problem}; name the procedure with #[procedure(name = \"...\")]"
                ),
            ),
        }
    }
    let doc = doc(&func.attrs);

    match (cx.check(), output) {
        (Ok(()), Some(output)) => Ok(ProcModel { func, attrs, krate, name, doc, params, output }),
        // A missing output model always comes with a recorded error.
        (result, _) => Err(Failed { errors: result.err().unwrap_or_default(), krate }),
    }
}

/// `async`, `unsafe`, `extern` and variadic functions cannot be called by the generated code
/// the way a procedure is called.
fn check_qualifiers(cx: &mut Ctxt, sig: &Signature) {
    if let Some(token) = &sig.asyncness {
        cx.error_spanned_by(
            token,
            "a procedure cannot be `async`: it runs to completion inside its transaction on the calling thread; remove `async`",
        );
    }
    if let Safety::Unsafe(token) = &sig.safety {
        cx.error_spanned_by(
            token,
            "a procedure cannot be an `unsafe fn`: it is called with arguments from JSON, and no caller upholds its safety contract; make it safe and put `unsafe` blocks inside",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            "a procedure cannot have an ABI: the generated code calls it as a Rust function; remove the `extern`",
        );
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(
            variadic.dots,
            "a procedure cannot be variadic: its parameters are named JSON values",
        );
    }
}

fn check_generics(cx: &mut Ctxt, sig: &Signature) {
    for param in &sig.generics.params {
        let why = match param {
            GenericParam::Lifetime(_) => {
                "lifetime parameters: its parameters are owned values deserialized from JSON, and the context's lifetime is elided (`&mut ProcCtx<'_>`)"
            }
            GenericParam::Type(_) => {
                "type parameters: a caller sends JSON, not a type; give the parameter a concrete type"
            }
            GenericParam::Const(_) => {
                "const parameters: a caller sends JSON, not a constant; take the value as a parameter"
            }
        };
        cx.error_spanned_by(param, format!("a procedure cannot have {why}"));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        cx.error_spanned_by(where_clause, "a procedure cannot have a where clause: it is not generic");
    }
}

/// Checks the context parameter and returns the JSON parameters after it.
fn check_inputs<'a>(cx: &mut Ctxt, sig: &'a Signature) -> Vec<ParamModel<'a>> {
    let mut typed = Vec::new();
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => cx.error_spanned_by(
                receiver,
                format!(
                    "#[procedure] goes on a free function, not a method: a procedure has no `self`; move it out of the impl block and write it as `{SHAPE}`"
                ),
            ),
            FnArg::Typed(pt) => typed.push(pt),
        }
    }
    let has_receiver = typed.len() < sig.inputs.len();
    let json_params = match typed.split_first() {
        None if has_receiver => &[][..],
        None => {
            cx.syn_error(syn::Error::new(
                sig.paren_token.span.join(),
                format!(
                    "a procedure takes its context as its first parameter: `{SHAPE}` (the context is the procedure's transaction)"
                ),
            ));
            &[][..]
        }
        Some((first, rest)) => match context(&first.ty) {
            Context::Ok => rest,
            Context::Wrong(message) => {
                cx.error_spanned_by(&first.ty, message);
                rest
            }
            Context::Missing => {
                let before = match &*first.pat {
                    Pat::Ident(p) => format!(" before `{}`", p.ident.unraw()),
                    _ => String::new(),
                };
                cx.error_spanned_by(
                    first,
                    format!(
                        "missing context: a procedure's first parameter is its context, `ctx: &mut ProcCtx<'_>`; add it{before} (`{SHAPE}`)"
                    ),
                );
                // The parameter is still a JSON parameter; check it as one.
                &typed[..]
            }
        },
    };
    json_params.iter().filter_map(|pt| check_param(cx, pt)).collect()
}

enum Context {
    /// `&mut ProcCtx` (with or without its lifetime, by any path).
    Ok,
    /// A context of the wrong type, with the message.
    Wrong(String),
    /// The first parameter is not a context at all.
    Missing,
}

fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => strip(&g.elem),
        Type::Paren(p) => strip(&p.elem),
        _ => ty,
    }
}

/// The last segment's name of a path type: `ProcCtx` in `tabledb::ProcCtx<'_>`.
fn last_ident(ty: &Type) -> Option<String> {
    match strip(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

fn context(ty: &Type) -> Context {
    const CONTEXT: &str = "the first parameter of a procedure is its context, `&mut ProcCtx<'_>`";
    let shown = display_type(ty);
    let hint = |name: &str| match name {
        "Transaction" => {
            "; the context derefs to the procedure's `Transaction`, so every Transaction method works on it"
        }
        "Database" => "; a procedure runs in its own transaction, which the context derefs to",
        _ => "",
    };
    match strip(ty) {
        Type::Reference(r) => match last_ident(&r.elem) {
            Some(name) if name == "ProcCtx" && r.mutability.is_none() => Context::Wrong(format!(
                "the context is borrowed mutably: take `&mut {}`, not `{shown}`; a procedure writes through its context",
                display_type(&r.elem)
            )),
            Some(name) if is_db_handle(&name) => {
                Context::Wrong(format!("{CONTEXT}, not `{shown}`{}", hint(&name)))
            }
            Some(name) if r.mutability.is_some() && !is_plain_type(&name) => {
                // `ProcCtx` by any path or name (`use tabledb::procedure::ProcCtx as Ctx`); the
                // generated call checks the type.
                match named_lifetime(r) {
                    Some(lifetime) => Context::Wrong(format!(
                        "the context's lifetime is left to the compiler: take `&mut {name}<'_>`, not `{shown}`; a procedure gets its context for one call, not for {lifetime}"
                    )),
                    None => Context::Ok,
                }
            }
            _ if r.mutability.is_some() => Context::Wrong(format!("{CONTEXT}, not `{shown}`")),
            _ => Context::Missing,
        },
        _ => match last_ident(ty) {
            Some(name) if name == "ProcCtx" => Context::Wrong(format!(
                "the context is lent to a procedure, not given: take `&mut {shown}`, not `{shown}`"
            )),
            Some(name) if is_db_handle(&name) => {
                Context::Wrong(format!("{CONTEXT}, not `{shown}`{}", hint(&name)))
            }
            _ => Context::Missing,
        },
    }
}

/// `'static` in the context's type (`&'static mut ProcCtx<'static>`), where only `'_` or none
/// belongs. (Other named lifetimes are either the function's own, refused as such, or
/// undeclared, which the compiler refuses.)
fn named_lifetime(r: &syn::TypeReference) -> Option<String> {
    let named = |l: &syn::Lifetime| (l.ident == "static").then(|| "'static".to_owned());
    if let Some(l) = r.lifetime.as_ref().and_then(named) {
        return Some(l);
    }
    let Type::Path(p) = strip(&r.elem) else { return None };
    p.path.segments.iter().find_map(|s| match &s.arguments {
        PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
            GenericArgument::Lifetime(l) => named(l),
            _ => None,
        }),
        _ => None,
    })
}

/// Types that are plainly neither the context (a `&mut u64` first parameter) nor a `Result`
/// (an `-> Option<u64>` return type), so that the macro says so instead of leaving it to a
/// type mismatch in the generated code.
fn is_plain_type(name: &str) -> bool {
    matches!(
        name,
        "u8" | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
            | "f32"
            | "f64"
            | "bool"
            | "char"
            | "str"
            | "String"
            | "Vec"
            | "Option"
            | "Box"
            | "Value"
            | "HashMap"
            | "BTreeMap"
    )
}

/// Types someone may take in place of the context.
fn is_db_handle(name: &str) -> bool {
    matches!(name, "Transaction" | "Database" | "Snapshot")
}

fn check_param<'a>(cx: &mut Ctxt, pt: &'a PatType) -> Option<ParamModel<'a>> {
    for a in &pt.attrs {
        if a.path().is_ident("cfg") || a.path().is_ident("cfg_attr") {
            cx.error_spanned_by(
                a,
                "a procedure parameter cannot be conditional: the parameter list is the procedure's JSON interface",
            );
        }
    }
    let ident = match &*pt.pat {
        Pat::Ident(p) if p.subpat.is_none() => Some(&p.ident),
        Pat::Wild(_) => {
            cx.error_spanned_by(
                &pt.pat,
                "a procedure parameter needs a name: the name is the parameter's key in the JSON arguments; write `_name: Type` to leave it unused",
            );
            None
        }
        pat => {
            cx.error_spanned_by(
                pat,
                "a procedure parameter is a named JSON value: bind it to a name (`name: Type`) and destructure it in the body",
            );
            None
        }
    };
    let name = ident.map(|i| i.unraw().to_string());
    if let Some((at, problem)) = type_problem(&pt.ty) {
        let what = name.as_ref().map_or_else(|| "this parameter".to_owned(), |n| format!("parameter `{n}`"));
        let shown = display_type(&pt.ty);
        cx.error_spanned_by(at, format!("{what} has type `{shown}`: {problem}"));
    }
    Some(ParamModel { name: name?, ty: &pt.ty })
}

/// Parameter types the macro can tell are wrong from their tokens; the rest is checked by the
/// `ParamType` bound in the generated code. Returns the part to span and the reason.
fn type_problem(ty: &Type) -> Option<(&Type, String)> {
    const OWNED: &str = "parameters are deserialized from JSON into owned values";
    match ty {
        Type::Reference(r) => {
            let owned = match strip(&r.elem) {
                Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => "String".to_owned(),
                Type::Slice(s) => format!("Vec<{}>", display_type(&s.elem)),
                elem => display_type(elem),
            };
            Some((ty, format!("a reference borrows, but {OWNED}; take `{owned}`")))
        }
        Type::ImplTrait(_) => Some((
            ty,
            "`impl Trait` makes the function generic, but parameters are deserialized from JSON into one concrete type".to_owned(),
        )),
        Type::Ptr(_) => Some((ty, format!("a raw pointer is an address; {OWNED}"))),
        Type::Group(g) => type_problem(&g.elem),
        Type::Paren(p) => type_problem(&p.elem),
        Type::Array(a) => nested(&a.elem),
        Type::Slice(s) => nested(&s.elem),
        Type::Tuple(t) => t.elems.iter().find_map(nested),
        Type::Path(p) => p
            .path
            .segments
            .iter()
            .filter_map(|s| match &s.arguments {
                PathArguments::AngleBracketed(args) => Some(args),
                _ => None,
            })
            .flat_map(|args| &args.args)
            .find_map(|arg| match arg {
                GenericArgument::Type(t) => nested(t),
                _ => None,
            }),
        _ => None,
    }
}

/// A problem inside a type (`Vec<&str>`), reported on the inner part.
fn nested(ty: &Type) -> Option<(&Type, String)> {
    let (at, problem) = type_problem(ty)?;
    Some((at, format!("`{}` inside it: {problem}", display_type(at))))
}

fn check_output<'a>(cx: &mut Ctxt, sig: &'a Signature) -> Option<OutputModel<'a>> {
    const RESULT: &str = "a procedure returns `Result<T, E>`: T (serde::Serialize) is sent back as JSON, E (Display) is reported as the error";
    let ty = match &sig.output {
        ReturnType::Default => {
            cx.syn_error(syn::Error::new(
                sig.paren_token.span.close(),
                format!("{RESULT}; add a return type, such as `-> Result<(), tabledb::Error>`"),
            ));
            return None;
        }
        ReturnType::Type(_, ty) => ty,
    };
    match strip(ty) {
        // A program's own alias (`type ProcResult<T> = Result<T, ProcError>`) is accepted too:
        // the generated code matches on `Ok`/`Err`, which checks that it is a `Result`.
        Type::Path(p)
            if p.qself.is_none()
                && p.path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident != "Result" && !is_plain_type(&s.ident.to_string())) =>
        {
            Some(OutputModel { ty, ok: None, err: None })
        }
        Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Result") => {
            let last = p.path.segments.last()?;
            let args: Vec<&Type> = match &last.arguments {
                PathArguments::AngleBracketed(args) => args
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        GenericArgument::Type(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some(OutputModel { ty, ok: args.first().copied(), err: args.get(1).copied() })
        }
        _ => {
            let shown = display_type(ty);
            cx.error_spanned_by(ty, format!("{RESULT}; found `{shown}`: return `Result<{shown}, E>`"));
            None
        }
    }
}

/// The documentation of the function as a `&'static str` expression: doc comments with their
/// common indentation removed, in a `concat!` with the doc attributes that are not literals
/// (`#[doc = include_str!("...")]`) when there are any.
fn doc(attrs: &[Attribute]) -> TokenStream {
    let values: Vec<&Expr> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => Some(&nv.value),
            _ => None,
        })
        .collect();
    // Doc comments (`///`) are literals; consecutive ones form one text. Others come from
    // macros (`#[doc = include_str!("...")]`) and are joined to the texts by line breaks.
    enum Part<'a> {
        Text(String),
        Macro(&'a Expr),
    }
    let mut parts: Vec<Part<'_>> = Vec::new();
    for value in values {
        match (value, parts.last_mut()) {
            (Expr::Lit(ExprLit { lit: Lit::Str(s), .. }), Some(Part::Text(text))) => {
                text.push('\n');
                text.push_str(&s.value());
            }
            (Expr::Lit(ExprLit { lit: Lit::Str(s), .. }), _) => parts.push(Part::Text(s.value())),
            (other, _) => parts.push(Part::Macro(other)),
        }
    }
    // The indentation common to the texts' non-blank lines (the space after `///`) goes, and
    // so do the blank lines around the whole.
    let indent = parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(text) => Some(text.lines()),
            Part::Macro(_) => None,
        })
        .flatten()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let last = parts.len().saturating_sub(1);
    let mut tokens = Vec::with_capacity(2 * parts.len());
    for (i, part) in parts.iter().enumerate() {
        let piece = match part {
            Part::Macro(expr) => quote!(#expr),
            Part::Text(text) => {
                let lines: Vec<&str> =
                    text.lines().map(|l| l.get(indent..).unwrap_or("").trim_end()).collect();
                let mut text = lines.join("\n");
                if i == 0 {
                    text = text.trim_start_matches('\n').to_owned();
                }
                if i == last {
                    text.truncate(text.trim_end_matches('\n').len());
                }
                if text.is_empty() && (i == 0 || i == last) {
                    continue;
                }
                quote!(#text)
            }
        };
        if !tokens.is_empty() {
            tokens.push(quote!("\n"));
        }
        tokens.push(piece);
    }
    match tokens.as_slice() {
        [] => quote!(""),
        [one] => one.clone(),
        _ => quote!(::core::concat!(#(#tokens),*)),
    }
}
