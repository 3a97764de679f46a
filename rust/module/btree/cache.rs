// SPDX-License-Identifier: GPL-2.0

//! The btree node cache: nodes keyed by their pointer, found without a read when
//! present, bounded by the `btree_cache_max` module parameter and evicting the least
//! recently used node that is clean, unlocked and not in use.
//!
//! Each node carries IO lock bits in an `unsigned long`, as upstream's
//! `BTREE_NODE_read_in_flight` / `write_in_flight`: whoever finds a read in flight
//! sleeps in `wait_on_bit` until the read's work item clears the bit.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::{Arc, Mutex};

use crate::format::bkey::Bkey;
use crate::format::bpos::Bpos;
use crate::format::btree::ptr::ExtentPtr;
use crate::shim;

/// IO lock bit: a read of the node is in flight.
pub(crate) const READ_IN_FLIGHT: u32 = 0;
/// IO lock bit: a write of the node is in flight.
pub(crate) const WRITE_IN_FLIGHT: u32 = 1;

/// What identifies a node as read: its first replica, its seq (0 for v1 pointers)
/// and the sectors its pointer says are written. A node a commit appended to is
/// named by a pointer with more sectors written: a new entry, read afresh, while
/// walks still holding the old pointer go on reading the old one, which stays
/// valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NodeId {
    pub(crate) dev: u32,
    pub(crate) offset: u64,
    pub(crate) seq: u64,
    pub(crate) written: u16,
}

/// A key of a node after sort and merge: its header and where its value is in the
/// node's buffer.
#[derive(Clone, Copy)]
pub(crate) struct KeyRef {
    pub(crate) k: Bkey,
    pub(crate) off: u32,
    pub(crate) len: u32,
}

/// Why one replica could not be used.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ReplicaError {
    /// The device is not part of the mounted set.
    NoDevice,
    /// The block layer failed the read (errno).
    Io(i32),
    /// The bytes read are not a valid node.
    Node(crate::format::btree::read::NodeError),
}

impl core::fmt::Display for ReplicaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReplicaError::NoDevice => f.write_str("device not present"),
            ReplicaError::Io(e) => write!(f, "IO error {}", e),
            ReplicaError::Node(e) => write!(f, "{}", e),
        }
    }
}

/// The result of a node read.
#[derive(Default)]
pub(crate) struct NodeData {
    /// The sectors read (the node's written part).
    pub(crate) buf: KVVec<u8>,
    /// The node's keys, sorted and merged, whiteouts and keys outside it dropped.
    pub(crate) keys: KVec<KeyRef>,
    pub(crate) min_key: Bpos,
    pub(crate) max_key: Bpos,
    /// Every replica tried that failed, in order.
    pub(crate) failures: KVec<(ExtentPtr, ReplicaError)>,
    /// The read failed on every replica: `keys` is empty.
    pub(crate) failed: bool,
    /// No replica passed its checksum: the keys come from a copy that failed it.
    pub(crate) salvaged: bool,
    /// Keys the validating merge dropped.
    pub(crate) dropped_keys: u32,
}

impl NodeData {
    /// The value of a key.
    pub(crate) fn val(&self, k: &KeyRef) -> &[u8] {
        let (off, len) = (k.off as usize, k.len as usize);
        self.buf.get(off..off.saturating_add(len)).unwrap_or(&[])
    }
}

/// A cached btree node.
pub(crate) struct Node {
    /// IO lock bits (`READ_IN_FLIGHT`, `WRITE_IN_FLIGHT`), an `unsigned long` for
    /// `wait_on_bit`.
    flags: AtomicUsize,
    /// Last use, in cache ticks (LRU order).
    lru: AtomicU64,
    /// Users holding a [`NodeRef`].
    pins: AtomicU32,
    /// Written once by the reader while `READ_IN_FLIGHT` is set.
    data: UnsafeCell<NodeData>,
}

// SAFETY: `data` is written only by the owner of the read while READ_IN_FLIGHT is
// set and read only after the bit is seen clear (with acquire ordering); the other
// fields are atomics or immutable.
unsafe impl Sync for Node {}
// SAFETY: every field can move between threads (KVec, atomics, plain data).
unsafe impl Send for Node {}

impl Node {
    /// A node whose read is about to start: `READ_IN_FLIGHT` set.
    pub(crate) fn new_reading() -> Result<Arc<Node>> {
        Ok(Arc::new(
            Node {
                flags: AtomicUsize::new(1 << READ_IN_FLIGHT),
                lru: AtomicU64::new(0),
                pins: AtomicU32::new(0),
                data: UnsafeCell::new(NodeData::default()),
            },
            GFP_KERNEL,
        )?)
    }

    /// A node outside the cache, with no read to wait for: a new node being
    /// written, whose write takes its `WRITE_IN_FLIGHT` bit.
    pub(crate) fn new_detached() -> Result<Arc<Node>> {
        Ok(Arc::new(
            Node {
                flags: AtomicUsize::new(0),
                lru: AtomicU64::new(0),
                pins: AtomicU32::new(0),
                data: UnsafeCell::new(NodeData::default()),
            },
            GFP_KERNEL,
        )?)
    }

    /// Whether IO lock bit `bit` is set.
    pub(crate) fn test_bit(&self, bit: u32) -> bool {
        self.flags.load(Ordering::Acquire) & (1 << bit) != 0
    }

    /// Sets IO lock bit `bit`; returns whether it was already set.
    pub(crate) fn test_and_set_bit(&self, bit: u32) -> bool {
        self.flags.fetch_or(1 << bit, Ordering::Acquire) & (1 << bit) != 0
    }

    /// Sleeps until IO lock bit `bit` is clear.
    pub(crate) fn wait_on_bit(&self, bit: u32) {
        // SAFETY: `flags` is an `unsigned long`-sized atomic living as long as `self`;
        // wait_on_bit only reads it atomically.
        unsafe { shim::bch_rs_wait_on_bit_io(self.flags.as_ptr().cast(), bit as c_int) };
    }

    /// Takes IO lock bit `bit` (`wait_on_bit_lock_io`): at once when it is clear,
    /// else after sleeping until its holder clears it. The write path holds
    /// `WRITE_IN_FLIGHT` this way; [`Node::clear_bit_wake`] lets the next one in.
    pub(crate) fn lock_bit(&self, bit: u32) {
        // SAFETY: as in `wait_on_bit`; the lock is an atomic test-and-set of the
        // word, and the sleep waits on the word's bit waitqueue.
        unsafe { shim::bch_rs_wait_on_bit_lock_io(self.flags.as_ptr().cast(), bit as c_int) };
    }

    /// Clears IO lock bit `bit` (release) and wakes its waiters.
    pub(crate) fn clear_bit_wake(&self, bit: u32) {
        // SAFETY: as in `wait_on_bit`; clear_bit_unlock is an atomic RMW of the word.
        unsafe { shim::bch_rs_clear_bit_unlock_wake(self.flags.as_ptr().cast(), bit as c_int) };
    }

    /// Publishes the read's result and ends the read: clears `READ_IN_FLIGHT` and
    /// wakes every waiter.
    ///
    /// # Safety
    ///
    /// The caller owns this node's read (it set or was handed `READ_IN_FLIGHT`) and
    /// calls this once.
    pub(crate) unsafe fn complete_read(&self, data: NodeData) {
        // SAFETY: READ_IN_FLIGHT is set and owned by the caller: nobody reads `data`
        // until the bit is cleared below (with release ordering).
        unsafe { *self.data.get() = data };
        self.clear_bit_wake(READ_IN_FLIGHT);
    }

    /// The node's contents; `None` while its read is in flight.
    pub(crate) fn data(&self) -> Option<&NodeData> {
        if self.test_bit(READ_IN_FLIGHT) {
            return None;
        }
        // SAFETY: the read completed (bit seen clear with acquire ordering after the
        // writer's release): `data` is no longer written.
        Some(unsafe { &*self.data.get() })
    }

    fn evictable(&self) -> bool {
        self.pins.load(Ordering::Acquire) == 0
            && self.flags.load(Ordering::Acquire) & ((1 << READ_IN_FLIGHT) | (1 << WRITE_IN_FLIGHT))
                == 0
    }
}

/// A node in use: it is not evicted while this exists.
pub(crate) struct NodeRef(Arc<Node>);

impl NodeRef {
    fn new(n: Arc<Node>) -> Self {
        n.pins.fetch_add(1, Ordering::AcqRel);
        NodeRef(n)
    }
    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.0
    }
}

impl core::ops::Deref for NodeRef {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.0
    }
}

impl Drop for NodeRef {
    fn drop(&mut self) {
        self.0.pins.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counters of the cache and its reads, as debugfs `btree_cache` prints them.
#[derive(Default)]
pub(crate) struct CacheStats {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) read_waits: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) read_errors: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) uncached: AtomicU64,
    pub(crate) max_cached: AtomicU64,
    /// Node writes issued, their bytes (every replica), writers that waited on a
    /// write in flight, and writes with a failed replica.
    pub(crate) writes: AtomicU64,
    pub(crate) write_bytes: AtomicU64,
    pub(crate) write_waits: AtomicU64,
    pub(crate) write_errors: AtomicU64,
}

impl CacheStats {
    /// Adds `o`'s write counters (a filesystem opened again after a repair).
    pub(crate) fn absorb_writes(&self, o: &CacheStats) {
        let r = Ordering::Relaxed;
        for (a, b) in [
            (&self.writes, &o.writes),
            (&self.write_bytes, &o.write_bytes),
            (&self.write_waits, &o.write_waits),
            (&self.write_errors, &o.write_errors),
        ] {
            a.fetch_add(b.load(r), r);
        }
    }
}

struct CacheInner {
    map: RBTree<NodeId, Arc<Node>>,
    nr: usize,
    tick: u64,
}

/// The node cache of one filesystem.
pub(crate) struct NodeCache {
    inner: Pin<KBox<Mutex<CacheInner>>>,
    pub(crate) stats: CacheStats,
}

/// What [`NodeCache::get_or_insert`] found.
pub(crate) enum Lookup {
    /// The node was cached (its read may still be in flight).
    Hit(NodeRef),
    /// A new node, `READ_IN_FLIGHT` set: the caller must read it. It is not cached
    /// when the cache is full of nodes in use.
    Miss(NodeRef),
}

impl NodeCache {
    pub(crate) fn new() -> Result<Self> {
        Ok(NodeCache {
            inner: KBox::pin_init(
                kernel::new_mutex!(CacheInner {
                    map: RBTree::new(),
                    nr: 0,
                    tick: 0,
                }),
                GFP_KERNEL,
            )?,
            stats: CacheStats::default(),
        })
    }

    /// Nodes cached now.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().nr
    }

    /// Finds node `id`, or makes and inserts a new one whose read the caller owns.
    /// `limit` bounds the number of cached nodes.
    pub(crate) fn get_or_insert(&self, id: NodeId, limit: usize) -> Result<Lookup> {
        let mut evicted: Option<Arc<Node>> = None;
        let mut g = self.inner.lock();
        g.tick += 1;
        let tick = g.tick;
        if let Some(n) = g.map.get(&id) {
            n.lru.store(tick, Ordering::Relaxed);
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Lookup::Hit(NodeRef::new(n.clone())));
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let node = Node::new_reading()?;
        node.lru.store(tick, Ordering::Relaxed);
        if g.nr >= limit {
            // The least recently used node that is clean, unlocked and unused.
            let victim = g
                .map
                .iter()
                .filter(|(_, n)| n.evictable())
                .min_by_key(|(_, n)| n.lru.load(Ordering::Relaxed))
                .map(|(k, _)| *k);
            if let Some(v) = victim {
                evicted = g.map.remove(&v);
                g.nr -= 1;
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        if g.nr < limit {
            g.map.try_create_and_insert(id, node.clone(), GFP_KERNEL)?;
            g.nr += 1;
            self.stats
                .max_cached
                .fetch_max(g.nr as u64, Ordering::Relaxed);
        } else {
            self.stats.uncached.fetch_add(1, Ordering::Relaxed);
        }
        let node = NodeRef::new(node);
        drop(g);
        // Freed outside the lock.
        drop(evicted);
        Ok(Lookup::Miss(node))
    }

    /// Drops every cached node that is not in use.
    pub(crate) fn shrink_all(&self) {
        let mut g = self.inner.lock();
        let mut ids = KVec::new();
        for (k, n) in g.map.iter() {
            if n.evictable() && ids.push(*k, GFP_KERNEL).is_err() {
                break;
            }
        }
        for k in ids.iter() {
            if g.map.remove(k).is_some() {
                g.nr -= 1;
            }
        }
    }
}
