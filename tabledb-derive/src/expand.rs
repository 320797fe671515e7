//! Code generation. Everything emitted names absolute paths (`::core::...`, the tabledb crate
//! path) so that it compiles in any scope, including under `#![no_implicit_prelude]`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
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
        asserts.extend(quote_spanned! {field_ident.span()=>
            ::core::assert!(#this == #prev_end, #padding_msg);
            ::core::assert!(#this == ::core::mem::offset_of!(#ident, #field_ident), #offset_msg);
        });
        bounds.extend(quote_spanned! {ty.span()=>
            __tabledb_field_type::<#ty>();
        });
    }
    let sizes = c.fields.iter().map(|f| {
        let ty = f.ty;
        quote!(::core::mem::size_of::<#ty>())
    });
    let trailing_msg = LitStr::new(
        &format!("`{ident}` has padding: the sum of its field sizes differs from its size"),
        Span::call_site(),
    );
    let size_msg = LitStr::new(
        &format!("`{ident}` exceeds the record size limit (tabledb::types::MAX_RECORD_SIZE)"),
        Span::call_site(),
    );
    let align_msg = LitStr::new(&format!("`{ident}` needs an alignment over 64"), Span::call_site());
    asserts.extend(quote_spanned! {ident.span()=>
        ::core::assert!(0 #(+ #sizes)* == ::core::mem::size_of::<#ident>(), #trailing_msg);
        ::core::assert!(::core::mem::size_of::<#ident>() % ::core::mem::align_of::<#ident>() == 0);
        ::core::assert!(::core::mem::size_of::<#ident>() <= #krate::types::MAX_RECORD_SIZE, #size_msg);
        ::core::assert!(::core::mem::align_of::<#ident>() <= #krate::types::MAX_ALIGN, #align_msg);
    });
    let bounds = quote! {
        #[allow(dead_code)]
        fn __tabledb_field_bounds() {
            fn __tabledb_field_type<T: #krate::types::FieldType>() {}
            #bounds
        }
    };
    Layout { offset_consts: names, offset_defs, bounds, asserts }
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
        quote! {
            #[doc = #doc]
            pub const #handle: #krate::FieldHandle<#ident, #ty> = #krate::FieldHandle::new(#i);
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
                };
                const NEEDS_VALIDATION: ::core::primitive::bool = #needs_validation;
            }

            #bounds
            #asserts
        };
    }
}
