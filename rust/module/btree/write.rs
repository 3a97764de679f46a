// SPDX-License-Identifier: GPL-2.0

//! Btree node writes, as upstream's node write path: the caller takes the node's
//! `WRITE_IN_FLIGHT` bit (`wait_on_bit_lock_io`: a second writer sleeps until the
//! first is done), one bio per replica (REQ_META | REQ_FUA) carries the bset the
//! core composed, each endio only counts itself down and the last one queues the
//! write's work item on the filesystem's workqueue; the work item records the
//! outcome and the write stats, then clears the bit and wakes every waiter, on
//! error too.

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};

use super::cache::{Node, WRITE_IN_FLIGHT};
use crate::bdev::WriteFlags;
use crate::fs::Fs;

/// Why a node was written (upstream's `btree_write_type`), for the write stats.
/// The kernel writes only appended bsets so far; the other types are listed (at
/// zero) because upstream's `btree_write_stats` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
#[allow(dead_code)]
pub(crate) enum WriteType {
    /// The node's first bset (a new node).
    Initial = 0,
    /// A bset appended to a node already on disk.
    InitNextBset,
    /// Written to free the node's memory.
    CacheReclaim,
    /// Written so the journal can move on.
    JournalReclaim,
    /// An interior node's pointer update.
    Interior,
}

/// Write types in order, with upstream's names.
pub(crate) const WRITE_TYPES: [(WriteType, &str); 5] = [
    (WriteType::Initial, "initial"),
    (WriteType::InitNextBset, "init_next_bset"),
    (WriteType::CacheReclaim, "cache_reclaim"),
    (WriteType::JournalReclaim, "journal_reclaim"),
    (WriteType::Interior, "interior"),
];

/// One replica's image: its device, first sector and bytes.
pub(crate) struct Image {
    pub(crate) dev: u32,
    pub(crate) sector: u64,
    pub(crate) data: KVVec<u8>,
}

/// A node write in flight, handed along submit -> endio -> work.
#[pin_data]
struct WriteOp {
    fs: Arc<Fs>,
    node: Arc<Node>,
    typ: WriteType,
    images: KVec<Image>,
    /// Replica writes not completed yet.
    pending: AtomicU32,
    /// Replicas whose write failed, by index bit.
    failed: AtomicU32,
    /// The first replica error (negative errno), 0 if none.
    err: AtomicI32,
    #[pin]
    work: Work<WriteOp>,
}

impl_has_work! {
    impl HasWork<Self> for WriteOp { self.work }
}

/// What a node write did: which replicas failed (bit per image) and the first error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Written {
    pub(crate) failed: u32,
    pub(crate) err: i32,
}

/// Writes `images` (one per replica of `node`) and waits for them: takes the
/// node's `WRITE_IN_FLIGHT` bit first (waiting for a write in flight), and returns
/// once the work item has cleared it. At most 32 replicas.
pub(crate) fn write_node(
    fs: &Arc<Fs>,
    node: &Arc<Node>,
    typ: WriteType,
    images: KVec<Image>,
) -> Result<Written> {
    let nr = images.len();
    if nr == 0 || nr > 32 {
        return Err(EINVAL);
    }
    let bytes: usize = images.iter().map(|i| i.data.len()).sum();
    let st = &fs.cache.stats;
    if node.test_bit(WRITE_IN_FLIGHT) {
        st.write_waits.fetch_add(1, Ordering::Relaxed);
    }
    node.lock_bit(WRITE_IN_FLIGHT);
    let op = match Arc::pin_init(
        pin_init!(WriteOp {
            fs: fs.clone(),
            node: node.clone(),
            typ,
            images,
            pending: AtomicU32::new(nr as u32),
            failed: AtomicU32::new(0),
            err: AtomicI32::new(0),
            work <- new_work!("bcachefs_rs::WriteOp::work"),
        }),
        GFP_KERNEL,
    ) {
        Ok(op) => op,
        Err(e) => {
            node.clear_bit_wake(WRITE_IN_FLIGHT);
            return Err(e);
        }
    };
    st.writes.fetch_add(1, Ordering::Relaxed);
    st.write_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    // The work item's reference: the last replica to finish queues it. The
    // writer's own (`op`) keeps the op alive until the work item has run, so no
    // reference is dropped in interrupt context and the op (with its filesystem
    // reference) is freed here, by the writer.
    let raw = Arc::into_raw(op.clone());
    for (i, img) in op.images.iter().enumerate() {
        let bio = match KBox::new(BioRef { op: raw, i }, GFP_KERNEL) {
            Ok(b) => b,
            Err(_) => {
                // SAFETY: `raw` is live (the writer holds `op`) and this replica
                // ends here, once.
                unsafe { replica_done(raw, i, ENOMEM.to_errno()) };
                continue;
            }
        };
        let private = KBox::into_raw(bio);
        let r = match fs.dev(img.dev) {
            // SAFETY: the image lives in the op, which the writer keeps alive and
            // unchanged until the work item has run, after this bio's endio.
            Some(d) => unsafe {
                d.write_async(
                    img.sector,
                    img.data.as_ptr(),
                    img.data.len(),
                    WriteFlags::FUA,
                    private.cast_const().cast(),
                )
            },
            None => Err(ENXIO),
        };
        if let Err(e) = r {
            // SAFETY: not submitted: no endio will take this box back.
            drop(unsafe { KBox::from_raw(private) });
            // SAFETY: as above: this replica ends here, once.
            unsafe { replica_done(raw, i, e.to_errno()) };
        }
    }
    node.wait_on_bit(WRITE_IN_FLIGHT);
    Ok(Written {
        failed: op.failed.load(Ordering::Acquire),
        err: op.err.load(Ordering::Acquire),
    })
}

/// One replica's write ended (`err` 0 or a negative errno): the last one hands
/// the work item its reference and queues it. Runs in interrupt context from the
/// endio; takes and drops no reference itself.
///
/// # Safety
///
/// `op` came from `Arc::into_raw` in [`write_node`] (the work item's reference),
/// the writer still holds its own, and each replica calls this once.
unsafe fn replica_done(op: *const WriteOp, i: usize, err: i32) {
    // SAFETY: the writer's reference keeps the op alive until the work item has
    // run, which is after the last call here.
    let o = unsafe { &*op };
    if err != 0 {
        o.failed.fetch_or(1 << i, Ordering::AcqRel);
        let _ = o
            .err
            .compare_exchange(0, err, Ordering::AcqRel, Ordering::Acquire);
    }
    if o.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    // SAFETY: the last replica takes back the reference write_node leaked for
    // the work item, once.
    let w = unsafe { Arc::from_raw(op) };
    Fs::queue_io(w, |w| &w.fs);
}

/// What a replica's bio carries to its endio: the write (no reference: see
/// [`replica_done`]) and the image's index.
struct BioRef {
    op: *const WriteOp,
    i: usize,
}

/// Bio completion of a node write, in interrupt context.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_write_endio(private: *mut c_void, err: c_int) {
    // SAFETY: `private` is the box `write_node` leaked for this bio; freeing a
    // kmalloc'd box is allowed in interrupt context.
    let b = unsafe { KBox::from_raw(private.cast::<BioRef>()) };
    let BioRef { op, i } = KBox::into_inner(b);
    // SAFETY: `op` is the write this bio belongs to; its writer still holds it.
    unsafe { replica_done(op, i, err) };
}

impl WorkItem for WriteOp {
    type Pointer = Arc<WriteOp>;

    fn run(op: Arc<WriteOp>) {
        let failed = op.failed.load(Ordering::Acquire);
        let bytes: usize = op.images.iter().map(|i| i.data.len()).sum();
        op.fs.write_stats.add(op.typ, bytes as u64);
        if failed != 0 {
            op.fs
                .cache
                .stats
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            for (i, img) in op.images.iter().enumerate() {
                if failed & (1 << i) != 0 {
                    pr_err!(
                        "{}: btree node write error on {} at sector {}: error {}\n",
                        op.fs.uuid(),
                        op.fs.dev(img.dev).map(|d| d.name()).unwrap_or("?"),
                        img.sector,
                        op.err.load(Ordering::Relaxed)
                    );
                }
            }
        }
        // Dropped before the bit is cleared: the writer's reference is the last,
        // so the op and its filesystem reference go in the writer's context.
        let node = op.node.clone();
        drop(op);
        node.clear_bit_wake(WRITE_IN_FLIGHT);
    }
}
