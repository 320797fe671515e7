//! Collects errors so that a user sees every mistake of a struct in one build.

use std::fmt::Display;

use quote::ToTokens;

#[derive(Default)]
pub struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// Records an error spanned on `tokens`.
    pub fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error already built.
    pub fn syn_error(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Ok when nothing was recorded; otherwise every error, in the order found.
    pub fn check(self) -> Result<(), Vec<syn::Error>> {
        if self.errors.is_empty() { Ok(()) } else { Err(self.errors) }
    }
}
