//! `FixedStr<N>`: a UTF-8 string of at most `N` bytes stored inline in a record.

use std::fmt;
use std::hash::{Hash, Hasher};

use super::codec::{ValueError, str_len};
use super::desc::{DescKind, FieldType, TypeDesc};
use super::layout::MAX_STRING_CAPACITY;

/// A UTF-8 string of at most `N` bytes, stored inline: a little-endian `u16` length followed by
/// `N` bytes, of which the first `length` hold the string and the rest are zero.
///
/// Its size is `N + 2` and its alignment 1, so it never introduces padding. Text longer than
/// `N` bytes is refused, never truncated.
///
/// ```
/// use tabledb::types::FixedStr;
/// let name = FixedStr::<16>::new("ada").unwrap();
/// assert_eq!(name.as_str(), "ada");
/// assert!(FixedStr::<2>::new("ada").is_err());
/// ```
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize> {
    len: [u8; 2],
    bytes: [u8; N],
}

impl<const N: usize> FixedStr<N> {
    // The run-time registry accepts the same capacities (`string(N)` for 1 <= N <= 65534), so
    // a derived table that compiles also registers.
    const CAPACITY_OK: () =
        assert!(N >= 1 && N <= MAX_STRING_CAPACITY, "FixedStr capacity must be between 1 and 65534 bytes");

    /// The capacity in bytes.
    pub const CAPACITY: usize = N;

    /// The empty string.
    pub const EMPTY: Self = {
        let () = Self::CAPACITY_OK;
        FixedStr { len: [0; 2], bytes: [0; N] }
    };

    /// A string holding `s`, or an error when `s` is longer than `N` bytes.
    pub fn new(s: &str) -> Result<Self, ValueError> {
        let mut out = Self::EMPTY;
        out.set(s)?;
        Ok(out)
    }

    /// Replaces the contents with `s`; on error the string is unchanged.
    pub fn set(&mut self, s: &str) -> Result<(), ValueError> {
        if s.len() > N {
            return Err(ValueError::StringTooLong { len: s.len(), capacity: N });
        }
        // N <= MAX_STRING_CAPACITY < u16::MAX, checked by CAPACITY_OK, so the length fits its prefix.
        self.len = (s.len() as u16).to_le_bytes();
        self.bytes[..s.len()].copy_from_slice(s.as_bytes());
        self.bytes[s.len()..].fill(0);
        Ok(())
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        let len = str_len(&self.len).min(N);
        let body = &self.bytes[..len];
        // Every constructor and every validated record keeps the body UTF-8; should bytes ever
        // be forged, the valid prefix is returned rather than anything unsound.
        match std::str::from_utf8(body) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default(),
        }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// True when the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq for FixedStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for FixedStr<N> {}

impl<const N: usize> Hash for FixedStr<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<const N: usize> PartialEq<str> for FixedStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for FixedStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<const N: usize> TryFrom<&str> for FixedStr<N> {
    type Error = ValueError;
    fn try_from(s: &str) -> Result<Self, ValueError> {
        Self::new(s)
    }
}

impl<const N: usize> AsRef<str> for FixedStr<N> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> serde::Serialize for FixedStr<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de, const N: usize> serde::Deserialize<'de> for FixedStr<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        FixedStr::new(&s).map_err(serde::de::Error::custom)
    }
}

// SAFETY: `FixedStr<N>` is `#[repr(C)]` of two byte arrays: size `N + 2`, alignment 1, no
// padding, no pointers. Validation of `string(N)` accepts a length of at most `N` and a UTF-8
// body followed by zeros, which is exactly the invariant `as_str` expects (and `as_str` stays
// sound even without it).
unsafe impl<const N: usize> FieldType for FixedStr<N> {
    const DESC: TypeDesc = {
        let () = Self::CAPACITY_OK;
        TypeDesc { kind: DescKind::Str { capacity: N }, size: N + 2, align: 1 }
    };
    const NEEDS_VALIDATION: bool = true;
}

const _: () = {
    assert!(core::mem::size_of::<FixedStr<5>>() == 7);
    assert!(core::mem::align_of::<FixedStr<5>>() == 1);
};
