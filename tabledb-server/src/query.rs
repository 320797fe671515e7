//! Listing records: PostgREST-style filters (`field=eq.5`, `neq`, `lt`, `lte`, `gt`, `gte`,
//! `in.(1,2)`), `order=field.asc|desc`, `limit`, `offset`, and `count=true` for the total.
//! A field named like one of these parameters is filtered the same way (`count=eq.5`): a value
//! of the filter form makes the key a filter.
//!
//! A listing takes at most [`MAX_FILTERS`] filters, each `in` filter at most [`MAX_IN_VALUES`]
//! values, and its scan stops at a deadline (the request timeout).

use std::cmp::Ordering;
use std::time::Instant;

use tabledb::schema::{Field, TableSchema, shown};
use tabledb::types::{Primitive, TypeKind, TypeLayout};
use tabledb::{RawTableView, RecordId};

use crate::error::ApiError;

/// A comparable value of a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl Key {
    fn cmp(&self, other: &Key) -> Option<Ordering> {
        match (self, other) {
            (Key::Int(a), Key::Int(b)) => Some(a.cmp(b)),
            (Key::Float(a), Key::Float(b)) => a.partial_cmp(b),
            (Key::Bool(a), Key::Bool(b)) => Some(a.cmp(b)),
            (Key::Str(a), Key::Str(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// The order of a sorted listing: a total order, so sorting never panics and is
    /// deterministic. NaN floats come after every number (last ascending, first descending),
    /// whatever their sign or payload; `-0.0` and `0.0` are equal.
    fn sort_cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Float(a), Key::Float(b)) => match (a.is_nan(), b.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                // Neither is NaN: `partial_cmp` is total here.
                (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            },
            // Keys of one listing all come from one field, so they are of one kind.
            _ => self.cmp(other).unwrap_or(Ordering::Equal),
        }
    }
}

/// Where a filter or an ordering looks: the id, or a field.
#[derive(Debug, Clone)]
enum Target {
    Id,
    Field(Field),
}

impl Target {
    fn resolve(schema: &TableSchema, name: &str) -> Result<Target, ApiError> {
        if name == "id" {
            return Ok(Target::Id);
        }
        let field = schema.field(name).ok_or_else(|| {
            ApiError::bad_request(format!("table `{}` has no field {}", schema.name, shown(name)))
        })?;
        if !comparable(&field.layout) {
            return Err(ApiError::bad_request(format!(
                "field `{name}` has type `{}`, which cannot be filtered or ordered",
                field.layout.name
            )));
        }
        Ok(Target::Field(field.clone()))
    }

    fn key(&self, id: RecordId, record: &[u8]) -> Key {
        match self {
            Target::Id => Key::Int(i128::from(id.0)),
            Target::Field(f) => key_of(&f.layout, &record[f.range()]),
        }
    }

    fn parse(&self, text: &str) -> Result<Key, String> {
        match self {
            Target::Id => parse_decimal(text).map(|v| Key::Int(v.into())).ok_or_else(|| {
                format!("{} is not an id (decimal digits, without sign or leading zeros)", shown(text))
            }),
            Target::Field(f) => parse_key(&f.layout, text),
        }
    }
}

/// A number written as ids are: decimal digits, without a sign or leading zeros (`7`, not
/// `+7` or `07`), so that one id has one spelling.
pub fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'));
    if canonical { text.parse().ok() } else { None }
}

fn comparable(layout: &TypeLayout) -> bool {
    matches!(layout.kind, TypeKind::Primitive(_) | TypeKind::Str { .. })
}

fn le<const N: usize>(b: &[u8]) -> [u8; N] {
    b[..N].try_into().expect("field width")
}

fn key_of(layout: &TypeLayout, b: &[u8]) -> Key {
    match &layout.kind {
        TypeKind::Primitive(p) => match p {
            Primitive::I8 => Key::Int(i8::from_le_bytes(le(b)).into()),
            Primitive::I16 => Key::Int(i16::from_le_bytes(le(b)).into()),
            Primitive::I32 => Key::Int(i32::from_le_bytes(le(b)).into()),
            Primitive::I64 => Key::Int(i64::from_le_bytes(le(b)).into()),
            Primitive::U8 => Key::Int(b[0].into()),
            Primitive::U16 => Key::Int(u16::from_le_bytes(le(b)).into()),
            Primitive::U32 => Key::Int(u32::from_le_bytes(le(b)).into()),
            Primitive::U64 => Key::Int(u64::from_le_bytes(le(b)).into()),
            Primitive::F32 => Key::Float(f32::from_le_bytes(le(b)).into()),
            Primitive::F64 => Key::Float(f64::from_le_bytes(le(b))),
            Primitive::Bool => Key::Bool(b[0] != 0),
        },
        TypeKind::Str { .. } => match layout.to_json(b) {
            Ok(serde_json::Value::String(s)) => Key::Str(s),
            _ => Key::Str(String::new()),
        },
        _ => Key::Str(String::new()),
    }
}

fn parse_key(layout: &TypeLayout, text: &str) -> Result<Key, String> {
    let bad = || format!("{} is not a value of type `{}`", shown(text), layout.name);
    match &layout.kind {
        TypeKind::Primitive(Primitive::F64) => text.parse::<f64>().map(Key::Float).map_err(|_| bad()),
        TypeKind::Primitive(Primitive::F32) => {
            // The f32 a write of this number stores (read as an f64, then narrowed), so that
            // `eq.0.1` finds the record written with 0.1. A finite number beyond the f32 range
            // (which no write stores) is compared as it is.
            let wide = text.parse::<f64>().map_err(|_| bad())?;
            let narrow = wide as f32;
            Ok(Key::Float(if wide.is_finite() && !narrow.is_finite() { wide } else { f64::from(narrow) }))
        }
        TypeKind::Primitive(Primitive::Bool) => match text {
            "true" => Ok(Key::Bool(true)),
            "false" => Ok(Key::Bool(false)),
            _ => Err(bad()),
        },
        TypeKind::Primitive(_) => text.parse::<i128>().map(Key::Int).map_err(|_| bad()),
        TypeKind::Str { .. } => Ok(Key::Str(text.to_owned())),
        _ => Err(bad()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
}

#[derive(Debug)]
struct Filter {
    target: Target,
    op: Op,
    values: Vec<Key>,
}

impl Filter {
    fn parse(schema: &TableSchema, field: &str, spec: &str) -> Result<Filter, ApiError> {
        let target = Target::resolve(schema, field)?;
        let (op, rest) = spec.split_once('.').ok_or_else(|| {
            ApiError::bad_request(format!(
                "filter {}: expected operator.value, e.g. `{field}=eq.5`",
                shown(&format!("{field}={spec}"))
            ))
        })?;
        let op = match op {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "in" => Op::In,
            other => {
                return Err(ApiError::bad_request(format!(
                    "filter on `{field}`: unknown operator {}; use eq, neq, lt, lte, gt, gte or in",
                    shown(other)
                )));
            }
        };
        let texts: Vec<&str> = if op == Op::In {
            let inner = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "filter on `{field}`: `in` takes a list, e.g. `{field}=in.(1,2)`"
                ))
            })?;
            if inner.is_empty() { Vec::new() } else { inner.split(',').collect() }
        } else {
            vec![rest]
        };
        if texts.len() > MAX_IN_VALUES {
            return Err(ApiError::bad_request(format!(
                "filter on `{field}`: at most {MAX_IN_VALUES} values"
            )));
        }
        let values = texts
            .into_iter()
            .map(|t| target.parse(t).map_err(|e| ApiError::bad_request(format!("filter on `{field}`: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(Filter { target, op, values })
    }

    fn matches(&self, id: RecordId, record: &[u8]) -> bool {
        let key = self.target.key(id, record);
        let ord = |v: &Key| key.cmp(v);
        match self.op {
            Op::Eq => ord(&self.values[0]) == Some(Ordering::Equal),
            Op::Neq => ord(&self.values[0]).is_some_and(|o| o != Ordering::Equal),
            Op::Lt => ord(&self.values[0]) == Some(Ordering::Less),
            Op::Lte => matches!(ord(&self.values[0]), Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => ord(&self.values[0]) == Some(Ordering::Greater),
            Op::Gte => matches!(ord(&self.values[0]), Some(Ordering::Greater | Ordering::Equal)),
            Op::In => self.values.iter().any(|v| ord(v) == Some(Ordering::Equal)),
        }
    }
}

/// The query parameters of a listing that are not filters.
pub const LISTING_PARAMS: [&str; 4] = ["limit", "offset", "order", "count"];

/// The filter operators.
const OPERATORS: [&str; 7] = ["eq", "neq", "lt", "lte", "gt", "gte", "in"];

/// Whether a query value has the form of a filter: an operator, a dot, the rest.
fn is_filter_spec(value: &str) -> bool {
    value.split_once('.').is_some_and(|(op, _)| OPERATORS.contains(&op))
}

/// Values an `in` filter may list at most.
pub const MAX_IN_VALUES: usize = 1000;

/// Filters one listing may have at most.
pub const MAX_FILTERS: usize = 16;

/// How much scanning (records times the values each is compared with) happens between two
/// looks at the deadline.
const WORK_PER_DEADLINE_CHECK: usize = 4096;

/// A listing's scan reached its deadline before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded;

/// Looks at the clock once per [`WORK_PER_DEADLINE_CHECK`] units of work.
struct Budget {
    deadline: Instant,
    per_record: usize,
    work: usize,
}

impl Budget {
    fn spend(&mut self) -> Result<(), DeadlineExceeded> {
        self.work += self.per_record;
        if self.work >= WORK_PER_DEADLINE_CHECK {
            self.work = 0;
            if Instant::now() >= self.deadline {
                return Err(DeadlineExceeded);
            }
        }
        Ok(())
    }
}

/// The records of one page of a listing, and the total count of matches when asked for.
pub type Page<'a> = (Vec<(RecordId, &'a [u8])>, Option<u64>);

/// A parsed listing request.
#[derive(Debug)]
pub struct Listing {
    filters: Vec<Filter>,
    order: Option<(Target, bool)>,
    pub limit: usize,
    pub offset: usize,
    pub count: bool,
}

impl Listing {
    /// Parses the query parameters against a table's schema; every mistake names the
    /// parameter.
    pub fn parse(
        schema: &TableSchema,
        params: &[(String, String)],
        max_page: usize,
    ) -> Result<Listing, ApiError> {
        let mut listing =
            Listing { filters: Vec::new(), order: None, limit: max_page.min(100), offset: 0, count: false };
        for (key, value) in params {
            // A field may be named like a listing parameter: a value of the filter form
            // (`count=eq.5`) is then a filter on it. No value of `limit`, `offset` or `count`
            // has that form; an `order` by a field named like an operator (`order=lt.desc`)
            // does, and on a table with a field `order` it is read as the filter.
            let key = key.as_str();
            if LISTING_PARAMS.contains(&key) && schema.field(key).is_some() && is_filter_spec(value) {
                listing.push_filter(schema, key, value)?;
                continue;
            }
            match key {
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| {
                        ApiError::bad_request(format!("limit {} is not a number", shown(value)))
                    })?;
                    if limit > max_page {
                        return Err(ApiError::bad_request(format!(
                            "limit {limit} exceeds the maximum page size {max_page}"
                        )));
                    }
                    listing.limit = limit;
                }
                "offset" => {
                    listing.offset = value.parse().map_err(|_| {
                        ApiError::bad_request(format!("offset {} is not a number", shown(value)))
                    })?;
                }
                "count" => {
                    listing.count = match value.as_str() {
                        "true" | "exact" => true,
                        "false" => false,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "count {}: use true or false",
                                shown(value)
                            )));
                        }
                    }
                }
                "order" => {
                    let (field, dir) = value.rsplit_once('.').unwrap_or((value.as_str(), "asc"));
                    let desc = match dir {
                        "asc" => false,
                        "desc" => true,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "order {}: use field.asc or field.desc",
                                shown(value)
                            )));
                        }
                    };
                    listing.order = Some((Target::resolve(schema, field)?, desc));
                }
                field => listing.push_filter(schema, field, value)?,
            }
        }
        Ok(listing)
    }

    fn push_filter(&mut self, schema: &TableSchema, field: &str, spec: &str) -> Result<(), ApiError> {
        if self.filters.len() == MAX_FILTERS {
            return Err(ApiError::bad_request(format!("at most {MAX_FILTERS} filters per listing")));
        }
        self.filters.push(Filter::parse(schema, field, spec)?);
        Ok(())
    }

    fn matches(&self, id: RecordId, record: &[u8]) -> bool {
        self.filters.iter().all(|f| f.matches(id, record))
    }

    /// Runs the listing over one table of a snapshot: the page of matching records (id order
    /// unless ordered) and, when asked, the total count of matches. Gives up with
    /// [`DeadlineExceeded`] once `deadline` has passed.
    pub fn run<'a>(&self, table: RawTableView<'a>, deadline: Instant) -> Result<Page<'a>, DeadlineExceeded> {
        let per_record = 1 + self.filters.iter().map(|f| f.values.len()).sum::<usize>();
        let mut budget = Budget { deadline, per_record, work: 0 };
        if Instant::now() >= deadline {
            return Err(DeadlineExceeded);
        }
        match &self.order {
            None => {
                let mut page = Vec::with_capacity(self.limit.min(1024));
                let mut matched = 0u64;
                for (id, rec) in table.iter() {
                    budget.spend()?;
                    if !self.matches(id, rec) {
                        continue;
                    }
                    if matched >= self.offset as u64 && page.len() < self.limit {
                        page.push((id, rec));
                    }
                    matched += 1;
                    if !self.count && page.len() == self.limit {
                        break;
                    }
                }
                Ok((page, self.count.then_some(matched)))
            }
            Some((target, desc)) => {
                let mut all: Vec<(Key, RecordId, &'a [u8])> = Vec::new();
                for (id, rec) in table.iter() {
                    budget.spend()?;
                    if self.matches(id, rec) {
                        all.push((target.key(id, rec), id, rec));
                    }
                }
                let total = all.len() as u64;
                // The comparisons count against the deadline too: once it has passed, every
                // comparison answers at once and the result is thrown away.
                let late = std::cell::Cell::new(false);
                let mut compared = 0usize;
                let mut cmp = |a: &(Key, RecordId, &[u8]), b: &(Key, RecordId, &[u8])| {
                    compared += 1;
                    if compared.is_multiple_of(WORK_PER_DEADLINE_CHECK) && Instant::now() >= deadline {
                        late.set(true);
                    }
                    if late.get() {
                        return std::cmp::Ordering::Equal;
                    }
                    let o = a.0.sort_cmp(&b.0).then(a.1.cmp(&b.1));
                    if *desc { o.reverse() } else { o }
                };
                // Only the first `offset + limit` in order are needed: select them, then sort
                // just those.
                let wanted = self.offset.saturating_add(self.limit);
                if wanted < all.len() {
                    if wanted > 0 {
                        all.select_nth_unstable_by(wanted - 1, &mut cmp);
                    }
                    all.truncate(wanted);
                }
                all.sort_unstable_by(&mut cmp);
                if late.get() || Instant::now() >= deadline {
                    return Err(DeadlineExceeded);
                }
                let page = all
                    .into_iter()
                    .skip(self.offset)
                    .take(self.limit)
                    .map(|(_, id, rec)| (id, rec))
                    .collect();
                Ok((page, self.count.then_some(total)))
            }
        }
    }
}
