//! The persistent page tree: a radix tree from page index to page, shared between snapshots
//! and updated by path copying.
//!
//! Each node has [`FANOUT`] children; the tree grows a level on top when a page index does
//! not fit. Changing one page copies the nodes on its path (those still shared), never the
//! rest of the tree, so a commit that touches `k` pages copies at most `k` pages plus `k`
//! paths of nodes.

use std::sync::Arc;

use super::page::PageRef;

const BITS: u32 = 4;
/// Children per node.
pub const FANOUT: usize = 1 << BITS;
const MASK: u64 = FANOUT as u64 - 1;

#[derive(Clone)]
enum Node {
    Inner([Option<Arc<Node>>; FANOUT]),
    Leaf([Option<PageRef>; FANOUT]),
}

impl Node {
    fn empty_inner() -> Node {
        Node::Inner(Default::default())
    }

    fn empty_leaf() -> Node {
        Node::Leaf(Default::default())
    }
}

/// Pages of one table by page index.
#[derive(Clone, Default)]
pub struct PageTree {
    root: Option<Arc<Node>>,
    /// Levels below and including the root; page indices below `FANOUT^height` fit.
    height: u32,
}

impl std::fmt::Debug for PageTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageTree").field("height", &self.height).finish_non_exhaustive()
    }
}

impl PageTree {
    fn fits(&self, page: u64) -> bool {
        let bits = BITS * self.height;
        bits >= 64 || page >> bits == 0
    }

    /// The page at `index`.
    #[inline]
    pub fn get(&self, index: u64) -> Option<&PageRef> {
        if !self.fits(index) {
            return None;
        }
        let mut node = self.root.as_deref()?;
        let mut level = self.height;
        loop {
            level -= 1;
            let slot = ((index >> (BITS * level)) & MASK) as usize;
            match node {
                Node::Inner(children) => node = children[slot].as_deref()?,
                Node::Leaf(pages) => return pages[slot].as_ref(),
            }
        }
    }

    /// The slot of page `index`, after making every node on its path unique (copying shared
    /// ones) and growing the tree if needed.
    pub fn slot_mut(&mut self, index: u64) -> &mut Option<PageRef> {
        if self.root.is_none() {
            self.root = Some(Arc::new(Node::empty_leaf()));
            self.height = 1;
        }
        while !self.fits(index) {
            let mut top = Node::empty_inner();
            if let Node::Inner(children) = &mut top {
                children[0] = self.root.take();
            }
            self.root = Some(Arc::new(top));
            self.height += 1;
        }
        let mut node = Arc::make_mut(self.root.as_mut().expect("root exists"));
        let mut level = self.height;
        loop {
            level -= 1;
            let slot = ((index >> (BITS * level)) & MASK) as usize;
            match node {
                Node::Inner(children) => {
                    let child = children[slot].get_or_insert_with(|| {
                        Arc::new(if level == 1 { Node::empty_leaf() } else { Node::empty_inner() })
                    });
                    node = Arc::make_mut(child);
                }
                Node::Leaf(pages) => return &mut pages[slot],
            }
        }
    }

    /// Calls `f` for every page with index in `lo..hi`, in order.
    pub fn for_each_in<'a>(&'a self, lo: u64, hi: u64, f: &mut impl FnMut(u64, &'a PageRef)) {
        if let Some(root) = &self.root
            && lo < hi
        {
            walk(root, self.height, 0, lo, hi, f);
        }
    }

    /// Calls `f` for every page, in order.
    pub fn for_each<'a>(&'a self, f: &mut impl FnMut(u64, &'a PageRef)) {
        self.for_each_in(0, u64::MAX, f);
    }

    /// The first page with index at least `from` (and below `hi`), with its index.
    pub fn next_page(&self, from: u64, hi: u64) -> Option<(u64, &PageRef)> {
        let root = self.root.as_deref()?;
        if from >= hi || !self.fits(from) {
            return None;
        }
        seek(root, self.height, 0, from, hi)
    }

    /// Bytes held by the nodes of this tree (not the pages), counting shared nodes fully.
    pub fn node_bytes(&self) -> usize {
        fn count(node: &Node) -> usize {
            // Node plus the two reference counts of its Arc allocation.
            let own = std::mem::size_of::<Node>() + 2 * std::mem::size_of::<usize>();
            match node {
                Node::Inner(children) => own + children.iter().flatten().map(|c| count(c)).sum::<usize>(),
                Node::Leaf(_) => own,
            }
        }
        self.root.as_deref().map_or(0, count)
    }
}

fn span(level: u32) -> u64 {
    // Pages covered by one child of a node at `level` (1 = leaf).
    1u64.checked_shl(BITS * (level - 1)).unwrap_or(0)
}

fn walk<'a>(node: &'a Node, level: u32, base: u64, lo: u64, hi: u64, f: &mut impl FnMut(u64, &'a PageRef)) {
    let child_span = span(level);
    match node {
        Node::Leaf(pages) => {
            for (i, page) in pages.iter().enumerate() {
                let index = base + i as u64;
                if index >= hi {
                    return;
                }
                if index >= lo
                    && let Some(p) = page
                {
                    f(index, p);
                }
            }
        }
        Node::Inner(children) => {
            for (i, child) in children.iter().enumerate() {
                let child_base = base + i as u64 * child_span;
                if child_base >= hi {
                    return;
                }
                let child_end = child_base.saturating_add(child_span);
                if child_end <= lo {
                    continue;
                }
                if let Some(c) = child {
                    walk(c, level - 1, child_base, lo, hi, f);
                }
            }
        }
    }
}

fn seek(node: &Node, level: u32, base: u64, from: u64, hi: u64) -> Option<(u64, &PageRef)> {
    let child_span = span(level);
    match node {
        Node::Leaf(pages) => {
            let start = from.saturating_sub(base) as usize;
            for (i, page) in pages.iter().enumerate().skip(start) {
                let index = base + i as u64;
                if index >= hi {
                    return None;
                }
                if let Some(p) = page {
                    return Some((index, p));
                }
            }
            None
        }
        Node::Inner(children) => {
            for (i, child) in children.iter().enumerate() {
                let child_base = base + i as u64 * child_span;
                if child_base >= hi {
                    return None;
                }
                if child_base.saturating_add(child_span) <= from {
                    continue;
                }
                if let Some(c) = child
                    && let Some(found) = seek(c, level - 1, child_base, from.max(child_base), hi)
                {
                    return Some(found);
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

    fn page() -> PageRef {
        PageRef::new(&Geometry::new(8), 1, false)
    }

    #[test]
    fn set_get_and_grow() {
        let mut t = PageTree::default();
        for i in [0u64, 5, 16, 300, 70_000] {
            *t.slot_mut(i) = Some(page());
        }
        for i in [0u64, 5, 16, 300, 70_000] {
            assert!(t.get(i).is_some(), "{i}");
        }
        assert!(t.get(1).is_none());
        assert!(t.get(u64::MAX).is_none());
        let mut seen = Vec::new();
        t.for_each(&mut |i, _| seen.push(i));
        assert_eq!(seen, vec![0, 5, 16, 300, 70_000]);
        let mut seen = Vec::new();
        t.for_each_in(6, 301, &mut |i, _| seen.push(i));
        assert_eq!(seen, vec![16, 300]);
        assert_eq!(t.next_page(6, u64::MAX).map(|(i, _)| i), Some(16));
        assert_eq!(t.next_page(301, u64::MAX).map(|(i, _)| i), Some(70_000));
        assert_eq!(t.next_page(70_001, u64::MAX).map(|(i, _)| i), None);
    }

    #[test]
    fn path_copying_leaves_the_old_tree_unchanged() {
        let mut a = PageTree::default();
        for i in 0..100 {
            *a.slot_mut(i) = Some(page());
        }
        let b = a.clone();
        *a.slot_mut(42) = None;
        assert!(a.get(42).is_none());
        assert!(b.get(42).is_some());
        assert!(a.get(41).is_some());
    }
}
