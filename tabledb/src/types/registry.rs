//! The type registry: every type a database knows, by id and by name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::codec::Serializer;
use super::desc::{DescKind, TypeDesc};
use super::layout::{
    DEFAULT_STRING_CAPACITY, MAX_ALIGN, MAX_ARRAY_LEN, MAX_RECORD_SIZE, MAX_STRING_CAPACITY, Member,
    Primitive, TypeId, TypeKind, TypeLayout, align_offset,
};
use crate::schema::{NameError, validate_name};

/// The longest type name [`TypeRegistry::resolve`] accepts, in bytes.
///
/// Every canonical name fits: a composite name (at most 63 bytes) followed by
/// [`MAX_ARRAY_DEPTH`] array suffixes of at most 7 bytes each (`[65536]`) is 119 bytes. Longer
/// names are refused before they are parsed.
pub const MAX_TYPE_NAME_LEN: usize = 128;

/// The deepest nesting of array types: `f32[4][4]` nests 2 deep. Deeper arrays are refused,
/// whether named at run time (`u8[1][1]...`) or described at compile time, before any type is
/// registered.
pub const MAX_ARRAY_DEPTH: usize = 8;

/// The deepest nesting of composite and array types together: a composite or an array is one
/// level more than the deepest type it contains, and built-in types and strings are level 0
/// (`vec3` is 1 deep, `vec3[4]` 2, a composite with a `vec3[4]` member 3). Deeper types are
/// refused when they are registered or named, so that validating, encoding and decoding a
/// value (which recurse through its type) stay within a small, fixed stack depth.
pub(crate) const MAX_NESTING_DEPTH: usize = 32;

/// Why a type could not be registered or resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TypeError {
    #[error("unknown type {}", crate::schema::shown(.0))]
    UnknownType(String),
    #[error("type `{0}` already exists")]
    DuplicateType(String),
    #[error("type `{0}` is built in and cannot be redefined")]
    Builtin(String),
    #[error("type `{name}`: size {size} is not a multiple of its alignment {align}")]
    SizeNotMultipleOfAlign { name: String, size: usize, align: usize },
    #[error("type `{0}` has zero size")]
    ZeroSize(String),
    #[error("type `{name}`: alignment {align} must be a power of two between 1 and {MAX_ALIGN}")]
    BadAlign { name: String, align: usize },
    #[error("type `{name}`: alignment {align} is smaller than member `{member}` needs ({member_align})")]
    AlignTooSmall { name: String, align: usize, member: String, member_align: usize },
    #[error("type `{name}` is {size} bytes; the limit is {MAX_RECORD_SIZE}")]
    TooLarge { name: String, size: usize },
    #[error("type `{0}` has no members")]
    NoMembers(String),
    #[error("type `{name}` has two members named `{member}`")]
    DuplicateMember { name: String, member: String },
    #[error("type `{name}`: member `{member}` at offset {offset} is not aligned to {align}")]
    MisalignedMember { name: String, member: String, offset: usize, align: usize },
    #[error("type `{name}`: member `{member}` overlaps the member before it")]
    OverlappingMember { name: String, member: String },
    #[error("type `{name}`: member `{member}` ends at {end}, past the size {size}")]
    MemberOutOfBounds { name: String, member: String, end: usize, size: usize },
    #[error("type `{name}`: member `{member}` has type `{ty}`, which is not plain old data")]
    NotPod { name: String, member: String, ty: String },
    #[error("type name `{name}` has the same id as `{other}`; choose another name")]
    IdCollision { name: String, other: String },
    #[error("string capacity {0} must be between 1 and {MAX_STRING_CAPACITY}")]
    BadStringCapacity(usize),
    #[error("`max_len` applies only to strings, not to `{0}`")]
    MaxLenOnNonString(String),
    #[error("array length {0} must be between 1 and {MAX_ARRAY_LEN}")]
    BadArrayLen(usize),
    #[error("a type name of {len} bytes is longer than the limit of {MAX_TYPE_NAME_LEN} bytes")]
    NameTooLong { len: usize },
    #[error("type `{name}` nests arrays {depth} deep; the limit is {MAX_ARRAY_DEPTH}")]
    ArrayTooDeep { name: String, depth: usize },
    #[error("type `{name}` nests composites and arrays {depth} deep; the limit is {MAX_NESTING_DEPTH}")]
    TooDeep { name: String, depth: usize },
    #[error("type `{name}`: member `{member}`: {source}")]
    MemberType {
        name: String,
        member: String,
        #[source]
        source: Box<TypeError>,
    },
    #[error("type name {}: {source}", crate::schema::shown(.name))]
    InvalidName {
        name: String,
        #[source]
        source: NameError,
    },
}

/// A member of a composite type described at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberDef {
    pub name: String,
    /// A type name: `u32`, `vec3`, `string`, `string(32)`, `f32[3]`.
    #[serde(rename = "type")]
    pub ty: String,
    /// For `string`: the capacity in bytes (256 when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// The member's offset; computed with [`align_offset`] when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
}

impl MemberDef {
    /// A member of the named type at the next aligned offset.
    pub fn new(name: impl Into<String>, ty: impl Into<String>) -> Self {
        MemberDef { name: name.into(), ty: ty.into(), max_len: None, offset: None }
    }
}

/// A composite type described at run time, e.g. `vec3 = { x: f32, y: f32, z: f32 }`.
///
/// Size, alignment and offsets are computed (C layout, declaration order) unless given; given
/// ones are validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeDef {
    pub name: String,
    #[serde(alias = "fields")]
    pub members: Vec<MemberDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub align: Option<usize>,
}

impl TypeDef {
    /// A composite type with computed layout.
    pub fn new(name: impl Into<String>, members: impl IntoIterator<Item = MemberDef>) -> Self {
        TypeDef { name: name.into(), members: members.into_iter().collect(), size: None, align: None }
    }
}

/// Every type a database knows: the built-ins, fixed-capacity strings and arrays (created on
/// first use), and registered composite types.
#[derive(Debug, Clone)]
pub struct TypeRegistry {
    by_id: HashMap<TypeId, Arc<TypeLayout>>,
    by_name: BTreeMap<String, TypeId>,
    /// Composite types in registration order, which is a valid order to re-register them.
    composites: Vec<TypeId>,
    /// How deep each composite and array type nests (see [`TypeRegistry::MAX_NESTING_DEPTH`]);
    /// built-in types and strings, at depth 0, are not listed.
    depth: HashMap<TypeId, usize>,
    /// While a registration is in progress, the types it inserted, removed again if it is
    /// refused.
    added: Option<Vec<TypeId>>,
}

impl Default for TypeRegistry {
    fn default() -> Self {
        Self::new()
    }
}

fn bad_name(name: &str, source: NameError) -> TypeError {
    TypeError::InvalidName { name: name.to_owned(), source }
}

impl TypeRegistry {
    /// A registry holding the built-in types.
    pub fn new() -> Self {
        let mut reg = TypeRegistry {
            by_id: HashMap::new(),
            by_name: BTreeMap::new(),
            composites: Vec::new(),
            depth: HashMap::new(),
            added: None,
        };
        for p in Primitive::ALL {
            reg.insert(Arc::new(TypeLayout::primitive(p)));
        }
        reg
    }

    /// The deepest nesting of composite and array types together (see
    /// [`MAX_NESTING_DEPTH`](Self::MAX_NESTING_DEPTH)).
    pub const MAX_NESTING_DEPTH: usize = MAX_NESTING_DEPTH;

    fn insert(&mut self, layout: Arc<TypeLayout>) {
        let depth = self.nesting_depth(&layout);
        if depth > 0 {
            self.depth.insert(layout.id, depth);
        }
        if let Some(added) = &mut self.added {
            added.push(layout.id);
        }
        self.by_name.insert(layout.name.clone(), layout.id);
        self.by_id.insert(layout.id, layout);
    }

    /// How deep `layout` nests composites and arrays, from the recorded depths of the types
    /// it contains (which are registered before it).
    fn nesting_depth(&self, layout: &TypeLayout) -> usize {
        let of = |l: &TypeLayout| self.depth.get(&l.id).copied().unwrap_or(0);
        match &layout.kind {
            TypeKind::Primitive(_) | TypeKind::Str { .. } => 0,
            TypeKind::Array { elem, .. } => of(elem) + 1,
            TypeKind::Composite { members } => members.iter().map(|m| of(&m.layout)).max().unwrap_or(0) + 1,
        }
    }

    /// Refuses a new type nested deeper than [`MAX_NESTING_DEPTH`](Self::MAX_NESTING_DEPTH).
    fn check_depth(&self, layout: &TypeLayout) -> Result<(), TypeError> {
        let depth = self.nesting_depth(layout);
        if depth > MAX_NESTING_DEPTH {
            return Err(TypeError::TooDeep { name: layout.name.clone(), depth });
        }
        Ok(())
    }

    /// Runs one registration: if it fails, every type it inserted (strings and arrays first
    /// used by it, composites it registered) is removed again, so a refused registration
    /// leaves nothing behind. Cheaper than working on a copy, which would make loading `n`
    /// types take time quadratic in `n`.
    fn atomically<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, TypeError>) -> Result<T, TypeError> {
        self.added = Some(Vec::new());
        let composites = self.composites.len();
        let result = f(self);
        let added = self.added.take().unwrap_or_default();
        if result.is_err() {
            for id in added {
                if let Some(layout) = self.by_id.remove(&id) {
                    self.by_name.remove(&layout.name);
                }
                self.depth.remove(&id);
            }
            self.composites.truncate(composites);
        }
        result
    }

    /// Forgets the strings and arrays that neither a registered composite nor one of
    /// `fields` (the field types of every table) uses, directly or as an element or member.
    /// They are created on first use and not stored (`schema.json` holds only composites), so
    /// keeping them after their last field is gone would make the registry differ from the
    /// one a reopened database rebuilds from its tables and composites.
    pub(crate) fn retain_used<'a>(&mut self, fields: impl IntoIterator<Item = &'a TypeLayout>) {
        fn mark(layout: &TypeLayout, used: &mut HashSet<TypeId>) {
            if !used.insert(layout.id) {
                return;
            }
            match &layout.kind {
                TypeKind::Array { elem, .. } => mark(elem, used),
                TypeKind::Composite { members } => members.iter().for_each(|m| mark(&m.layout, used)),
                TypeKind::Primitive(_) | TypeKind::Str { .. } => {}
            }
        }
        let mut used = HashSet::new();
        for layout in self.composites() {
            mark(layout, &mut used);
        }
        for layout in fields {
            mark(layout, &mut used);
        }
        let unused: Vec<TypeId> = self
            .by_id
            .values()
            .filter(|l| {
                matches!(l.kind, TypeKind::Str { .. } | TypeKind::Array { .. }) && !used.contains(&l.id)
            })
            .map(|l| l.id)
            .collect();
        for id in unused {
            if let Some(layout) = self.by_id.remove(&id) {
                self.by_name.remove(&layout.name);
            }
            self.depth.remove(&id);
        }
    }

    /// The type with this id.
    pub fn get(&self, id: TypeId) -> Option<&Arc<TypeLayout>> {
        self.by_id.get(&id)
    }

    /// The type with this canonical name, if it is already registered. Use
    /// [`resolve`](Self::resolve) to create strings and arrays on first use.
    pub fn get_by_name(&self, name: &str) -> Option<&Arc<TypeLayout>> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    /// Every registered type, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<TypeLayout>> {
        self.by_name.values().filter_map(|id| self.by_id.get(id))
    }

    /// The composite types in an order in which they can be registered again (each after the
    /// types its members use).
    pub fn composites(&self) -> impl Iterator<Item = &Arc<TypeLayout>> {
        self.composites.iter().filter_map(|id| self.by_id.get(id))
    }

    /// The type named `name`: a built-in, a registered composite, `string` (capacity 256),
    /// `string(N)`, or `T[N]`. Strings and arrays are registered on first use.
    ///
    /// Names longer than [`MAX_TYPE_NAME_LEN`] bytes and arrays nested deeper than
    /// [`MAX_ARRAY_DEPTH`] are refused before anything is registered; an array that would nest
    /// deeper than [`MAX_NESTING_DEPTH`](Self::MAX_NESTING_DEPTH) is refused too.
    pub fn resolve(&mut self, name: &str) -> Result<Arc<TypeLayout>, TypeError> {
        check_name_len(name)?;
        if let Some(layout) = self.get_by_name(name) {
            return Ok(layout.clone());
        }
        // Peel the array suffixes, outermost first: `u8[2][3]` is `u8`, then 3, then 2.
        let mut base = name;
        let mut lens = Vec::new();
        while let Some(head) = base.strip_suffix(']') {
            let Some(open) = head.rfind('[') else { break };
            let len =
                parse_count(&head[open + 1..]).ok_or_else(|| TypeError::UnknownType(base.to_owned()))?;
            lens.push(len);
            base = &head[..open];
        }
        if lens.len() > MAX_ARRAY_DEPTH {
            return Err(TypeError::ArrayTooDeep { name: name.to_owned(), depth: lens.len() });
        }
        let mut layout = self.resolve_base(base)?;
        for len in lens.into_iter().rev() {
            layout = self.array(layout, len)?;
        }
        Ok(layout)
    }

    /// A type named without an array suffix: a built-in, a registered composite or a string.
    fn resolve_base(&mut self, name: &str) -> Result<Arc<TypeLayout>, TypeError> {
        if let Some(layout) = self.get_by_name(name) {
            return Ok(layout.clone());
        }
        if name == "string" {
            return self.string(DEFAULT_STRING_CAPACITY);
        }
        if let Some(cap) = name.strip_prefix("string(").and_then(|r| r.strip_suffix(')')) {
            let cap = parse_count(cap).ok_or_else(|| TypeError::UnknownType(name.to_owned()))?;
            return self.string(cap);
        }
        Err(TypeError::UnknownType(name.to_owned()))
    }

    /// Resolves a type given as a name and an optional string capacity, as field and member
    /// definitions carry them: `("string", Some(32))` is `string(32)`.
    pub fn resolve_spec(&mut self, ty: &str, max_len: Option<usize>) -> Result<Arc<TypeLayout>, TypeError> {
        check_name_len(ty)?;
        match max_len {
            None => self.resolve(ty),
            Some(cap) if ty == "string" => self.string(cap),
            Some(_) => Err(TypeError::MaxLenOnNonString(ty.to_owned())),
        }
    }

    /// The fixed-capacity string type of `capacity` bytes.
    pub fn string(&mut self, capacity: usize) -> Result<Arc<TypeLayout>, TypeError> {
        if capacity == 0 || capacity > MAX_STRING_CAPACITY {
            return Err(TypeError::BadStringCapacity(capacity));
        }
        let name = format!("string({capacity})");
        if let Some(layout) = self.get_by_name(&name) {
            return Ok(layout.clone());
        }
        let layout = Arc::new(TypeLayout {
            id: TypeId::of_name(&name),
            name,
            size: capacity + 2,
            align: 1,
            pod: true,
            kind: TypeKind::Str { capacity },
            serializer: Serializer::DEFAULT,
        });
        self.check_id(&layout)?;
        self.insert(layout.clone());
        Ok(layout)
    }

    /// The array type of `len` elements of `elem`; refused when it would nest arrays deeper
    /// than [`MAX_ARRAY_DEPTH`].
    pub fn array(&mut self, elem: Arc<TypeLayout>, len: usize) -> Result<Arc<TypeLayout>, TypeError> {
        if len == 0 || len > MAX_ARRAY_LEN {
            return Err(TypeError::BadArrayLen(len));
        }
        let name = format!("{}[{len}]", elem.name);
        if let Some(layout) = self.get_by_name(&name) {
            return Ok(layout.clone());
        }
        let depth = array_depth(&elem) + 1;
        if depth > MAX_ARRAY_DEPTH {
            return Err(TypeError::ArrayTooDeep { name, depth });
        }
        let depth = self.depth.get(&elem.id).copied().unwrap_or(0) + 1;
        if depth > MAX_NESTING_DEPTH {
            return Err(TypeError::TooDeep { name, depth });
        }
        let size = elem.size.checked_mul(len).filter(|s| *s <= MAX_RECORD_SIZE);
        let Some(size) = size else {
            return Err(TypeError::TooLarge { name, size: elem.size.saturating_mul(len) });
        };
        let layout = Arc::new(TypeLayout {
            id: TypeId::of_name(&name),
            name,
            size,
            align: elem.align,
            pod: elem.pod,
            kind: TypeKind::Array { elem, len },
            serializer: Serializer::DEFAULT,
        });
        self.check_id(&layout)?;
        self.insert(layout.clone());
        Ok(layout)
    }

    fn check_id(&self, layout: &TypeLayout) -> Result<(), TypeError> {
        match self.by_id.get(&layout.id) {
            Some(other) if other.name != layout.name => {
                Err(TypeError::IdCollision { name: layout.name.clone(), other: other.name.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Registers a composite type described at run time, with the default serializer.
    ///
    /// Refused, with nothing registered: an invalid or taken name, no members, duplicate or
    /// invalid member names, unknown member types, misaligned or overlapping members, zero
    /// size, a size that is not a multiple of the alignment, a size over the record limit, or
    /// nesting deeper than [`MAX_NESTING_DEPTH`](Self::MAX_NESTING_DEPTH).
    ///
    /// ```
    /// use tabledb::types::{MemberDef, TypeDef, TypeRegistry};
    /// let mut reg = TypeRegistry::new();
    /// let vec3 = reg
    ///     .register_type(TypeDef::new("vec3", ["x", "y", "z"].map(|m| MemberDef::new(m, "f32"))))
    ///     .unwrap();
    /// assert_eq!((vec3.size, vec3.align), (12, 4));
    /// ```
    pub fn register_type(&mut self, def: TypeDef) -> Result<Arc<TypeLayout>, TypeError> {
        self.register_type_with(def, Serializer::DEFAULT)
    }

    /// Registers a composite type with its own JSON serializer.
    pub fn register_type_with(
        &mut self,
        def: TypeDef,
        serializer: Serializer,
    ) -> Result<Arc<TypeLayout>, TypeError> {
        validate_name(&def.name).map_err(|e| bad_name(&def.name, e))?;
        if Primitive::from_name(&def.name).is_some() || def.name == "string" {
            return Err(TypeError::Builtin(def.name));
        }
        if self.by_name.contains_key(&def.name) {
            return Err(TypeError::DuplicateType(def.name));
        }
        // Strings and arrays first used by a refused definition are not left behind.
        self.atomically(|reg| {
            let mut members = Vec::with_capacity(def.members.len());
            for m in &def.members {
                validate_name(&m.name).map_err(|e| bad_name(&m.name, e))?;
                let layout = reg.resolve_spec(&m.ty, m.max_len).map_err(|e| match e {
                    // Name the member whose type is over a limit; the type name itself may be
                    // huge.
                    TypeError::NameTooLong { .. }
                    | TypeError::ArrayTooDeep { .. }
                    | TypeError::TooDeep { .. } => TypeError::MemberType {
                        name: def.name.clone(),
                        member: m.name.clone(),
                        source: Box::new(e),
                    },
                    e => e,
                })?;
                members.push((m.name.clone(), m.offset, layout));
            }
            let layout = build_composite(&def.name, members, def.size, def.align, serializer)?;
            reg.check_id(&layout)?;
            reg.check_depth(&layout)?;
            let layout = Arc::new(layout);
            reg.composites.push(layout.id);
            reg.insert(layout.clone());
            Ok(layout)
        })
    }

    /// Registers a type known at compile time (and, recursively, the types it uses).
    /// Registering the same composite twice returns the first registration; a different
    /// composite under a taken name is refused.
    pub fn register_desc(&mut self, desc: &TypeDesc) -> Result<Arc<TypeLayout>, TypeError> {
        self.atomically(|reg| reg.register_desc_in(desc))
    }

    /// [`register_desc`](Self::register_desc) within one registration.
    fn register_desc_in(&mut self, desc: &TypeDesc) -> Result<Arc<TypeLayout>, TypeError> {
        match desc.kind {
            DescKind::Primitive(p) => Ok(self.by_id[&p.type_id()].clone()),
            DescKind::Str { capacity } => self.string(capacity),
            DescKind::Array { elem, len } => {
                let elem = self.register_desc_in(elem)?;
                self.array(elem, len)
            }
            DescKind::Composite { name, members } => {
                validate_name(name).map_err(|e| bad_name(name, e))?;
                if Primitive::from_name(name).is_some() || name == "string" {
                    return Err(TypeError::Builtin(name.to_owned()));
                }
                let mut resolved = Vec::with_capacity(members.len());
                for m in members {
                    validate_name(m.name).map_err(|e| bad_name(m.name, e))?;
                    resolved.push((m.name.to_owned(), Some(m.offset), self.register_desc_in(m.ty)?));
                }
                let layout =
                    build_composite(name, resolved, Some(desc.size), Some(desc.align), Serializer::DEFAULT)?;
                if let Some(existing) = self.get_by_name(name) {
                    return if **existing == layout {
                        Ok(existing.clone())
                    } else {
                        Err(TypeError::DuplicateType(name.to_owned()))
                    };
                }
                self.check_id(&layout)?;
                self.check_depth(&layout)?;
                let layout = Arc::new(layout);
                self.composites.push(layout.id);
                self.insert(layout.clone());
                Ok(layout)
            }
        }
    }

    /// Replaces the serializer of a registered composite type.
    pub fn set_serializer(&mut self, name: &str, serializer: Serializer) -> Result<(), TypeError> {
        let id = *self.by_name.get(name).ok_or_else(|| TypeError::UnknownType(name.to_owned()))?;
        let layout = self.by_id.get_mut(&id).expect("by_name and by_id agree");
        if !matches!(layout.kind, TypeKind::Composite { .. }) {
            return Err(TypeError::Builtin(name.to_owned()));
        }
        Arc::make_mut(layout).serializer = serializer;
        Ok(())
    }

    /// The run-time description of a registered composite type, as `schema.json` stores it.
    pub fn type_def(&self, name: &str) -> Option<TypeDef> {
        let layout = self.get_by_name(name)?;
        let TypeKind::Composite { members } = &layout.kind else { return None };
        Some(TypeDef {
            name: layout.name.clone(),
            members: members
                .iter()
                .map(|m| MemberDef {
                    name: m.name.clone(),
                    ty: m.layout.name.clone(),
                    max_len: None,
                    offset: Some(m.offset),
                })
                .collect(),
            size: Some(layout.size),
            align: Some(layout.align),
        })
    }
}

/// Refuses a type name over [`MAX_TYPE_NAME_LEN`] bytes.
fn check_name_len(name: &str) -> Result<(), TypeError> {
    if name.len() > MAX_TYPE_NAME_LEN {
        return Err(TypeError::NameTooLong { len: name.len() });
    }
    Ok(())
}

/// How deep `layout` nests arrays: 0 for a non-array, 1 for `u8[4]`, 2 for `u8[4][4]`.
fn array_depth(layout: &TypeLayout) -> usize {
    let mut depth = 0;
    let mut cur = layout;
    while let TypeKind::Array { elem, .. } = &cur.kind {
        depth += 1;
        cur = elem;
    }
    depth
}

/// Parses a decimal count without sign or leading zeros, as canonical names spell them.
fn parse_count(s: &str) -> Option<usize> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Lays out a composite type: computed offsets where none are given, then every check.
fn build_composite(
    name: &str,
    members: Vec<(String, Option<usize>, Arc<TypeLayout>)>,
    size: Option<usize>,
    align: Option<usize>,
    serializer: Serializer,
) -> Result<TypeLayout, TypeError> {
    if members.is_empty() {
        return Err(TypeError::NoMembers(name.to_owned()));
    }
    let mut laid = Vec::with_capacity(members.len());
    let mut end = 0usize;
    let mut max_align = 1usize;
    for (member, offset, layout) in members {
        if laid.iter().any(|m: &Member| m.name == member) {
            return Err(TypeError::DuplicateMember { name: name.to_owned(), member });
        }
        if !layout.pod {
            return Err(TypeError::NotPod { name: name.to_owned(), member, ty: layout.name.clone() });
        }
        let offset = offset.unwrap_or_else(|| align_offset(end, layout.align));
        if offset % layout.align != 0 {
            return Err(TypeError::MisalignedMember {
                name: name.to_owned(),
                member,
                offset,
                align: layout.align,
            });
        }
        if offset < end {
            return Err(TypeError::OverlappingMember { name: name.to_owned(), member });
        }
        end = offset.saturating_add(layout.size);
        if end > MAX_RECORD_SIZE {
            return Err(TypeError::TooLarge { name: name.to_owned(), size: end });
        }
        max_align = max_align.max(layout.align);
        laid.push(Member { name: member, offset, layout });
    }
    let align = align.unwrap_or(max_align);
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(TypeError::BadAlign { name: name.to_owned(), align });
    }
    if let Some(m) = laid.iter().find(|m| m.layout.align > align) {
        return Err(TypeError::AlignTooSmall {
            name: name.to_owned(),
            align,
            member: m.name.clone(),
            member_align: m.layout.align,
        });
    }
    let size = size.unwrap_or_else(|| align_offset(end, align));
    if size == 0 {
        return Err(TypeError::ZeroSize(name.to_owned()));
    }
    if size > MAX_RECORD_SIZE {
        return Err(TypeError::TooLarge { name: name.to_owned(), size });
    }
    if !size.is_multiple_of(align) {
        return Err(TypeError::SizeNotMultipleOfAlign { name: name.to_owned(), size, align });
    }
    if let Some(m) = laid.iter().find(|m| m.offset + m.layout.size > size) {
        return Err(TypeError::MemberOutOfBounds {
            name: name.to_owned(),
            member: m.name.clone(),
            end: m.offset + m.layout.size,
            size,
        });
    }
    Ok(TypeLayout {
        id: TypeId::of_name(name),
        name: name.to_owned(),
        size,
        align,
        pod: true,
        kind: TypeKind::Composite { members: laid },
        serializer,
    })
}
