//! The options of `#[procedure(...)]`: `name = "..."`, `timeout_ms = N`, `crate = "path"`.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{LitInt, LitStr, Token};

use crate::ctxt::Ctxt;

/// The longest timeout a procedure may ask for: a procedure holds its transaction open for the
/// whole call, and a longer value is more likely a unit mistake (microseconds) than a plan.
pub const TIMEOUT_MS_MAX: u64 = 60 * 60 * 1000;

/// What the options say.
#[derive(Default)]
pub struct ProcAttrs {
    /// `name = "..."`.
    pub name: Option<LitStr>,
    /// `timeout_ms = N`, checked to be in 1..=TIMEOUT_MS_MAX.
    pub timeout_ms: Option<u64>,
    /// `crate = "path"`: where `tabledb` is found.
    pub krate: Option<syn::Path>,
}

/// Reads the options. Unknown, repeated and out-of-range options are recorded as errors, and
/// reading goes on past them so that one build reports them all.
pub fn parse(cx: &mut Ctxt, args: TokenStream) -> ProcAttrs {
    let mut out = ProcAttrs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if out.name.is_some() {
                cx.error_spanned_by(&lit, "duplicate `name` option");
            }
            out.name = Some(lit);
        } else if meta.path.is_ident("timeout_ms") {
            let lit: LitInt = meta.value()?.parse()?;
            if out.timeout_ms.is_some() {
                cx.error_spanned_by(&lit, "duplicate `timeout_ms` option");
            }
            match lit.base10_parse::<u64>() {
                Ok(0) => cx.error_spanned_by(
                    &lit,
                    "`timeout_ms` is at least 1: a zero timeout would fail every call; leave the option out to use the runtime's default",
                ),
                Ok(ms) if ms > TIMEOUT_MS_MAX => cx.error_spanned_by(
                    &lit,
                    format!(
                        "`timeout_ms` is at most {TIMEOUT_MS_MAX} (one hour): a procedure holds its transaction open for the whole call"
                    ),
                ),
                Ok(ms) => out.timeout_ms = Some(ms),
                Err(e) => cx.syn_error(e),
            }
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
            cx.error_spanned_by(
                &meta.path,
                format!(
                    "unknown option `{key}` in #[procedure(...)]; expected `name = \"...\"`, `timeout_ms = N` or `crate = \"path\"`"
                ),
            );
            // Skip the option's value, so that the options after it are still read.
            if meta.input.peek(Token![=]) {
                meta.input.parse::<Token![=]>()?;
                meta.input.parse::<syn::Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                content.parse::<TokenStream>()?;
            }
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args) {
        cx.syn_error(e);
    }
    out
}
