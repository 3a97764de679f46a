// SPDX-License-Identifier: GPL-2.0

//! Btree node reads, as upstream's btree read path: a bio per replica (REQ_META,
//! sized to the node's written sectors), whose endio only queues the read's work item
//! on the filesystem's workqueue; the work item checks, validates, sorts and merges,
//! retries the next replica on failure, and ends the read by clearing the node's
//! `READ_IN_FLIGHT` bit, which wakes every waiter (on error too).

use core::fmt::Write as _;
use core::sync::atomic::{AtomicI32, Ordering};

use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::workqueue::{impl_has_work, new_work, Work, WorkItem};

use super::cache::{KeyRef, Lookup, Node, NodeData, NodeId, NodeRef, ReplicaError, READ_IN_FLIGHT};
use crate::bdev::ReadKind;
use crate::format::btree::ptr::{BtreePtr, ExtentPtr};
use crate::format::btree::read::{read_bsets, BsetRef, NodeCtx, NodeError};
use crate::format::btree::sort::{Cursor, Merge};
use crate::format::ids;
use crate::format::printbuf::FixedBuf;
use crate::fs::{Fs, PtrKey};
use crate::hash::KernelHashes;

/// Returns node `ptr` of `btree` at `level`, from the cache or read from disk. Waits
/// for a read in flight instead of issuing another. A node whose every replica
/// failed comes back with `failed` set (its error was logged when it was read).
pub(crate) fn get_node(fs: &Arc<Fs>, btree: u32, level: u8, ptr: &PtrKey) -> Result<NodeRef> {
    if fs.dying.load(Ordering::Acquire) {
        // The kernel crate names ESHUTDOWN only from 7.3 on; the bindings have it.
        return Err(Error::from_errno(-(kernel::bindings::ESHUTDOWN as i32)));
    }
    let bp = BtreePtr::decode(ptr.k.typ, ptr.val()).ok_or(EINVAL)?;
    let first = bp.ptrs().next().ok_or(EINVAL)?;
    let id = NodeId {
        dev: u32::from(first.dev),
        offset: first.offset,
        seq: bp.seq,
        written: bp.written,
    };
    let limit = crate::btree_cache_max();
    match fs.cache.get_or_insert(id, limit)? {
        Lookup::Hit(n) => {
            if n.test_bit(READ_IN_FLIGHT) {
                fs.cache.stats.read_waits.fetch_add(1, Ordering::Relaxed);
                n.wait_on_bit(READ_IN_FLIGHT);
            }
            Ok(n)
        }
        Lookup::Miss(node) => {
            start_read(fs, node.node(), btree, level, ptr);
            node.wait_on_bit(READ_IN_FLIGHT);
            Ok(node)
        }
    }
}

/// State of a read, handed along submit -> endio -> work -> (next replica).
struct ReadState {
    /// Index of the replica being read.
    replica: usize,
    buf: KVVec<u8>,
    failures: KVec<(ExtentPtr, ReplicaError)>,
    /// A replica that failed only on its checksum: salvaged if none passes.
    salvage: Option<(ExtentPtr, KVVec<u8>)>,
}

#[pin_data]
struct ReadOp {
    fs: Arc<Fs>,
    node: Arc<Node>,
    ptr: PtrKey,
    btree: u32,
    level: u8,
    /// The bio's status, set by the endio.
    io_err: AtomicI32,
    #[pin]
    st: Mutex<ReadState>,
    #[pin]
    work: Work<ReadOp>,
}

impl_has_work! {
    impl HasWork<Self> for ReadOp { self.work }
}

/// Starts reading `node` (whose `READ_IN_FLIGHT` the caller set). Never fails: on
/// an allocation failure the node completes as failed.
fn start_read(fs: &Arc<Fs>, node: &Arc<Node>, btree: u32, level: u8, ptr: &PtrKey) {
    let op = Arc::pin_init(
        pin_init!(ReadOp {
            fs: fs.clone(),
            node: node.clone(),
            ptr: *ptr,
            btree,
            level,
            io_err: AtomicI32::new(0),
            st <- kernel::new_mutex!(ReadState {
                replica: 0,
                buf: KVVec::new(),
                failures: KVec::new(),
                salvage: None,
            }),
            work <- new_work!("bcachefs_rs::ReadOp::work"),
        }),
        GFP_KERNEL,
    );
    match op {
        Ok(op) => submit(op),
        Err(_) => {
            fs.cache.stats.read_errors.fetch_add(1, Ordering::Relaxed);
            let data = NodeData {
                failed: true,
                ..Default::default()
            };
            // SAFETY: the caller owns this node's read; it ends here.
            unsafe { node.complete_read(data) };
        }
    }
}

impl ReadOp {
    fn replicas(&self) -> impl Iterator<Item = ExtentPtr> + '_ {
        BtreePtr::decode(self.ptr.k.typ, self.ptr.val())
            .into_iter()
            .flat_map(|bp| bp.ptrs())
    }

    fn sectors(&self) -> u32 {
        let written = BtreePtr::decode(self.ptr.k.typ, self.ptr.val())
            .map(|bp| u32::from(bp.written))
            .unwrap_or(0);
        if written != 0 {
            written
        } else {
            self.fs.sb().btree_node_sectors()
        }
    }
}

/// Submits the read of the current replica, skipping replicas that cannot be
/// submitted; ends the read when none is left.
fn submit(op: Arc<ReadOp>) {
    let mut st = op.st.lock();
    loop {
        let Some(p) = op.replicas().nth(st.replica) else {
            drop(st);
            finish(&op);
            return;
        };
        let Some(dev) = op.fs.dev(u32::from(p.dev)) else {
            record(&mut st, p, ReplicaError::NoDevice);
            st.replica += 1;
            continue;
        };
        let len = (op.sectors() as usize) << 9;
        if st.buf.len() != len {
            st.buf.clear();
            if st.buf.resize(len, 0, GFP_KERNEL).is_err() {
                record(&mut st, p, ReplicaError::Io(ENOMEM.to_errno()));
                st.replica += 1;
                continue;
            }
        }
        let private = Arc::into_raw(op.clone());
        op.fs.cache.stats.reads.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `st.buf` is not touched until the work item runs after the endio
        // (the op, which owns it, is kept alive by the reference passed as private
        // and reclaimed in `bch_rs_read_endio`).
        let r = unsafe {
            dev.read_async(
                p.offset,
                st.buf.as_mut_ptr(),
                len,
                private.cast(),
                ReadKind::Node,
            )
        };
        match r {
            Ok(()) => return,
            Err(e) => {
                // SAFETY: the read was not submitted: no endio will take it back.
                drop(unsafe { Arc::from_raw(private) });
                record(&mut st, p, ReplicaError::Io(e.to_errno()));
                st.replica += 1;
            }
        }
    }
}

fn record(st: &mut ReadState, p: ExtentPtr, e: ReplicaError) {
    // Best effort: a failure that cannot be recorded is still counted below.
    let _ = st.failures.push((p, e), GFP_KERNEL);
}

/// Bio completion, in interrupt context: only queues the work item.
#[no_mangle]
pub(crate) extern "C" fn bch_rs_read_endio(private: *mut c_void, err: c_int) {
    // SAFETY: `private` is the reference `submit` leaked for this read.
    let op = unsafe { Arc::from_raw(private.cast::<ReadOp>().cast_const()) };
    op.io_err.store(err, Ordering::Release);
    Fs::queue_io(op, |op| &op.fs);
}

impl WorkItem for ReadOp {
    type Pointer = Arc<ReadOp>;

    fn run(op: Arc<ReadOp>) {
        let mut st = op.st.lock();
        let Some(p) = op.replicas().nth(st.replica) else {
            drop(st);
            finish(&op);
            return;
        };
        let err = op.io_err.swap(0, Ordering::Acquire);
        if err != 0 {
            record(&mut st, p, ReplicaError::Io(err));
        } else {
            crate::bdev::read_done(&st.buf);
            let buf = core::mem::take(&mut st.buf);
            match decode(&op, p, buf, false) {
                Ok(mut data) => {
                    // Earlier replicas' failures first, then this one's warning.
                    let mut failures = core::mem::take(&mut st.failures);
                    for f in data.failures.iter() {
                        let _ = failures.push(*f, GFP_KERNEL);
                    }
                    data.failures = failures;
                    drop(st);
                    complete(&op, data);
                    return;
                }
                Err((e, buf)) => {
                    if matches!(e, NodeError::BadChecksum { .. }) && st.salvage.is_none() {
                        st.salvage = Some((p, buf));
                    }
                    record(&mut st, p, ReplicaError::Node(e));
                }
            }
        }
        st.replica += 1;
        if op.replicas().nth(st.replica).is_some() {
            op.fs.cache.stats.retries.fetch_add(1, Ordering::Relaxed);
            drop(st);
            submit(op);
        } else {
            drop(st);
            finish(&op);
        }
    }
}

/// No replica left: salvage a copy that failed only its checksum, or fail.
fn finish(op: &Arc<ReadOp>) {
    let mut st = op.st.lock();
    let failures = core::mem::take(&mut st.failures);
    let salvage = st.salvage.take();
    drop(st);
    let mut data = match salvage.map(|(p, buf)| decode(op, p, buf, true)) {
        Some(Ok(mut d)) => {
            d.salvaged = true;
            d
        }
        _ => NodeData {
            failed: true,
            ..Default::default()
        },
    };
    data.failures = failures;
    op.fs
        .cache
        .stats
        .read_errors
        .fetch_add(1, Ordering::Relaxed);
    complete(op, data);
}

/// Logs what went wrong, once, and publishes the node.
fn complete(op: &ReadOp, data: NodeData) {
    if !data.failures.is_empty() || data.dropped_keys != 0 {
        let mut b = [0u8; 768];
        let mut w = FixedBuf::new(&mut b);
        {
            let mut pb: crate::format::text::Pb<'_, '_> =
                crate::format::printbuf::Printbuf::new(&mut w);
            let what = if data.failed {
                "error reading btree node"
            } else if data.salvaged {
                "btree node read with bad checksums"
            } else if data.failures.is_empty() {
                "bad keys in btree node"
            } else {
                "btree node read after replica failure"
            };
            let _ = write!(
                pb,
                "{}: {}: btree {} level {} node {}:",
                op.fs.uuid(),
                what,
                ids::btree_name(op.btree).unwrap_or("?"),
                op.level,
                op.ptr.k.p
            );
            for (p, e) in data.failures.iter() {
                let _ = write!(pb, " [dev {} offset {}: {}]", p.dev, p.offset, e);
            }
            if data.salvaged {
                pb.str("; no replica passed its checksum: using its keys anyway");
            }
            if data.dropped_keys != 0 {
                let _ = write!(pb, "; {} bad keys dropped", data.dropped_keys);
            }
        }
        let msg = core::str::from_utf8(w.as_bytes()).unwrap_or("?");
        if data.failed || data.salvaged || data.dropped_keys != 0 {
            pr_err!("{}\n", msg);
        } else {
            pr_warn!("{}\n", msg);
        }
    }
    // SAFETY: this op owns the node's read (started by `start_read`) and completes
    // it exactly once: `complete` is reached once per op.
    unsafe { op.node.complete_read(data) };
}

/// Checks, validates, sorts and merges one replica's bytes. On error hands the
/// buffer back.
fn decode(
    op: &ReadOp,
    replica: ExtentPtr,
    buf: KVVec<u8>,
    accept_bad_csum: bool,
) -> Result<NodeData, (NodeError, KVVec<u8>)> {
    let fs = &op.fs;
    let s = fs.sb();
    let Some(bp) = BtreePtr::decode(op.ptr.k.typ, op.ptr.val()) else {
        return Err((NodeError::Short, buf));
    };
    let node_sectors = s.btree_node_sectors();
    let bl = |seq| fs.is_blacklisted(seq);
    let ctx = NodeCtx {
        magic: s.bset_magic(),
        block_sectors: s.block_sectors(),
        node_sectors,
        written: u32::from(bp.written),
        btree_id: Some(op.btree),
        level: Some(op.level),
        min_key: bp.min_key,
        max_key: Some(op.ptr.k.p),
        seq: (bp.seq != 0).then_some(bp.seq),
        range_updated: bp.range_updated,
        csum: &KernelHashes,
        blacklisted: &bl,
        accept_bad_csum,
    };
    let nb = s.max_bsets();
    let nomem = NodeError::BadBset {
        offset: 0,
        what: "out of memory",
    };
    let Ok(mut bsets) = KVec::from_elem(BsetRef::default(), nb, GFP_KERNEL) else {
        return Err((nomem, buf));
    };
    let mut warning: Option<NodeError> = None;
    let mut warn = |e: NodeError| {
        if !(accept_bad_csum && matches!(e, NodeError::BadChecksum { .. })) {
            warning.get_or_insert(e);
        }
    };
    let (h, n) = match read_bsets(&buf, &ctx, &mut bsets, &mut warn) {
        Ok(x) => x,
        Err(e) => return Err((e, buf)),
    };
    // A later bset that fails its checksum: another replica may hold it whole,
    // and only the last resort (the salvage pass) uses its keys, as upstream's
    // read does; ending the node there would lose them.
    if let Some(e @ NodeError::BadChecksum { .. }) = warning {
        if !accept_bad_csum {
            return Err((e, buf));
        }
    }
    let Ok(mut cursors) = KVec::from_elem(Cursor::default(), n, GFP_KERNEL) else {
        return Err((nomem, buf));
    };
    let mut keys = KVec::new();
    let base = buf.as_ptr() as usize;
    let mut m = Merge::new(
        &buf,
        h.format,
        h.min_key,
        h.max_key,
        &bsets[..n],
        &mut cursors,
    )
    .validating(op.btree, op.level);
    let mut oom = false;
    for mk in m.by_ref() {
        let kr = KeyRef {
            k: mk.k,
            off: (mk.v.as_ptr() as usize - base) as u32,
            len: mk.v.len() as u32,
        };
        if keys.push(kr, GFP_KERNEL).is_err() {
            oom = true;
            break;
        }
    }
    let dropped_keys = m.stats.invalid + m.stats.bad;
    if oom {
        return Err((nomem, buf));
    }
    let mut failures = KVec::new();
    if let Some(e) = warning {
        let _ = failures.push((replica, ReplicaError::Node(e)), GFP_KERNEL);
    }
    Ok(NodeData {
        buf,
        keys,
        min_key: h.min_key,
        max_key: h.max_key,
        failures,
        failed: false,
        salvaged: false,
        dropped_keys,
    })
}
