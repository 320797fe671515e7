//! Iteration over a table's records: sequential, by page, and Rayon-parallel.

use std::marker::PhantomData;

use rayon::iter::ParallelIterator;
use rayon::iter::plumbing::{Folder, UnindexedConsumer, UnindexedProducer, bridge_unindexed};

use super::page::{LiveSlots, PageSlot};
use super::table_data::TableData;
use crate::Table;
use crate::ids::RecordId;

/// One page of a table: a run of record positions and the live records among them.
#[derive(Clone, Copy)]
pub struct PageView<'a> {
    first_id: u64,
    page: &'a PageSlot,
    record_size: usize,
}

impl std::fmt::Debug for PageView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageView")
            .field("first_id", &self.first_id)
            .field("live", &self.page.live_count())
            .finish()
    }
}

impl<'a> PageView<'a> {
    /// The id of the page's first position.
    pub fn first_id(&self) -> RecordId {
        RecordId(self.first_id)
    }

    /// Live records on this page.
    pub fn live_count(&self) -> usize {
        self.page.live_count()
    }

    /// When every stored position is live and in order, the records as one 64-byte aligned
    /// slice; the record at offset `i * record_size` has id `first_id + i`.
    pub fn dense_bytes(&self) -> Option<&'a [u8]> {
        self.page.is_dense_all_live().then(|| self.page.data(self.record_size))
    }

    /// The live records of the page with their ids.
    pub fn records(&self) -> PageRecords<'a> {
        let inner = if self.page.is_dense_all_live() {
            Inner::Dense { next: 0, end: self.page.len() }
        } else {
            Inner::Slots(self.page.live_slots())
        };
        PageRecords { page: self.page, first_id: self.first_id, record_size: self.record_size, inner }
    }
}

enum Inner {
    Dense { next: usize, end: usize },
    Slots(LiveSlots),
}

/// The live records of one page with their ids.
pub struct PageRecords<'a> {
    page: &'a PageSlot,
    first_id: u64,
    record_size: usize,
    inner: Inner,
}

impl std::fmt::Debug for PageRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageRecords").field("first_id", &self.first_id).finish_non_exhaustive()
    }
}

impl<'a> Iterator for PageRecords<'a> {
    type Item = (RecordId, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (pos, slot) = match &mut self.inner {
            Inner::Dense { next, end } => {
                if next == end {
                    return None;
                }
                *next += 1;
                (*next - 1, *next - 1)
            }
            Inner::Slots(slots) => slots.next()?,
        };
        Some((RecordId(self.first_id + pos as u64), self.page.slot_bytes(slot, self.record_size)))
    }

    fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, mut f: F) -> B {
        match self.inner {
            Inner::Dense { next, end } => {
                let rs = self.record_size;
                let data = &self.page.data(rs)[next * rs..end * rs];
                let mut acc = init;
                for (i, rec) in data.chunks_exact(rs).enumerate() {
                    acc = f(acc, (RecordId(self.first_id + (next + i) as u64), rec));
                }
                acc
            }
            Inner::Slots(slots) => {
                let (page, first, rs) = (self.page, self.first_id, self.record_size);
                slots.fold(init, |acc, (pos, slot)| {
                    f(acc, (RecordId(first + pos as u64), page.slot_bytes(slot, rs)))
                })
            }
        }
    }
}

/// The live records of a table, in id order, as raw bytes.
pub struct RawIter<'a> {
    table: &'a TableData,
    next_page: u64,
    end_page: u64,
    current: Option<PageRecords<'a>>,
}

impl std::fmt::Debug for RawIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawIter")
            .field("table", &self.table.name())
            .field("next_page", &self.next_page)
            .finish()
    }
}

impl<'a> RawIter<'a> {
    pub(crate) fn new(table: &'a TableData) -> Self {
        RawIter { table, next_page: 0, end_page: table.end_page(), current: None }
    }
}

impl<'a> Iterator for RawIter<'a> {
    type Item = (RecordId, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(cur) = &mut self.current
                && let Some(item) = cur.next()
            {
                return Some(item);
            }
            let (index, page) = self.table.tree.next_page(self.next_page, self.end_page)?;
            self.next_page = index + 1;
            let first_id = (index << self.table.geom.shift) + 1;
            self.current =
                Some(PageView { first_id, page, record_size: self.table.geom.record_size }.records());
        }
    }

    fn fold<B, F: FnMut(B, Self::Item) -> B>(mut self, init: B, mut f: F) -> B {
        let mut acc = init;
        if let Some(cur) = self.current.take() {
            acc = cur.fold(acc, &mut f);
        }
        let (shift, record_size) = (self.table.geom.shift, self.table.geom.record_size);
        let mut acc = Some(acc);
        self.table.tree.for_each_in(self.next_page, self.end_page, &mut |index, page| {
            let view = PageView { first_id: (index << shift) + 1, page, record_size };
            acc = Some(view.records().fold(acc.take().expect("set"), &mut f));
        });
        acc.expect("set")
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.table.live as usize))
    }
}

/// Casts a record's bytes to `&T`.
///
/// # Safety
///
/// `bytes` must be a record of a table whose schema matches `T` (checked when a typed view is
/// made): exactly `size_of::<T>()` bytes, aligned for `T` (records sit at multiples of the
/// record size from a 64-byte aligned page), holding a valid `T` (every write is validated).
#[inline]
pub(crate) unsafe fn cast_record<T: Table>(bytes: &[u8]) -> &T {
    debug_assert_eq!(bytes.len(), T::RECORD_SIZE);
    debug_assert_eq!(bytes.as_ptr() as usize % T::ALIGN, 0);
    // SAFETY: guaranteed by the caller, as documented above.
    unsafe { &*bytes.as_ptr().cast::<T>() }
}

/// The live records of a typed table, in id order.
pub struct Iter<'a, T> {
    raw: RawIter<'a>,
    _t: PhantomData<&'a T>,
}

impl<T> std::fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.raw.fmt(f)
    }
}

impl<'a, T: Table> Iter<'a, T> {
    /// # Safety
    ///
    /// The table's schema must match `T`.
    pub(crate) unsafe fn new(table: &'a TableData) -> Self {
        Iter { raw: RawIter::new(table), _t: PhantomData }
    }
}

impl<'a, T: Table> Iterator for Iter<'a, T> {
    type Item = (RecordId, &'a T);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: `new`'s contract: the table matches `T`.
        self.raw.next().map(|(id, b)| (id, unsafe { cast_record::<T>(b) }))
    }

    fn fold<B, F: FnMut(B, Self::Item) -> B>(self, init: B, mut f: F) -> B {
        // SAFETY: `new`'s contract: the table matches `T`.
        self.raw.fold(init, |acc, (id, b)| f(acc, (id, unsafe { cast_record::<T>(b) })))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.raw.size_hint()
    }
}

/// A Rayon producer over a range of page indices.
struct PageProducer<'a> {
    table: &'a TableData,
    lo: u64,
    hi: u64,
}

impl<'a> UnindexedProducer for PageProducer<'a> {
    type Item = PageView<'a>;

    fn split(self) -> (Self, Option<Self>) {
        if self.hi - self.lo < 2 {
            return (self, None);
        }
        let mid = self.lo + (self.hi - self.lo) / 2;
        (PageProducer { hi: mid, ..self }, Some(PageProducer { lo: mid, ..self }))
    }

    fn fold_with<F: Folder<Self::Item>>(self, folder: F) -> F {
        let (shift, record_size) = (self.table.geom.shift, self.table.geom.record_size);
        let mut folder = Some(folder);
        self.table.tree.for_each_in(self.lo, self.hi, &mut |index, page| {
            let f = folder.take().expect("set");
            let view = PageView { first_id: (index << shift) + 1, page, record_size };
            folder = Some(if f.full() { f } else { f.consume(view) });
        });
        folder.expect("set")
    }
}

/// The pages of a table as a Rayon parallel iterator; each worker takes whole pages, which are
/// 64-byte aligned.
#[derive(Clone, Copy)]
pub struct ParPages<'a> {
    table: &'a TableData,
}

impl std::fmt::Debug for ParPages<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParPages").field("table", &self.table.name()).finish()
    }
}

impl<'a> ParPages<'a> {
    pub(crate) fn new(table: &'a TableData) -> Self {
        ParPages { table }
    }
}

impl<'a> ParallelIterator for ParPages<'a> {
    type Item = PageView<'a>;

    fn drive_unindexed<C: UnindexedConsumer<Self::Item>>(self, consumer: C) -> C::Result {
        bridge_unindexed(PageProducer { table: self.table, lo: 0, hi: self.table.end_page() }, consumer)
    }
}

/// One page of a typed table.
pub struct TypedPage<'a, T> {
    view: PageView<'a>,
    _t: PhantomData<&'a T>,
}

impl<T> Clone for TypedPage<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for TypedPage<'_, T> {}

impl<T> std::fmt::Debug for TypedPage<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.view.fmt(f)
    }
}

impl<'a, T: Table> TypedPage<'a, T> {
    /// # Safety
    ///
    /// The page must belong to a table whose schema matches `T`.
    pub(crate) unsafe fn new(view: PageView<'a>) -> Self {
        TypedPage { view, _t: PhantomData }
    }

    /// The id of the page's first position.
    pub fn first_id(&self) -> RecordId {
        self.view.first_id()
    }

    /// When every stored position is live and in order, the records as one slice; element `i`
    /// has id `first_id + i`.
    pub fn as_slice(self) -> Option<&'a [T]> {
        let bytes = self.view.dense_bytes()?;
        // SAFETY: the table matches `T` (constructor contract): the bytes are `len` records of
        // `size_of::<T>()` bytes each, starting 64-byte aligned, each a valid `T`.
        Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / T::RECORD_SIZE) })
    }

    /// The live records of the page with their ids.
    pub fn records(self) -> impl Iterator<Item = (RecordId, &'a T)> + 'a {
        // SAFETY: the table matches `T` (constructor contract).
        self.view.records().map(|(id, b)| (id, unsafe { cast_record::<T>(b) }))
    }
}
