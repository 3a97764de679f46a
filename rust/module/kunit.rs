// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of what the kernel side does: the format core compiled into the
//! module, the kernel's hash primitives behind the core's checksum trait, the node
//! IO lock bits and the node cache.

#[kernel::prelude::kunit_tests(bcachefs_rs)]
mod tests {
    use crate::format::bkey::{Bkey, BkeyFormat};
    use crate::format::bpos::Bpos;
    use crate::format::csum::{checksum, ty, Checksummer};
    use crate::hash::KernelHashes;

    #[test]
    fn kernel_crc32c_matches_reference() {
        // CRC-32C("123456789") = 0xe3069283 in its standard (inverted) form.
        let raw = KernelHashes.crc32c(!0, b"123456789");
        assert_eq!(!raw, 0xe306_9283);
    }

    #[test]
    fn kernel_crc64_matches_reference() {
        // CRC-64/ECMA-182 check value of "123456789".
        assert_eq!(
            KernelHashes.crc64_be(0, b"123456789"),
            0x6c40_df5f_0b49_7347
        );
    }

    #[test]
    fn kernel_xxh64_matches_reference() {
        assert_eq!(KernelHashes.xxh64(b""), 0xef46_db37_51d8_e999);
    }

    #[test]
    fn checksum_types() {
        let c = checksum(&KernelHashes, ty::CRC32C_NONZERO, b"123456789").unwrap();
        assert_eq!(c.lo, 0xe306_9283);
        assert!(checksum(&KernelHashes, 99, b"").is_err());
    }

    #[test]
    fn packed_key_unpacks() {
        // Format: inode 8 bits, offset 16 bits, snapshot 0, others 0; one u64.
        let f = BkeyFormat {
            key_u64s: 1,
            nr_fields: 6,
            bits_per_field: [8, 16, 0, 0, 0, 0],
            field_offset: [100, 0, 7, 0, 0, 0],
        };
        assert!(f.validate().is_ok());
        // High bits of the word: inode 0x05, then offset 0x1234; header in the low 24.
        let w: u64 = (0x05u64 << 56) | (0x1234u64 << 40) | (1 << 16) | 1;
        let k = Bkey::unpack(&w.to_le_bytes(), &f).unwrap();
        assert_eq!(k.p, Bpos::new(105, 0x1234, 7));
        assert_eq!(k.typ, 1);
    }

    #[test]
    fn bpos_order() {
        assert!(Bpos::new(1, 0, 0) > Bpos::new(0, u64::MAX, u32::MAX));
        assert_eq!(Bpos::MAX.successor(), Bpos::MAX);
        assert_eq!(Bpos::new(0, 1, 0).predecessor(), Bpos::new(0, 0, u32::MAX));
    }

    use crate::btree::cache::{
        Lookup, Node, NodeCache, NodeData, NodeId, NodeRef, READ_IN_FLIGHT, WRITE_IN_FLIGHT,
    };
    use core::sync::atomic::Ordering;
    use kernel::prelude::*;

    fn id(n: u64) -> NodeId {
        NodeId {
            dev: 0,
            offset: n,
            seq: n,
            written: 0,
        }
    }

    fn complete(n: &Node) {
        // SAFETY: the test owns the read of this new node.
        unsafe { n.complete_read(NodeData::default()) };
    }

    fn miss(c: &NodeCache, n: u64, limit: usize) -> NodeRef {
        match c.get_or_insert(id(n), limit) {
            Ok(Lookup::Miss(r)) => r,
            _ => panic!("expected a miss"),
        }
    }

    #[test]
    fn io_lock_bits() {
        let n = Node::new_reading().unwrap();
        assert!(n.test_bit(READ_IN_FLIGHT));
        assert!(n.data().is_none());
        complete(&n);
        assert!(!n.test_bit(READ_IN_FLIGHT));
        assert!(n.data().is_some());
        // Waiting on a clear bit returns at once.
        n.wait_on_bit(READ_IN_FLIGHT);
        assert!(!n.test_and_set_bit(WRITE_IN_FLIGHT));
        assert!(n.test_and_set_bit(WRITE_IN_FLIGHT));
        n.clear_bit_wake(WRITE_IN_FLIGHT);
        assert!(!n.test_bit(WRITE_IN_FLIGHT));
    }

    #[test]
    fn io_lock_wakes_waiter() {
        let n = Node::new_reading().unwrap();
        let n2 = n.clone();
        kernel::workqueue::system()
            .try_spawn(GFP_KERNEL, move || complete(&n2))
            .unwrap();
        // Returns only once the work item has cleared the bit and woken us.
        n.wait_on_bit(READ_IN_FLIGHT);
        assert!(n.data().is_some());
    }

    #[test]
    fn write_lock_second_locker_waits() {
        use core::sync::atomic::AtomicU32;
        use kernel::sync::Arc;
        // A bit of the node's word the test uses to learn the worker is done.
        const DONE: u32 = 5;
        let n = Node::new_reading().unwrap();
        complete(&n);
        n.lock_bit(WRITE_IN_FLIGHT);
        assert!(n.test_bit(WRITE_IN_FLIGHT));
        assert!(!n.test_and_set_bit(DONE));
        // 1: trying, 2: holds the lock.
        let state = Arc::new(AtomicU32::new(0), GFP_KERNEL).unwrap();
        let (n2, s2) = (n.clone(), state.clone());
        kernel::workqueue::system()
            .try_spawn(GFP_KERNEL, move || {
                s2.store(1, Ordering::Release);
                n2.lock_bit(WRITE_IN_FLIGHT);
                s2.store(2, Ordering::Release);
                n2.clear_bit_wake(WRITE_IN_FLIGHT);
                n2.clear_bit_wake(DONE);
            })
            .unwrap();
        let mut ms = 0;
        while state.load(Ordering::Acquire) == 0 {
            // SAFETY: a plain sleep, in process context.
            unsafe { crate::shim::bch_rs_msleep(1) };
            ms += 1;
            // The second locker never started.
            assert!(ms < 10_000);
        }
        // It tries while we hold the bit: it must still be waiting a while later.
        // SAFETY: as above.
        unsafe { crate::shim::bch_rs_msleep(50) };
        // The second locker did not wait.
        assert_eq!(state.load(Ordering::Acquire), 1);
        n.clear_bit_wake(WRITE_IN_FLIGHT);
        // Unlocking woke it: it takes the bit, lets it go and says it is done.
        n.wait_on_bit(DONE);
        assert_eq!(state.load(Ordering::Acquire), 2);
        assert!(!n.test_bit(WRITE_IN_FLIGHT));
    }

    #[test]
    fn cache_lookup_and_lru_eviction() {
        let c = NodeCache::new().unwrap();
        let limit = 2;
        complete(&miss(&c, 1, limit));
        complete(&miss(&c, 2, limit));
        assert_eq!(c.len(), 2);
        // A lookup finds node 1 without a read and makes node 2 the oldest.
        assert!(matches!(c.get_or_insert(id(1), limit), Ok(Lookup::Hit(_))));
        complete(&miss(&c, 3, limit));
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats.evictions.load(Ordering::Relaxed), 1);
        assert!(matches!(c.get_or_insert(id(1), limit), Ok(Lookup::Hit(_))));
        // Node 2 was evicted: looking it up misses (and evicts node 3).
        complete(&miss(&c, 2, limit));
        assert!(matches!(c.get_or_insert(id(3), limit), Ok(Lookup::Miss(_))));
        assert!(c.stats.max_cached.load(Ordering::Relaxed) <= limit as u64);
    }

    #[test]
    fn cache_never_evicts_nodes_in_use_or_in_flight() {
        let c = NodeCache::new().unwrap();
        let limit = 2;
        let a = miss(&c, 1, limit); // in flight
        let b = miss(&c, 2, limit);
        complete(&b); // read done, but still held
        let d = miss(&c, 3, limit);
        // Nothing could be evicted: the new node is read but not cached.
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats.evictions.load(Ordering::Relaxed), 0);
        assert_eq!(c.stats.uncached.load(Ordering::Relaxed), 1);
        complete(&a);
        complete(&d);
        drop(b);
        // Node 2 is now clean and unused: the next miss evicts it, not node 1.
        let _e = miss(&c, 4, limit);
        assert_eq!(c.stats.evictions.load(Ordering::Relaxed), 1);
        assert!(matches!(c.get_or_insert(id(1), limit), Ok(Lookup::Hit(_))));
        drop(a);
        complete(&_e);
    }

    #[test]
    fn bset_composition_matches_the_tools() {
        use crate::format::btree::write::{
            known_answer_digest, known_answer_node, KNOWN_ANSWER_DIGESTS, KNOWN_ANSWER_SECTORS,
        };
        // The commit's way: a node buffer and an unwritten-key store in kernel
        // memory, the kernel's crc32c, crc64 and xxhash. The digests are the ones
        // the tool's cargo test (tool/tests/known_answer.rs) gets with its own.
        for (ty, want) in KNOWN_ANSWER_DIGESTS {
            let mut buf =
                KVVec::from_elem(0u8, (KNOWN_ANSWER_SECTORS as usize) << 9, GFP_KERNEL).unwrap();
            let mut store = KVVec::from_elem(0u8, 512, GFP_KERNEL).unwrap();
            let b = known_answer_node(&mut buf, &mut store, ty, &KernelHashes).unwrap();
            assert_eq!((b.offset, b.sectors), (1, 1));
            assert_eq!(known_answer_digest(&buf), want);
        }
    }
}
