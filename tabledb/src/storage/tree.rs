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

/// One leaf of a tree, as [`PageTree::leaves`] lists it.
#[derive(Clone, Copy)]
pub struct LeafView<'a> {
    /// The index of the leaf's first page.
    pub first_page: u64,
    /// Its page entries (some may describe pages that do not exist).
    pub slots: &'a [PageSlot; LEAF_FANOUT],
    node: NonNull<Node>,
}

impl LeafView<'_> {
    /// Asks the processor to fetch the leaf's page entries.
    pub fn prefetch_entries(&self) {
        prefetch_leaf_entries(self.node);
    }
}

// SAFETY: a view only reads a published leaf, like the shared reference it holds.
unsafe impl Send for LeafView<'_> {}
// SAFETY: as above.
unsafe impl Sync for LeafView<'_> {}

/// The blocks of the pages some drafts replaced (address and size, as [`DraftBuilder::set`]
/// returns them), `own.count_ones()` for each draft in order, in parts (one per task that
/// made drafts, each holding whole drafts' entries).
pub type ReplacedBlocks = Vec<Vec<(usize, usize)>>;

/// A copy of one leaf of a tree with some of its pages replaced by private copies, made
/// outside a commit (by parallel workers, for a whole-table update) and installed by one
/// with [`PageTree::put_drafts`]: one pointer swap per leaf instead of a put per page.
///
/// The draft owns its node and the blocks of the pages it replaced;
/// dropping it uninstalled frees them. Its other entries are copies of the entries it was
/// drafted from and own nothing.
pub struct LeafDraft {
    first_page: u64,
    /// The published leaf this draft replaces.
    base: NonNull<Node>,
    node: NonNull<Node>,
    /// Entries whose pages this draft replaced (and owns).
    own: u16,
    record_size: usize,
}

// SAFETY: a draft owns its node and blocks exclusively (nothing else reaches them until it is
// installed) and only reads the published leaf it points to.
unsafe impl Send for LeafDraft {}
// SAFETY: shared access to a draft only reads it.
unsafe impl Sync for LeafDraft {}

/// A [`LeafDraft`] being built, in its own node (which nothing else reaches yet). Frees the
/// private pages it holds if dropped unfinished (when the code computing them panics).
pub struct DraftBuilder<'a> {
    base: LeafView<'a>,
    /// The draft's node: a leaf whose entries start as those the draft was made from.
    node: NonNull<Node>,
    own: u16,
    record_size: usize,
}

impl<'a> DraftBuilder<'a> {
    /// A draft of `base` whose entries start as `slots`: the leaf's own, or those of an
    /// earlier draft of it (whose pages this draft does not own).
    pub fn new(base: LeafView<'a>, slots: &[PageSlot; LEAF_FANOUT], record_size: usize) -> DraftBuilder<'a> {
        let node = block::allocate_for::<Node>();
        // SAFETY: fresh room, aligned for a node and this builder's alone.
        unsafe { node.as_ptr().write(Node { tag: 0, kind: Kind::Leaf { fresh: 0, slots: *slots } }) };
        DraftBuilder { base, node, own: 0, record_size }
    }

    /// The draft's entries.
    fn slots(&mut self) -> &mut [PageSlot; LEAF_FANOUT] {
        // SAFETY: the node is this builder's own leaf (written in `new`), and `&mut self`
        // excludes every other access to it.
        match unsafe { &mut self.node.as_mut().kind } {
            Kind::Leaf { slots, .. } => slots,
            Kind::Inner(_) => unreachable!("a draft's node is a leaf"),
        }
    }

    /// The index of the leaf's first page.
    pub fn first_page(&self) -> u64 {
        self.base.first_page
    }

    /// Puts `page` at entry `i`, freeing the page it replaces if the draft owned that one.
    /// Otherwise returns the block of the page it replaces (a page of the leaf it was drafted
    /// from) as its address and size, or `(0, 0)` for a page without one.
    ///
    /// # Safety
    ///
    /// `page` must be a private page (its block allocated for it, used by nothing else),
    /// which the draft owns from now on.
    pub unsafe fn set(&mut self, i: usize, page: PageSlot) -> (usize, usize) {
        let bit = 1u16 << i;
        let replaced = std::mem::replace(&mut self.slots()[i], page);
        let was_own = self.own & bit != 0;
        self.own |= bit;
        if was_own {
            // SAFETY: the draft owned the page it replaces, which nothing else uses.
            unsafe { free_page(&replaced, self.record_size) };
            return (0, 0);
        }
        (replaced.block_addr(), replaced.block_bytes(self.record_size))
    }

    /// The draft.
    pub fn finish(self) -> LeafDraft {
        let this = std::mem::ManuallyDrop::new(self);
        LeafDraft {
            first_page: this.base.first_page,
            base: this.base.node,
            node: this.node,
            own: this.own,
            record_size: this.record_size,
        }
    }
}

impl Drop for DraftBuilder<'_> {
    fn drop(&mut self) {
        let (own, record_size) = (self.own, self.record_size);
        for (i, page) in self.slots().iter().enumerate() {
            if own & (1 << i) != 0 {
                // SAFETY: the draft owns the pages it put, which nothing else uses.
                unsafe { free_page(page, record_size) };
            }
        }
        // SAFETY: the node was taken for this builder and never handed on; `Node` has no
        // destructor.
        unsafe { free_one(self.node) };
    }
}

impl LeafDraft {
    /// The index of the leaf's first page.
    pub fn first_page(&self) -> u64 {
        self.first_page
    }

    /// The entries: the pages this draft replaced, and copies of the others.
    pub fn slots(&self) -> &[PageSlot; LEAF_FANOUT] {
        // SAFETY: the node is this draft's own leaf, alive until the draft is dropped or
        // installed (which consumes it).
        match unsafe { &self.node.as_ref().kind } {
            Kind::Leaf { slots, .. } => slots,
            Kind::Inner(_) => unreachable!("a draft's node is a leaf"),
        }
    }

    /// The page this draft put at `index` (of this leaf), if it replaced that page.
    pub fn page(&self, index: u64) -> Option<&PageSlot> {
        let i = index.checked_sub(self.first_page).filter(|&i| i < LEAF_FANOUT as u64)? as usize;
        (self.own & (1 << i) != 0).then(|| &self.slots()[i])
    }

    /// The entries whose pages this draft replaced: bit `i` for entry `i`.
    pub fn replaced_mask(&self) -> u16 {
        self.own
    }

    /// The pages this draft replaced, with their indices, in order.
    pub fn pages(&self) -> impl Iterator<Item = (u64, &PageSlot)> {
        let own = self.own;
        (self.first_page..)
            .zip(self.slots())
            .enumerate()
            .filter(move |(i, _)| own & (1 << i) != 0)
            .map(|(_, entry)| entry)
    }

    /// Takes over the pages of `earlier`, a draft of the same leaf this draft was started
    /// from: those this draft kept become its own, those it replaced again are freed.
    pub fn absorb(&mut self, mut earlier: LeafDraft) {
        debug_assert_eq!((self.first_page, self.base), (earlier.first_page, earlier.base));
        let again = earlier.own & self.own;
        self.own |= earlier.own;
        // `earlier` keeps only the pages to free; its node goes with it.
        earlier.own = again;
    }

    /// The pages this draft replaced (now owned by the caller), freeing its node.
    fn into_pages(self) -> Vec<(u64, PageSlot)> {
        let draft = std::mem::ManuallyDrop::new(self);
        let pages = draft.pages().map(|(index, page)| (index, *page)).collect();
        // SAFETY: the node is the draft's own and unpublished; the draft is not dropped.
        unsafe { free_one(draft.node) };
        pages
    }
}

impl Drop for LeafDraft {
    fn drop(&mut self) {
        for i in 0..LEAF_FANOUT {
            if self.own & (1 << i) != 0 {
                // SAFETY: the draft owns the pages it replaced and was never installed.
                unsafe { free_page(&self.slots()[i], self.record_size) };
            }
        }
        // SAFETY: the node is the draft's own and unpublished.
        unsafe { free_one(self.node) };
    }
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

    /// The leaves, in order: the page entries in groups of [`LEAF_FANOUT`], each with the
    /// index of its first page, found without reading the leaves themselves (some entries may
    /// describe pages that do not exist).
    pub fn leaves(&self) -> Vec<LeafView<'_>> {
        fn collect<'a>(node: NonNull<Node>, level: u32, base: u64, out: &mut Vec<LeafView<'a>>) {
            if level == 1 {
                // A leaf (the tree's height says so): its entries are not read here, only
                // located, so that collecting the leaves does not fetch every one of them.
                // SAFETY: the node is a live leaf while the tree is borrowed, and its slots
                // start at `LEAF_SLOTS_OFFSET` (computed from the same type).
                let slots = unsafe { &*node.as_ptr().cast::<u8>().add(LEAF_SLOTS_OFFSET).cast() };
                // SAFETY: as above.
                debug_assert!(matches!(unsafe { &node.as_ref().kind }, Kind::Leaf { .. }));
                out.push(LeafView { first_page: base, slots, node });
                return;
            }
            // SAFETY: nodes reachable from a live tree are alive while it is borrowed.
            match unsafe { &node.as_ref().kind } {
                Kind::Inner(children) => {
                    for (i, child) in children.iter().enumerate() {
                        if let Some(c) = child {
                            collect(*c, level - 1, base + i as u64 * span(level), out);
                        }
                    }
                }
                Kind::Leaf { .. } => unreachable!("only the lowest level holds leaves"),
            }
        }
        let mut out = Vec::new();
        if let Some(root) = self.root {
            collect(root, self.height, 0, &mut out);
        }
        out
    }

    /// Where the pointer to the leaf covering page `index` is kept: in its parent, made the
    /// writer's own (copied if shared) along with every node above it, or the root for a tree
    /// of one leaf. `None` when the tree does not cover the page.
    fn leaf_pointer_mut(&mut self, index: u64, w: &mut Writer) -> Option<&mut Option<NonNull<Node>>> {
        if !self.fits(index) {
            return None;
        }
        let mut at: &mut Option<NonNull<Node>> = &mut self.root;
        let mut level = self.height;
        while level > 1 {
            let ptr = at.as_mut()?;
            // SAFETY: `ptr` is a live inner node of this tree (the root, or a child reached
            // from a node the writer owns).
            unsafe { Self::own(ptr, w) };
            // SAFETY: the node now belongs to this writer's commit: unpublished, reachable only
            // through this tree, which `&mut self` borrows exclusively.
            match unsafe { &mut ptr.as_mut().kind } {
                Kind::Inner(children) => at = &mut children[child(index, level)],
                Kind::Leaf { .. } => unreachable!("nodes above level 1 are inner nodes"),
            }
            level -= 1;
        }
        Some(at)
    }

    /// Installs leaves drafted outside the commit, in index order: each replaces the leaf it
    /// was drafted from with one pointer swap, and that leaf is retired together with the
    /// pages the draft replaced. A draft whose leaf is no longer in the tree as it was (which
    /// the commit's checks rule out) has its pages put one by one instead.
    ///
    /// `replaced`, when given, lists the blocks of the pages the drafts replaced (see
    /// [`ReplacedBlocks`]): those of the drafts installed are retired from the list in one
    /// piece, instead of being read again from the retired leaves when they are freed.
    pub fn put_drafts(&mut self, drafts: Vec<LeafDraft>, replaced: Option<ReplacedBlocks>, w: &mut Writer) {
        /// Drafts ahead whose first line (which gets the commit's tag) is fetched.
        const AHEAD: usize = 8;
        if drafts.is_empty() {
            return;
        }
        w.garbage.reserve(drafts.len() + 1);
        let listed: usize = replaced.iter().flatten().map(Vec::len).sum();
        debug_assert!(
            replaced.is_none() || listed == drafts.iter().map(|d| d.own.count_ones() as usize).sum::<usize>()
        );
        let mut retired_blocks = Vec::with_capacity(listed);
        // Where the next draft's part of the list starts: which list, and where in it.
        let (mut list, mut at) = (0, 0);
        let mut drafts = drafts.into_iter();
        while let Some(draft) = drafts.next() {
            if let Some(ahead) = drafts.as_slice().get(AHEAD) {
                super::table_data::prefetch_line(ahead.node.as_ptr().cast::<u8>());
            }
            // The leaf is still the one the draft copied when the pointer to it is the same:
            // the draft's transaction keeps its start snapshot, so that leaf (published, never
            // changed again) is alive and its address cannot have been reused.
            let swapped = match self.leaf_pointer_mut(draft.first_page, w) {
                Some(at) if *at == Some(draft.base) => {
                    *at = Some(draft.node);
                    true
                }
                _ => false,
            };
            // This draft's part of the list (in the next list when one is used up).
            let mine = replaced.as_ref().map(|lists| {
                while at == lists[list].len() {
                    (list, at) = (list + 1, 0);
                }
                let n = draft.own.count_ones() as usize;
                at += n;
                &lists[list][at - n..at]
            });
            if swapped {
                match mine {
                    Some(mine) => {
                        retired_blocks.extend_from_slice(mine);
                        w.retire(Garbage::Node(draft.base));
                    }
                    None => w.retire(Garbage::Leaf {
                        node: draft.base,
                        pages: draft.own,
                        record_size: draft.record_size,
                    }),
                }
                let draft = std::mem::ManuallyDrop::new(draft);
                // SAFETY: the draft's node is its own and unpublished; from now on the tree
                // owns it and the draft's private blocks, which this commit may change in
                // place (they are fresh). The draft is not dropped, so it frees neither.
                unsafe {
                    let node = &mut *draft.node.as_ptr();
                    node.tag = w.tag;
                    if let Kind::Leaf { fresh, .. } = &mut node.kind {
                        *fresh = draft.own;
                    }
                }
            } else {
                // The pages are put one by one, which retires the pages they replace as the
                // tree holds them now: the draft's part of the list is left out.
                let record_size = draft.record_size;
                self.put_pages(draft.into_pages(), record_size, w);
            }
        }
        if !retired_blocks.is_empty() {
            w.retire(Garbage::Blocks(retired_blocks));
        }
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

/// The blocks (with their sizes) of the pages of leaf `node` marked in `pages`, read before
/// the node is freed.
///
/// # Safety
///
/// `node` must be a live leaf.
pub(crate) unsafe fn leaf_blocks<'a>(
    node: NonNull<Node>,
    pages: u16,
    record_size: usize,
) -> impl Iterator<Item = (NonNull<u8>, usize)> + 'a {
    // SAFETY: per the caller; the caller frees the node only after the iterator is done.
    let slots: &'a [PageSlot; LEAF_FANOUT] = match unsafe { &(*node.as_ptr()).kind } {
        Kind::Leaf { slots, .. } => slots,
        Kind::Inner(_) => unreachable!("retired with its pages only as a leaf"),
    };
    (0..LEAF_FANOUT).filter(move |i| pages & (1 << i) != 0).filter_map(move |i| {
        let block = NonNull::new(slots[i].block_addr() as *mut u8)?;
        Some((block, slots[i].block_bytes(record_size)))
    })
}

/// Asks the processor to fetch the entries of leaf `node` (a hint: the node need not be
/// alive).
pub(crate) fn prefetch_leaf_entries(node: NonNull<Node>) {
    let start = node.as_ptr().cast::<u8>().wrapping_add(LEAF_SLOTS_OFFSET);
    for line in (0..LEAF_FANOUT * std::mem::size_of::<PageSlot>()).step_by(64) {
        super::table_data::prefetch_line(start.wrapping_add(line));
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
            .flat_map(|leaf| (leaf.first_page..).zip(leaf.slots.iter()))
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
    /// The first 8 bytes of the one record of page `index`.
    fn value(tree: &PageTree, index: u64) -> u64 {
        let bytes = tree.get(index).expect("page exists").get(0, 64).expect("live");
        u64::from_le_bytes(bytes[..8].try_into().unwrap())
    }

    /// A private copy of page `index` whose record holds `value`.
    fn changed_copy(tree: &PageTree, index: u64, value: u64) -> PageSlot {
        let page = tree.get(index).expect("page exists");
        let mut data = page.data(64).to_vec();
        data[..8].copy_from_slice(&value.to_le_bytes());
        let block = block::allocate_uncounted(data.len());
        block::count_allocated(1, data.len());
        // SAFETY: a fresh block of the page's size, used for this copy only.
        unsafe { page.private_copy_into(block, &data, 64) }
    }

    /// Drafts swap in the leaves they copied, retiring each with the pages it replaced (read
    /// from the old leaf, or from the list the drafts made); a draft whose leaf was copied
    /// again since has its pages put one by one, keeping the other change to that leaf, and
    /// its part of the list is left out.
    #[test]
    fn drafts_replace_their_leaves_or_fall_back_to_page_puts() {
        for listed in [false, true] {
            drafts_replace_their_leaves(listed);
        }
    }

    fn drafts_replace_their_leaves(listed: bool) {
        let geom = Geometry::new(64);
        let mut tree = PageTree::default();
        let mut w1 = Writer::new(1);
        for index in 0..40u64 {
            let mut page = tree.page_mut(index, &mut w1);
            let slot = page.ensure_slot(0, &geom, &mut w1);
            page.slot_bytes_mut(slot, 64, &mut w1)[..8].copy_from_slice(&index.to_le_bytes());
            page.set_live(0, true);
        }
        assert!(w1.garbage.is_empty());
        let published = tree;

        // Drafts of leaves 0 and 1 made from the published tree.
        let leaves = published.leaves();
        let mut list = Vec::new();
        let mut d0 = DraftBuilder::new(leaves[0], leaves[0].slots, 64);
        // SAFETY: private copies made for the drafts, used by nothing else.
        unsafe {
            list.push(d0.set(3, changed_copy(&published, 3, 1003)));
            if !listed {
                // A page set twice: the draft frees the copy it replaces.
                assert_eq!(d0.set(7, changed_copy(&published, 7, 1)).1, 64);
            }
            let again = d0.set(7, changed_copy(&published, 7, 1007));
            if listed {
                list.push(again);
            } else {
                assert_eq!(again, (0, 0), "the draft's own copy is freed, not handed back");
            }
        }
        let mut d1 = DraftBuilder::new(leaves[1], leaves[1].slots, 64);
        let old_20 = published.get(20).expect("page exists").block_addr();
        // SAFETY: as above.
        let last = unsafe { d1.set(4, changed_copy(&published, 20, 1020)) };
        assert_eq!(last, (old_20, 64));
        let drafts = vec![d0.finish(), d1.finish()];
        assert_eq!(drafts[0].replaced_mask(), 1 << 3 | 1 << 7);
        assert_eq!(drafts[1].page(20).map(|p| p.len()), Some(1));
        assert!(drafts[1].page(21).is_none());

        // Another commit copies leaf 0 (changing page 5) before the drafts are installed.
        let mut next = published;
        let mut w2 = Writer::new(2);
        {
            let mut page = next.page_mut(5, &mut w2);
            page.slot_bytes_mut(0, 64, &mut w2)[..8].copy_from_slice(&505u64.to_le_bytes());
        }
        // The list in two parts, as two tasks would make it.
        next.put_drafts(drafts, listed.then(|| vec![list, vec![last]]), &mut w2);
        for index in 0..40u64 {
            let want = match index {
                3 => 1003,
                5 => 505,
                7 => 1007,
                20 => 1020,
                i => i,
            };
            assert_eq!(value(&next, index), want, "page {index} of the new tree");
            assert_eq!(value(&published, index), index, "page {index} of the published tree");
        }
        // Leaf 1 was swapped whole: retired with page 20's old block.
        let retired_leaf = if listed {
            let node = w2.garbage.iter().any(|g| matches!(g, Garbage::Node(node) if *node == leaves[1].node));
            let blocks: Vec<&Vec<(usize, usize)>> = w2
                .garbage
                .iter()
                .filter_map(|g| match g {
                    Garbage::Blocks(b) => Some(b),
                    _ => None,
                })
                .collect();
            // Only the swapped draft's part: leaf 0's pages were retired by the page puts.
            node && blocks == [&vec![(old_20, 64)]]
        } else {
            w2.garbage.iter().any(
                |g| matches!(g, Garbage::Leaf { node, pages, .. } if *node == leaves[1].node && *pages == 1 << 4),
            )
        };
        assert!(retired_leaf, "leaf 1 is retired with the page it replaced (listed: {listed})");
        drop(leaves);
        // SAFETY: the published tree's replaced nodes and blocks are in the garbage, its
        // others are shared with the new tree, which nothing else uses: free each once.
        unsafe {
            for g in std::mem::take(&mut w2.garbage) {
                g.free();
            }
            next.free_all(64);
        }
    }
}
