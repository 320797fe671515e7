//! Reclamation of pages and tree nodes that no snapshot can reach any more.
//!
//! Snapshots share pages and nodes without reference counts. A commit that publishes snapshot
//! `c` replaces some pages and nodes; they remain reachable from snapshots older than `c`, so
//! they are *retired at `c`* and freed once every snapshot with a sequence number below `c`
//! has been dropped. The reclaimer tracks which snapshots are alive and what was retired when.
//!
//! Within one commit, the committer (the only writer, under the commit lock) tags the nodes it
//! creates with the new sequence number and may change them in place; nothing it creates is
//! visible to anyone until the snapshot is published.

use std::collections::{BTreeMap, VecDeque};
use std::ptr::NonNull;
use std::sync::Mutex;

use super::block;
use super::tree::{Node, PageTree};

/// Something to free once no snapshot can reach it.
pub(crate) enum Garbage {
    /// A tree node.
    Node(NonNull<Node>),
    /// A record block of this many bytes.
    Block(NonNull<u8>, usize),
    /// A whole tree (every node and block reachable from its root), with its record size.
    Tree(PageTree, usize),
    /// A leaf node and the blocks of the pages in it marked in `pages` (bit `i`: entry `i`),
    /// which a commit replaced with the whole leaf.
    Leaf { node: NonNull<Node>, pages: u16, record_size: usize },
    /// Record blocks by address and size (0 for none), in page order: the pages of leaves a
    /// commit replaced whole, listed when they were copied.
    Blocks(Vec<(usize, usize)>),
}

// SAFETY: garbage is handed between threads under a mutex and only freed; what freeing reads
// (the entries of a retired leaf) was published, so it is immutable, and nothing else reaches it.
unsafe impl Send for Garbage {}

impl Garbage {
    /// # Safety
    ///
    /// Nothing may reach the garbage any more, and it must not be freed twice.
    pub(crate) unsafe fn free(self) {
        match self {
            // SAFETY: per the caller.
            Garbage::Node(node) => unsafe { super::tree::free_one(node) },
            // SAFETY: per the caller; blocks are allocated by `block::allocate(size)`.
            Garbage::Block(ptr, size) => unsafe { block::free(ptr, size) },
            // SAFETY: per the caller.
            Garbage::Tree(tree, record_size) => unsafe { tree.free_all(record_size) },
            Garbage::Leaf { node, pages, record_size } => {
                // SAFETY: per the caller.
                for (block, size) in unsafe { super::tree::leaf_blocks(node, pages, record_size) } {
                    // SAFETY: per the caller; each is the block of a page of that leaf.
                    unsafe { block::free(block, size) };
                }
                // SAFETY: per the caller.
                unsafe { super::tree::free_one(node) };
            }
            Garbage::Blocks(blocks) => {
                for (addr, size) in blocks {
                    if let Some(block) = NonNull::new(addr as *mut u8) {
                        // SAFETY: per the caller; a block of that size from `block::allocate`.
                        unsafe { block::free(block, size) };
                    }
                }
            }
        }
    }
}

/// The state of one commit being built: its tag (the sequence number it will publish) and
/// what it replaced.
pub(crate) struct Writer {
    pub(crate) tag: u64,
    pub(crate) garbage: Vec<Garbage>,
}

impl Writer {
    pub fn new(tag: u64) -> Writer {
        Writer { tag, garbage: Vec::new() }
    }

    pub fn retire(&mut self, g: Garbage) {
        self.garbage.push(g);
    }
}

#[derive(Default)]
struct State {
    /// Sequence numbers of snapshots that are alive.
    live: BTreeMap<u64, ()>,
    /// Garbage by the sequence number it was retired at, oldest first.
    retired: VecDeque<(u64, Vec<Garbage>)>,
}

/// Tracks live snapshots and frees retired garbage when it becomes unreachable.
#[derive(Default)]
pub(crate) struct Reclaimer {
    state: Mutex<State>,
}

impl Reclaimer {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update below is a single insert or removal, consistent even after a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers snapshot `seq` as alive, with what its commit retired. Called before the
    /// snapshot is published.
    pub fn publish(&self, seq: u64, garbage: Vec<Garbage>) {
        let mut state = self.state();
        state.live.insert(seq, ());
        if !garbage.is_empty() {
            state.retired.push_back((seq, garbage));
        }
    }

    /// Adds garbage retired at `seq` without a new snapshot (when a database closes).
    pub fn retire(&self, seq: u64, garbage: Vec<Garbage>) {
        if !garbage.is_empty() {
            self.state().retired.push_back((seq, garbage));
        }
        self.collect();
    }

    /// Snapshot `seq` was dropped: frees whatever no remaining snapshot can reach.
    pub fn release(&self, seq: u64) {
        self.state().live.remove(&seq);
        self.collect();
    }

    fn collect(&self) {
        let mut free = Vec::new();
        {
            let mut state = self.state();
            let oldest = state.live.keys().next().copied().unwrap_or(u64::MAX);
            while state.retired.front().is_some_and(|(at, _)| *at <= oldest) {
                free.push(state.retired.pop_front().expect("checked").1);
            }
        }
        for batch in free {
            // SAFETY: everything in `batch` was retired at `at <= oldest`: every snapshot that
            // could reach it (those older than `at`) is gone, and it is in the retired queue
            // exactly once.
            unsafe { free_batch(batch) };
        }
    }
}

/// Garbage of one commit from which blocks are freed in bulk.
const BULK_FREE_MIN: usize = 64;

/// Frees a batch of garbage. From [`BULK_FREE_MIN`] items on, runs of blocks of one size go to
/// the shared block cache together and the blocks are counted once for the batch.
///
/// # Safety
///
/// As for [`Garbage::free`], for every item.
unsafe fn free_batch(batch: Vec<Garbage>) {
    if batch.len() < BULK_FREE_MIN {
        // A small commit's garbage goes to this thread's own block cache, one by one.
        for g in batch {
            // SAFETY: per the caller.
            unsafe { g.free() };
        }
        return;
    }
    /// Blocks to free, gathered by size, each size in the order freed (a block of another
    /// size in between, such as a smaller page's, does not split a run); counted once for the
    /// batch.
    #[derive(Default)]
    struct Runs {
        /// The run pushed to last, of blocks of `size` bytes.
        run: Vec<usize>,
        size: usize,
        /// The runs of other sizes, to resume when a block of their size comes.
        parked: Vec<(usize, Vec<usize>)>,
        blocks: usize,
        bytes: usize,
    }
    impl Runs {
        /// # Safety
        ///
        /// As for [`free_in_order`], for `block`.
        #[inline]
        unsafe fn push(&mut self, block: NonNull<u8>, size: usize) {
            if size != self.size {
                let resumed = match self.parked.iter().position(|r| r.0 == size) {
                    Some(at) => self.parked.swap_remove(at).1,
                    None => Vec::new(),
                };
                let current = std::mem::replace(&mut self.run, resumed);
                if !current.is_empty() {
                    self.parked.push((self.size, current));
                }
                self.size = size;
            }
            self.run.push(block.as_ptr() as usize);
            self.blocks += 1;
            self.bytes += size;
        }

        /// # Safety
        ///
        /// As for [`free_in_order`], for every block pushed.
        unsafe fn flush(&mut self) {
            let current = (self.size, std::mem::take(&mut self.run));
            for (size, mut run) in std::iter::once(current).chain(self.parked.drain(..)) {
                if !run.is_empty() {
                    // SAFETY: per the caller.
                    unsafe { free_in_order(&mut run, size) };
                }
            }
        }
    }
    let mut runs = Runs::default();
    // Tree nodes, freed together at the end.
    let mut nodes: Vec<usize> = Vec::new();
    /// Items ahead whose leaf is fetched: freeing a leaf's pages reads its entries.
    const AHEAD: usize = 16;
    let mut items = batch.into_iter();
    while let Some(g) = items.next() {
        if let Some(Garbage::Leaf { node, .. }) = items.as_slice().get(AHEAD) {
            super::tree::prefetch_leaf_entries(*node);
        }
        match g {
            Garbage::Block(ptr, size) => {
                // SAFETY: per the caller, the block is unreachable, of this size from
                // `block::allocate`, freed once, and counted below.
                unsafe { runs.push(ptr, size) }
            }
            Garbage::Leaf { node, pages, record_size } => {
                // SAFETY: per the caller, the leaf is unreachable and freed once, and so are
                // its blocks (as above), which are read before it is freed.
                unsafe {
                    for (block, size) in super::tree::leaf_blocks(node, pages, record_size) {
                        runs.push(block, size);
                    }
                }
                nodes.push(node.as_ptr() as usize);
            }
            Garbage::Node(node) => nodes.push(node.as_ptr() as usize),
            Garbage::Blocks(blocks) => {
                for (addr, size) in blocks {
                    if let Some(block) = NonNull::new(addr as *mut u8) {
                        // SAFETY: per the caller, as for `Garbage::Block`.
                        unsafe { runs.push(block, size) }
                    }
                }
            }
            // SAFETY: per the caller.
            other => unsafe { other.free() },
        }
    }
    // SAFETY: as above.
    unsafe { runs.flush() };
    block::count_freed(runs.blocks, runs.bytes);
    // SAFETY: per the caller, every node is unreachable, freed once, and was made by
    // `block::allocate_for::<Node>` (as every tree node is).
    unsafe { block::free_many_for::<Node>(&nodes) };
}

/// Frees blocks into the shared cache so that it hands them out again in the order they were
/// freed. The cache is a stack, and a bulk copy (such as a parallel update of a whole table)
/// writes pages in page order into the blocks it takes, while the pages it replaces are freed
/// in page order too: so the new version of the table lies in memory in the same order as the
/// old one (in page order, for a table that was filled in order), as a scan or the next bulk
/// copy reads it fastest. Pushed in the order freed, each version would lie in the reverse
/// order of the one before, and every other bulk copy would run against the hardware
/// prefetcher at about half speed.
///
/// # Safety
///
/// As for [`block::free_many_uncounted`], for every block.
unsafe fn free_in_order(blocks: &mut [usize], size: usize) {
    blocks.reverse();
    // SAFETY: per the caller.
    unsafe { block::free_many_uncounted(blocks, size) };
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        let state = std::mem::take(&mut *self.state());
        for (_, batch) in state.retired {
            for g in batch {
                // SAFETY: the reclaimer is dropped with the last snapshot, so nothing can reach
                // anything retired.
                unsafe { g.free() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_freed_in_bulk_come_back_in_the_order_they_were_freed() {
        let n = 3 * BULK_FREE_MIN;
        for descending in [false, true] {
            // A size no other test (or round) uses, so that this thread's stash and the shared
            // cache hold no other blocks of it.
            let size = if descending { 64 * 17 } else { 64 * 19 };
            let mut blocks: Vec<NonNull<u8>> = (0..n).map(|_| block::allocate(size)).collect();
            if descending {
                // As the pages of a table laid out backwards would be freed.
                blocks.sort_unstable_by_key(|b| std::cmp::Reverse(b.as_ptr() as usize));
            } else {
                blocks.sort_unstable_by_key(|b| b.as_ptr() as usize);
            }
            let freed: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
            let mut batch: Vec<Garbage> = blocks.into_iter().map(|b| Garbage::Block(b, size)).collect();
            // A block of another size in the middle (as a smaller page's) does not split the
            // run.
            let other = 64 * 23;
            batch.insert(n / 3, Garbage::Block(block::allocate(other), other));
            // SAFETY: the blocks were allocated above with this size, nothing uses them, and
            // they are freed once.
            unsafe { free_batch(batch) };
            let (one_by_one, at_once) = freed.split_at(n / 2);
            let again: Vec<usize> =
                (0..one_by_one.len()).map(|_| block::allocate(size).as_ptr() as usize).collect();
            assert_eq!(again, one_by_one, "taken one by one, freed in {} order", order(descending));
            let mut many = Vec::new();
            block::allocate_many_uncounted(size, at_once.len(), &mut many);
            block::count_allocated(many.len(), many.len() * size);
            assert_eq!(many, at_once, "taken at once, freed in {} order", order(descending));
            for addr in again.into_iter().chain(many) {
                // SAFETY: allocated just above with this size, freed once.
                unsafe { block::free(NonNull::new(addr as *mut u8).unwrap(), size) };
            }
            let other = block::allocate(64 * 23);
            // SAFETY: as above.
            unsafe { block::free(other, 64 * 23) };
        }
    }

    fn order(descending: bool) -> &'static str {
        if descending { "descending" } else { "ascending" }
    }
}
