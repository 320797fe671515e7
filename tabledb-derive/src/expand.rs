//! Code generation. Everything emitted names absolute paths (`::core::...`, the tabledb crate
//! path) so that it compiles in any scope, including under `#![no_implicit_prelude]`.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, LitStr};

use crate::ast::Kind;
use crate::case::upper_case;
use crate::check::{self, Checked};

pub fn derive(input: &DeriveInput, kind: Kind) -> Result<TokenStream, Vec<syn::Error>> {
    let checked = check::check(input, kind)?;
    Ok(match kind {
        Kind::Table => expand_table(&checked),
        Kind::FieldType => expand_field_type(&checked),
    })
}

fn crate_path(c: &Checked<'_>) -> syn::Path {
    c.attrs.krate.clone().unwrap_or_else(|| syn::parse_quote!(::tabledb))
}

/// Pieces shared by both derives: offset expressions computed with `align_offset`, the
/// per-field trait bounds, and the layout assertions.
struct Layout {
    /// Offset expression of each field, each built on the previous one.
    offset_consts: Vec<Ident>,
    offset_defs: Vec<TokenStream>,
    bounds: TokenStream,
    asserts: TokenStream,
}

fn layout(c: &Checked<'_>, krate: &syn::Path, offset_name: impl Fn(usize) -> Ident, qualify: bool) -> Layout {
    let ident = &c.input.ident;
    let names: Vec<Ident> = (0..c.fields.len()).map(&offset_name).collect();
    let reference = |i: usize| {
        let name = &names[i];
        if qualify { quote!(#ident::#name) } else { quote!(#name) }
    };
    let mut offset_defs = Vec::new();
    let mut asserts = TokenStream::new();
    let mut bounds = TokenStream::new();
    for (i, f) in c.fields.iter().enumerate() {
        let ty = f.ty;
        let prev_end = if i == 0 {
            quote!(0)
        } else {
            let prev_ty = c.fields[i - 1].ty;
            let prev = reference(i - 1);
            quote!(#prev + ::core::mem::size_of::<#prev_ty>())
        };
        offset_defs.push(quote! {
            #krate::types::align_offset(#prev_end, ::core::mem::align_of::<#ty>())
        });
        let field_ident = f.ident;
        let this = reference(i);
        let padding_msg = LitStr::new(
            &format!(
                "`{ident}` has padding before field `{}`; records may not contain padding: reorder the fields from the largest alignment to the smallest, or add an explicit field",
                f.name
            ),
            Span::call_site(),
        );
        let offset_msg = LitStr::new(
            &format!("the computed offset of field `{}` of `{ident}` differs from offset_of!", f.name),
            Span::call_site(),
        );
        let aligned_msg = LitStr::new(
            &format!(
                "field `{}` of `{ident}` is less aligned than its type requires (is the struct packed?); records hand out references to their fields",
                f.name
            ),
            Span::call_site(),
        );
        asserts.extend(quote_spanned! {field_ident.span()=>
            ::core::assert!(#this == #prev_end, #padding_msg);
            ::core::assert!(#this == ::core::mem::offset_of!(#ident, #field_ident), #offset_msg);
            // Whatever the attributes say, a field must be as aligned as its type within every
            // aligned record, or a reference to it could be misaligned.
            ::core::assert!(::core::mem::align_of::<#ident>() >= ::core::mem::align_of::<#ty>(), #aligned_msg);
        });
        // Written as the same projection the impl uses, so that a type that is not a field
        // type gets one error, on the field's type, rather than one per use.
        bounds.extend(quote_spanned! {ty.span()=>
            let _ = <#ty as #krate::types::FieldType>::TYPE_ID;
        });
    }
    let sizes = c.fields.iter().map(|f| {
        let ty = f.ty;
        quote!(::core::mem::size_of::<#ty>())
    });
    let trailing_msg = LitStr::new(
        &format!(
            "`{ident}` has padding after its last field (its size is larger than the sum of its field sizes); records may not contain padding: add an explicit field or reorder the fields"
        ),
        Span::call_site(),
    );
    let size_msg = LitStr::new(
        &format!(
            "`{ident}` is larger than a record may be: the limit is {} bytes (tabledb::types::MAX_RECORD_SIZE)",
            check::MAX_RECORD_SIZE
        ),
        Span::call_site(),
    );
    let align_msg = LitStr::new(&format!("`{ident}` needs an alignment over 64"), Span::call_site());
    asserts.extend(quote_spanned! {ident.span()=>
        ::core::assert!(0 #(+ #sizes)* == ::core::mem::size_of::<#ident>(), #trailing_msg);
        ::core::assert!(::core::primitive::usize::is_multiple_of(
            ::core::mem::size_of::<#ident>(),
            ::core::mem::align_of::<#ident>(),
        ));
        ::core::assert!(::core::mem::size_of::<#ident>() <= #krate::types::MAX_RECORD_SIZE, #size_msg);
        ::core::assert!(::core::mem::align_of::<#ident>() <= #krate::types::MAX_ALIGN, #align_msg);
    });
    let bounds = quote! {
        #[allow(dead_code)]
        fn __tabledb_field_bounds() {
            #bounds
        }
    };
    Layout { offset_consts: names, offset_defs, bounds, asserts }
}

/// `tokens` with every span, in nested groups too, set to `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

fn needs_validation(c: &Checked<'_>, krate: &syn::Path) -> TokenStream {
    let tys = c.fields.iter().map(|f| f.ty);
    quote!(false #(|| <#tys as #krate::types::FieldType>::NEEDS_VALIDATION)*)
}

fn expand_table(c: &Checked<'_>) -> TokenStream {
    let krate = crate_path(c);
    let ident = &c.input.ident;
    let name = &c.name;
    let Layout { offset_consts, offset_defs, bounds, asserts } =
        layout(c, &krate, |i| format_ident!("{}_OFFSET", upper_case(&c.fields[i].name)), true);
    let handles = c.fields.iter().enumerate().map(|(i, f)| {
        let handle = format_ident!("{}", upper_case(&f.name));
        let ty = f.ty;
        let doc = format!("Typed handle of field `{}`.", f.name);
        // Spanned on the field type, crate path included (a path's span starts at its first
        // token): when the type is not a field type, the error points at it.
        let handle_krate = respan(krate.to_token_stream(), ty.span());
        quote_spanned! {ty.span()=>
            #[doc = #doc]
            pub const #handle: #handle_krate::FieldHandle<#ident, #ty> = #handle_krate::FieldHandle::new(#i);
        }
    });
    let offset_docs = c.fields.iter().map(|f| format!("Byte offset of field `{}` in the record.", f.name));
    let field_descs = c.fields.iter().zip(&offset_consts).map(|(f, off)| {
        let fname = &f.name;
        let ty = f.ty;
        quote! {
            #krate::FieldDesc {
                name: #fname,
                offset: #ident::#off,
                type_id: <#ty as #krate::types::FieldType>::TYPE_ID,
                shape: <#ty as #krate::types::FieldType>::SHAPE,
                ty: &<#ty as #krate::types::FieldType>::DESC,
            }
        }
    });
    let needs_validation = needs_validation(c, &krate);
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, clippy::identity_op, clippy::erasing_op)]
        const _: () = {
            #[automatically_derived]
            // A table need not use every constant generated for it.
            #[allow(dead_code)]
            impl #ident {
                #(
                    #[doc = #offset_docs]
                    pub const #offset_consts: ::core::primitive::usize = #offset_defs;
                )*
                #(#handles)*
            }

            #[automatically_derived]
            // SAFETY: the assertions below check, at compile time, that the struct is
            // #[repr(C)] (checked by the derive) with these fields at these offsets, without
            // padding, within the size and alignment limits; each field type is a FieldType.
            unsafe impl #krate::Table for #ident {
                const NAME: &'static ::core::primitive::str = #name;
                const FIELDS: &'static [#krate::FieldDesc] = &[#(#field_descs),*];
                const RECORD_SIZE: ::core::primitive::usize = ::core::mem::size_of::<#ident>();
                const ALIGN: ::core::primitive::usize = ::core::mem::align_of::<#ident>();
                const NEEDS_VALIDATION: ::core::primitive::bool = #needs_validation;
            }

            #bounds
            #asserts
        };
    }
}

fn expand_field_type(c: &Checked<'_>) -> TokenStream {
    let krate = crate_path(c);
    let ident = &c.input.ident;
    let name = &c.name;
    let Layout { offset_consts, offset_defs, bounds, asserts } =
        layout(c, &krate, |i| format_ident!("__TABLEDB_OFFSET_{}", i), false);
    let members = c.fields.iter().zip(&offset_consts).map(|(f, off)| {
        let fname = &f.name;
        let ty = f.ty;
        quote! {
            #krate::types::MemberDesc {
                name: #fname,
                offset: #off,
                ty: &<#ty as #krate::types::FieldType>::DESC,
            }
        }
    });
    let needs_validation = needs_validation(c, &krate);
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, clippy::identity_op, clippy::erasing_op)]
        const _: () = {
            #(const #offset_consts: ::core::primitive::usize = #offset_defs;)*

            #[automatically_derived]
            // SAFETY: the assertions below check, at compile time, that the struct is
            // #[repr(C)] (checked by the derive) with these members at these offsets, without
            // padding; each member type is a FieldType, so the struct is valid exactly when
            // each member is.
            unsafe impl #krate::types::FieldType for #ident {
                const DESC: #krate::types::TypeDesc = #krate::types::TypeDesc {
                    kind: #krate::types::DescKind::Composite { name: #name, members: &[#(#members),*] },
                    size: ::core::mem::size_of::<#ident>(),
                    align: ::core::mem::align_of::<#ident>(),
                }
                .within_limits();
                const NEEDS_VALIDATION: ::core::primitive::bool = #needs_validation;
            }

            #bounds
            #asserts
        };
    }
}
