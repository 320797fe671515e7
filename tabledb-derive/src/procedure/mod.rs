//! `#[procedure]`: the same pipeline as the derives. The attribute's options ([`attr`]) and
//! the function are read into a model ([`model`]) by checks that collect every mistake with its
//! span ([`check`]); a function that passes gets its module ([`expand`](mod@expand)).
//!
//! The function itself is always emitted unchanged, so that a mistake in its signature does not
//! also hide the function from the rest of the program.

mod attr;
mod check;
mod expand;
mod model;

use proc_macro2::TokenStream;
use quote::quote;

/// Expands `#[procedure(args)] item`.
pub fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Fn(func)) => func,
        Ok(other) => {
            let error = syn::Error::new_spanned(
                &other,
                "#[procedure] goes on a function: `fn name(ctx: &mut ProcCtx<'_>, ...) -> Result<T, E>`",
            );
            return with_errors(item, None, vec![error]);
        }
        // Not an item at all (a trait method without a body, for one): let the compiler report
        // the item as it is, with the reason the attribute cannot take it.
        Err(error) => return with_errors(item, None, vec![error]),
    };
    match check::check(args, &func) {
        Ok(model) => {
            let module = expand::module(&model);
            quote!(#item #module)
        }
        Err(failed) => {
            // A stand-in module keeps uses of `name::procedure()` elsewhere from adding
            // errors of their own; a method (with `self`) is in an impl, where no module goes.
            let method = func.sig.inputs.iter().any(|arg| matches!(arg, syn::FnArg::Receiver(_)));
            let stand_in = (!method).then(|| expand::stand_in(&func, &failed.krate));
            with_errors(item, stand_in, failed.errors)
        }
    }
}

fn with_errors(item: TokenStream, stand_in: Option<TokenStream>, errors: Vec<syn::Error>) -> TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    quote!(#item #stand_in #(#errors)*)
}
