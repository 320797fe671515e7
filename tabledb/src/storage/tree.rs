//! The page tree: a radix tree from page index to page, shared between snapshots and updated
//! by path copying.
//!
//! Leaves describe [`LEAF_FANOUT`] pages each and inner nodes have [`INNER_FANOUT`] children
//! (wide, so the tree is shallow and lookups are short); the tree grows a level on top when a
//! page index does not fit. A writer copies the nodes on the path to a page it changes (unless it created them in
//! the same commit, when it changes them in place), so a commit that touches `k` pages copies
//! at most `k` pages plus `k` paths. Nodes hold plain pointers: what a commit replaces is
//! retired and freed by the [`Reclaimer`](super::reclaim::Reclaimer) once no snapshot can
//! reach it, so sharing a node costs no reference count.

use std::ptr::NonNull;

use super::block;
use super::page::{PageMut, PageSlot, free_page};
use super::reclaim::{Garbage, Writer};

const LEAF_BITS: u32 = 4;
const INNER_BITS: u32 = 6;
/// Pages per leaf.
pub const LEAF_FANOUT: usize = 1 << LEAF_BITS;
/// Children per inner node.
pub const INNER_FANOUT: usize = 1 << INNER_BITS;

/// The lowest page-index bit that selects a child of a node at `level` (1 = leaf).
#[inline]
fn shift(level: u32) -> u32 {
    if level == 1 { 0 } else { LEAF_BITS + INNER_BITS * (level - 2) }
}

/// Which child of a node at `level` covers page `index`.
#[inline]
fn child(index: u64, level: u32) -> usize {
    let mask = if level == 1 { LEAF_FANOUT as u64 - 1 } else { INNER_FANOUT as u64 - 1 };
    ((index >> shift(level)) & mask) as usize
}

#[derive(Clone, Copy)]
enum Kind {
    Inner([Option<NonNull<Node>>; INNER_FANOUT]),
    Leaf {
        /// Bit `i`: the block of slot `i` was allocated by the commit that made this node,
        /// so that commit may write it in place. Meaningless once the node is published, and
        /// reset whenever the node is copied.
        fresh: u16,
        slots: [PageSlot; LEAF_FANOUT],
    },
}

/// A node of the page tree.
pub(crate) struct Node {
    /// The commit that created this node; only that commit may change it.
    tag: u64,
    kind: Kind,
}

/// Where a leaf node's slots start, from the start of the node.
const LEAF_SLOTS_OFFSET: usize = {
    let node = Node { tag: 0, kind: Kind::Leaf { fresh: 0, slots: [PageSlot::EMPTY; LEAF_FANOUT] } };
    let base = (&node as *const Node).cast::<u8>();
    match &node.kind {
        // SAFETY: both pointers point into `node`.
        Kind::Leaf { slots, .. } => unsafe { slots.as_ptr().cast::<u8>().offset_from(base) as usize },
        Kind::Inner(_) => 0,
    }
};

/// Where an inner node's children start, from the start of the node.
const INNER_CHILDREN_OFFSET: usize = {
    let node = Node { tag: 0, kind: Kind::Inner([None; INNER_FANOUT]) };
    let base = (&node as *const Node).cast::<u8>();
    match &node.kind {
        // SAFETY: both pointers point into `node`.
        Kind::Inner(children) => unsafe { children.as_ptr().cast::<u8>().offset_from(base) as usize },
        Kind::Leaf { .. } => 0,
    }
};

/// The children of an inner node, read without checking the node's kind.
///
/// # Safety
///
/// `node` must be a live inner node (a node above level 1: the tree's levels are uniform).
#[inline(always)]
unsafe fn inner_children<'a>(node: NonNull<Node>) -> &'a [Option<NonNull<Node>>; INNER_FANOUT] {
    // SAFETY: per the caller, `node` is a live `Kind::Inner`, whose children array starts at
    // `INNER_CHILDREN_OFFSET` (computed from the same type), aligned and in bounds.
    unsafe {
        debug_assert!(matches!(node.as_ref().kind, Kind::Inner(_)));
        &*node.as_ptr().cast::<u8>().add(INNER_CHILDREN_OFFSET).cast()
    }
}

/// Slot `i` of a leaf node, read without checking the node's kind.
///
/// # Safety
///
/// `node` must be a live leaf node and `i < LEAF_FANOUT`.
#[inline(always)]
unsafe fn leaf_slot<'a>(node: NonNull<Node>, i: usize) -> &'a PageSlot {
    debug_assert!(i < LEAF_FANOUT);
    // SAFETY: per the caller, `node` is a live `Kind::Leaf`, whose slots start at
    // `LEAF_SLOTS_OFFSET` (computed from the same type); slot `i` is in bounds and aligned.
    unsafe {
        debug_assert!(matches!(node.as_ref().kind, Kind::Leaf { .. }));
        &*node.as_ptr().cast::<u8>().add(LEAF_SLOTS_OFFSET + i * std::mem::size_of::<PageSlot>()).cast()
    }
}

/// Index bits a tree of `height` levels covers.
#[inline(always)]
fn covered_bits(height: u32) -> u32 {
    shift(height) + if height == 1 { LEAF_BITS } else { INNER_BITS }
}

/// The leaf covering page `index` in a tree of height `H`, walked with the levels unrolled.
///
/// # Safety
///
/// `root` must be the live root of a tree of height `H`.
#[inline(always)]
unsafe fn descend<const H: u32>(root: NonNull<Node>, index: u64) -> Option<NonNull<Node>> {
    // SAFETY: per the caller.
    unsafe { descend_to_leaf(root, H, index) }
}

/// The leaf covering page `index` in a tree of `height` levels.
///
/// # Safety
///
/// `root` must be the live root of a tree of height `height`.
#[inline(always)]
unsafe fn descend_to_leaf(root: NonNull<Node>, height: u32, index: u64) -> Option<NonNull<Node>> {
    let bits = covered_bits(height);
    if bits < 64 && index >> bits != 0 {
        return None;
    }
    let mut node = root;
    let mut level = height;
    while level > 1 {
        // SAFETY: nodes above level 1 are inner nodes, alive per the caller.
        node = unsafe { inner_children(node) }[child(index, level)]?;
        level -= 1;
    }
    Some(node)
}

/// The pages of one table by page index.
#[derive(Clone, Copy, Default)]
pub struct PageTree {
    root: Option<NonNull<Node>>,
    /// Levels including the root (1 = a single leaf).
    height: u32,
}

// SAFETY: a tree is a pointer to nodes that are immutable once published; only the committer
// that created a node (under the commit lock, before publishing) writes it.
unsafe impl Send for PageTree {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for PageTree {}

impl std::fmt::Debug for PageTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTree").field("height", &self.height).finish_non_exhaustive()
    }
}

fn new_node(tag: u64, kind: Kind) -> NonNull<Node> {
    let ptr = block::allocate_for::<Node>();
    // SAFETY: fresh, aligned room for one node.
    unsafe { ptr.as_ptr().write(Node { tag, kind }) };
    ptr
}

/// Frees one node (not its children).
///
/// # Safety
///
/// The node must come from `new_node`, be unreachable, and not be freed twice.
pub(crate) unsafe fn free_one(ptr: NonNull<Node>) {
    // `Node` has no destructor (its fields are `Copy`), so freeing the room is enough.
    // SAFETY: per the caller.
    unsafe { block::free_for(ptr) };
}

fn empty_leaf() -> Kind {
    Kind::Leaf { fresh: 0, slots: [PageSlot::EMPTY; LEAF_FANOUT] }
}

impl PageTree {
    fn fits(&self, page: u64) -> bool {
        if self.height == 0 {
            return false;
        }
        let bits = covered_bits(self.height);
        bits >= 64 || page >> bits == 0
    }

    /// The page at `index`.
    #[inline]
    pub fn get(&self, index: u64) -> Option<&PageSlot> {
        let slot = self.leaf_entry(index)?;
        slot.exists().then_some(slot)
    }

    /// Where the leaf entry of page `index` lives, found by walking only the inner nodes: the
    /// leaf itself is not read (the caller reads it, or fetches it and reads it once it has
    /// arrived). `None` when no leaf covers the page. The entry may describe a page that does
    /// not exist ([`PageSlot::exists`] is false).
    ///
    /// The walk is unrolled for the usual heights, so it has no data-dependent branches
    /// beyond the missing-child checks and the processor can overlap the walks of
    /// consecutive lookups.
    #[inline]
    pub fn leaf_entry(&self, index: u64) -> Option<&PageSlot> {
        let root = self.root?;
        let height = self.height;
        // SAFETY: `root` is the root of this tree, of height `height` (each arm passes the
        // height it matched); nodes reachable from this tree are alive while the snapshot (or
        // the commit) that owns the tree is, which `&self` borrows.
        let leaf = unsafe {
            match height {
                1 => descend::<1>(root, index),
                2 => descend::<2>(root, index),
                3 => descend::<3>(root, index),
                4 => descend::<4>(root, index),
                5 => descend::<5>(root, index),
                _ => descend_to_leaf(root, height, index),
            }
        }?;
        // SAFETY: `leaf` is a live leaf of this tree (as above).
        Some(unsafe { leaf_slot(leaf, child(index, 1)) })
    }

    /// Asks the processor to fetch the leaf entry of page `index`, walking only the inner
    /// nodes (which are usually cached) and not waiting for the leaf.
    #[inline]
    pub fn prefetch_leaf(&self, index: u64) {
        if !self.fits(index) {
            return;
        }
        let Some(mut node) = self.root else { return };
        let mut level = self.height;
        loop {
            level -= 1;
            let i = child(index, level + 1);
            // SAFETY: as in `get`.
            match unsafe { &node.as_ref().kind } {
                Kind::Inner(children) => match children[i] {
                    Some(next) if level > 1 => node = next,
                    Some(leaf) => {
                        // The child is a leaf: fetch the line of the page's slot without
                        // reading it.
                        let slot = LEAF_SLOTS_OFFSET + child(index, 1) * std::mem::size_of::<PageSlot>();
                        super::table_data::prefetch_line(leaf.as_ptr().cast::<u8>().wrapping_add(slot));
                        return;
                    }
                    None => return,
                },
                Kind::Leaf { .. } => return,
            }
        }
    }

    /// Makes `*ptr` a node the writer may change, copying and retiring it if another commit
    /// made it.
    ///
    /// # Safety
    ///
    /// `*ptr` must be a live node of the tree being written.
    unsafe fn own(ptr: &mut NonNull<Node>, w: &mut Writer) {
        // SAFETY: per the caller, the node is alive.
        let node = unsafe { ptr.as_ref() };
        if node.tag != w.tag {
            let kind = match node.kind {
                Kind::Leaf { slots, .. } => Kind::Leaf { fresh: 0, slots },
                inner => inner,
            };
            let copy = new_node(w.tag, kind);
            w.retire(Garbage::Node(*ptr));
            *ptr = copy;
        }
    }

    /// The page at `index`, ready to be changed by `w`: every node on its path is made the
    /// writer's own (copied if shared) and the tree grows if needed. The page may not exist
    /// yet (an empty slot).
    pub fn page_mut(&mut self, index: u64, w: &mut Writer) -> PageMut<'_> {
        let (fresh, slots) = self.leaf_mut(index, w);
        let i = child(index, 1);
        let bit = 1u16 << i;
        PageMut { fresh: *fresh & bit != 0, slot: &mut slots[i], fresh_bit: fresh, bit }
    }

    /// The leaf covering page `index`, ready to be changed by `w` (see
    /// [`page_mut`](Self::page_mut)): its fresh bits and its slots.
    fn leaf_mut(&mut self, index: u64, w: &mut Writer) -> (&mut u16, &mut [PageSlot; LEAF_FANOUT]) {
        if self.root.is_none() {
            self.root = Some(new_node(w.tag, empty_leaf()));
            self.height = 1;
        }
        while !self.fits(index) {
            let mut children = [None; INNER_FANOUT];
            children[0] = self.root;
            self.root = Some(new_node(w.tag, Kind::Inner(children)));
            self.height += 1;
        }
        let mut ptr: &mut NonNull<Node> = self.root.as_mut().expect("root exists");
        let mut level = self.height;
        loop {
            level -= 1;
            let i = child(index, level + 1);
            // SAFETY: `ptr` is a live node of this tree (the root, or a child reached from a
            // node the writer owns).
            unsafe { Self::own(ptr, w) };
            // SAFETY: the node now belongs to this writer's commit: unpublished, reachable only
            // through this tree, which `&mut self` borrows exclusively.
            let node = unsafe { ptr.as_mut() };
            match &mut node.kind {
                Kind::Inner(children) => {
                    let child = &mut children[i];
                    if child.is_none() {
                        let kind = if level == 1 { empty_leaf() } else { Kind::Inner([None; INNER_FANOUT]) };
                        *child = Some(new_node(w.tag, kind));
                    }
                    ptr = child.as_mut().expect("just filled");
                }
                Kind::Leaf { fresh, slots } => return (fresh, slots),
            }
        }
    }

    /// Replaces the page at `index` (retiring the old one) with `page`, which must have been
    /// allocated for this writer.
    pub fn put_page(&mut self, index: u64, page: PageSlot, record_size: usize, w: &mut Writer) {
        self.put_pages(std::iter::once((index, page)), record_size, w);
    }

    /// [`put_page`](Self::put_page) for many pages, walking the tree once per leaf when the
    /// pages come in index order.
    pub fn put_pages(
        &mut self,
        pages: impl IntoIterator<Item = (u64, PageSlot)>,
        record_size: usize,
        w: &mut Writer,
    ) {
        let pages = pages.into_iter();
        // Each page retires the one it replaces (and each leaf, one node).
        w.garbage.reserve(pages.size_hint().0 + pages.size_hint().0 / LEAF_FANOUT);
        let mut leaf: Option<(u64, NonNull<u16>, NonNull<[PageSlot; LEAF_FANOUT]>)> = None;
        for (index, page) in pages {
            let leaf_index = index >> LEAF_BITS;
            let (mut fresh, mut slots) = match leaf {
                Some((at, fresh, slots)) if at == leaf_index => (fresh, slots),
                _ => {
                    let (fresh, slots) = self.leaf_mut(index, w);
                    let entry = (leaf_index, NonNull::from(fresh), NonNull::from(slots));
                    leaf = Some(entry);
                    (entry.1, entry.2)
                }
            };
            // SAFETY: the pointers come from `leaf_mut` for this leaf, whose node belongs to
            // this writer from then on: later `leaf_mut` calls for other leaves neither copy
            // nor free it (they copy only nodes another commit made), and nothing else reaches
            // it while `&mut self` is borrowed. No other reference to it is alive here.
            let (fresh, slots) = unsafe { (fresh.as_mut(), slots.as_mut()) };
            let i = child(index, 1);
            let bit = 1u16 << i;
            let slot = &mut slots[i];
            if slot.exists() {
                if *fresh & bit != 0 {
                    // SAFETY: a fresh block was allocated in this commit and never published.
                    unsafe { free_page(slot, record_size) };
                } else {
                    w.retire(Garbage::Block(
                        NonNull::new(slot.block_addr() as *mut u8).expect("existing pages have blocks"),
                        slot.block_bytes(record_size),
                    ));
                }
            }
            *slot = page;
            *fresh |= bit;
        }
    }

    /// Calls `f` for every page with index in `lo..hi`, in order.
    pub fn for_each_in<'a>(&'a self, lo: u64, hi: u64, f: &mut impl FnMut(u64, &'a PageSlot)) {
        if let Some(root) = self.root
            && lo < hi
        {
            // SAFETY: the root is alive while `&self` is borrowed (see `get`).
            walk(unsafe { &*root.as_ptr() }, self.height, 0, lo, hi, f);
        }
    }

    /// The leaves, in order, each with the index of its first page: the page entries
    /// in groups of [`LEAF_FANOUT`], found without reading the leaves themselves (some
    /// entries may describe pages that do not exist).
    pub fn leaves(&self) -> Vec<(u64, &[PageSlot; LEAF_FANOUT])> {
        fn collect<'a>(
            node: &'a Node,
            level: u32,
            base: u64,
            out: &mut Vec<(u64, &'a [PageSlot; LEAF_FANOUT])>,
        ) {
            match &node.kind {
                Kind::Leaf { slots, .. } => out.push((base, slots)),
                Kind::Inner(children) => {
                    for (i, child) in children.iter().enumerate() {
                        if let Some(c) = child {
                            // SAFETY: children of a live node are alive as long as it is.
                            collect(unsafe { &*c.as_ptr() }, level - 1, base + i as u64 * span(level), out);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        if let Some(root) = self.root {
            // SAFETY: the root is alive while `&self` is borrowed (see `get`).
            collect(unsafe { &*root.as_ptr() }, self.height, 0, &mut out);
        }
        out
    }

    /// Calls `f` for every page, in order.
    pub fn for_each<'a>(&'a self, f: &mut impl FnMut(u64, &'a PageSlot)) {
        self.for_each_in(0, u64::MAX, f);
    }

    /// The first page with index in `from..hi`, with its index.
    pub fn next_page(&self, from: u64, hi: u64) -> Option<(u64, &PageSlot)> {
        let root = self.root?;
        if from >= hi || !self.fits(from) {
            return None;
        }
        // SAFETY: as in `for_each_in`.
        seek(unsafe { &*root.as_ptr() }, self.height, 0, from, hi)
    }

    /// Bytes held by this tree's nodes (not its blocks).
    pub fn node_bytes(&self) -> usize {
        let mut nodes = 0usize;
        if let Some(root) = self.root {
            // SAFETY: as in `for_each_in`.
            count_nodes(unsafe { &*root.as_ptr() }, &mut nodes);
        }
        nodes * std::mem::size_of::<Node>()
    }

    /// Frees every node and block of the tree.
    ///
    /// # Safety
    ///
    /// Nothing may reach the tree afterwards, and no node or block of it may be freed by
    /// anyone else (it must not share them with a live tree).
    pub unsafe fn free_all(self, record_size: usize) {
        if let Some(root) = self.root {
            // SAFETY: per the caller.
            unsafe { free_node(root, record_size) };
        }
    }
}

unsafe fn free_node(ptr: NonNull<Node>, record_size: usize) {
    // SAFETY: the caller owns the node exclusively (see `free_all`).
    let kind = unsafe { ptr.as_ref().kind };
    // SAFETY: as above; its contents were copied out.
    unsafe { free_one(ptr) };
    match kind {
        Kind::Inner(children) => {
            for child in children.into_iter().flatten() {
                // SAFETY: children of an exclusively owned tree are exclusively owned.
                unsafe { free_node(child, record_size) };
            }
        }
        Kind::Leaf { slots, .. } => {
            for slot in &slots {
                // SAFETY: as above.
                unsafe { free_page(slot, record_size) };
            }
        }
    }
}

fn count_nodes(node: &Node, count: &mut usize) {
    *count += 1;
    if let Kind::Inner(children) = &node.kind {
        for child in children.iter().flatten() {
            // SAFETY: children of a live node are alive.
            count_nodes(unsafe { child.as_ref() }, count);
        }
    }
}

fn span(level: u32) -> u64 {
    // Pages covered by one child of a node at `level` (1 = leaf).
    1u64.checked_shl(shift(level)).unwrap_or(0)
}

fn walk<'a>(node: &'a Node, level: u32, base: u64, lo: u64, hi: u64, f: &mut impl FnMut(u64, &'a PageSlot)) {
    match &node.kind {
        Kind::Leaf { slots, .. } => {
            let start = lo.saturating_sub(base).min(LEAF_FANOUT as u64) as usize;
            for (i, slot) in slots.iter().enumerate().skip(start) {
                let index = base + i as u64;
                if index >= hi {
                    return;
                }
                // Blocks are separate allocations: when the next page's block is not near
                // this one, the hardware prefetcher loses the stream at the page boundary, so
                // ask for the start of that block now. (Blocks allocated one after another are
                // usually adjacent, and then prefetching them only costs.)
                if let Some(next) = slots.get(i + 1) {
                    let addr = next.block_addr();
                    if addr != 0 && addr.abs_diff(slot.block_addr()) > 4096 {
                        super::table_data::prefetch_line(addr as *const u8);
                        super::table_data::prefetch_line((addr + 64) as *const u8);
                    }
                }
                if slot.exists() {
                    f(index, slot);
                }
            }
        }
        Kind::Inner(children) => {
            let child_span = span(level);
            for (i, child) in children.iter().enumerate() {
                let child_base = base + i as u64 * child_span;
                if child_base >= hi {
                    return;
                }
                if child_base.saturating_add(child_span) <= lo {
                    continue;
                }
                if let Some(c) = child {
                    // SAFETY: children of a live node are alive as long as it is.
                    walk(unsafe { &*c.as_ptr() }, level - 1, child_base, lo, hi, f);
                }
            }
        }
    }
}

fn seek(node: &Node, level: u32, base: u64, from: u64, hi: u64) -> Option<(u64, &PageSlot)> {
    match &node.kind {
        Kind::Leaf { slots, .. } => {
            let start = from.saturating_sub(base) as usize;
            for (i, slot) in slots.iter().enumerate().skip(start) {
                let index = base + i as u64;
                if index >= hi {
                    return None;
                }
                if slot.exists() {
                    return Some((index, slot));
                }
            }
            None
        }
        Kind::Inner(children) => {
            let child_span = span(level);
            for (i, child) in children.iter().enumerate() {
                let child_base = base + i as u64 * child_span;
                if child_base >= hi {
                    return None;
                }
                if child_base.saturating_add(child_span) <= from {
                    continue;
                }
                if let Some(c) = child {
                    // SAFETY: children of a live node are alive as long as it is.
                    let found =
                        seek(unsafe { &*c.as_ptr() }, level - 1, child_base, from.max(child_base), hi);
                    if found.is_some() {
                        return found;
                    }
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::page::Geometry;

    /// Pages at indices spread over every tree height, including those past the unrolled
    /// walks, are found by `get` and `leaf_entry`; indices near them are not.
    #[test]
    fn lookups_find_exactly_the_stored_pages_at_every_height() {
        let geom = Geometry::new(64);
        let mut tree = PageTree::default();
        let mut w = Writer::new(1);
        let mut stored: Vec<u64> = Vec::new();
        for index in
            [0u64, 5, 15, 16, 1000, 1 << 10, 1 << 16, (1 << 22) + 3, 1 << 28, 1 << 34, (1 << 40) + 7, 1 << 58]
        {
            {
                let mut page = tree.page_mut(index, &mut w);
                let slot = page.ensure_slot(0, &geom, &mut w);
                page.slot_bytes_mut(slot, geom.record_size, &mut w)[..8]
                    .copy_from_slice(&index.to_le_bytes());
                page.set_live(0, true);
            }
            stored.push(index);
            for &s in &stored {
                let page =
                    tree.get(s).unwrap_or_else(|| panic!("page {s} missing at height {}", tree.height));
                assert_eq!(page.get(0, 64).expect("live")[..8], s.to_le_bytes());
                assert!(tree.leaf_entry(s).is_some_and(PageSlot::exists));
            }
            for probe in [1u64, 17, 999, (1 << 16) + 1, 1 << 27, 1 << 50, u64::MAX] {
                if !stored.contains(&probe) {
                    assert!(tree.get(probe).is_none(), "page {probe} found at height {}", tree.height);
                    assert!(tree.leaf_entry(probe).is_none_or(|e| !e.exists()));
                }
            }
        }
        assert!(tree.height > 5, "the general walk is exercised (height {})", tree.height);
        // The leaves list every stored page once, in order, at its index.
        let listed: Vec<u64> = tree
            .leaves()
            .into_iter()
            .flat_map(|(first, slots)| (first..).zip(slots.iter()))
            .filter(|(_, page)| page.exists())
            .map(|(index, page)| {
                assert_eq!(page.get(0, 64).expect("live")[..8], index.to_le_bytes());
                index
            })
            .collect();
        let mut sorted = stored.clone();
        sorted.sort_unstable();
        assert_eq!(listed, sorted);
        // Everything was made by this one writer, which changes its own nodes in place.
        assert!(w.garbage.is_empty());
        // SAFETY: the tree was never shared.
        unsafe { tree.free_all(geom.record_size) };
    }
}
