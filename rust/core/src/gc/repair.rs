// SPDX-License-Identifier: GPL-2.0
//! The repairs of gc findings that are one key's new value: the write twins of the
//! comparisons in [`super::buckets`] and [`super::accounting`]. The offline fsck
//! and the module's repair at mount both take their values from here.

use super::super::alloc::format::{write_accounting, AllocV4};
use super::finding::{AllocField, Finding};

/// Sets the alloc field `f` names to its recounted value.
pub fn apply_field(a: &mut AllocV4, f: &Finding) {
    let w = f.want;
    match f.field {
        Some(AllocField::Gen) => a.gen = w as u8,
        Some(AllocField::DataType) => a.data_type = w as u8,
        Some(AllocField::DirtySectors) => a.dirty_sectors = w as u32,
        Some(AllocField::CachedSectors) => a.cached_sectors = w as u32,
        Some(AllocField::StripeRefcount) => a.stripe_refcount = w as u32,
        None => {}
    }
}

/// A gens pass's write (upstream's `bch2_alloc_write_oldest_gen`): alloc key `a`
/// with `oldest_gen` set to `target` and the data type the alloc trigger then gives
/// it (a bucket waiting for gc gens is free again once its gens are close).
pub fn with_oldest_gen(a: &AllocV4, target: u8) -> AllocV4 {
    let mut n = *a;
    n.oldest_gen = target;
    n.data_type = super::super::alloc::trigger::alloc_data_type(&n, a.data_type);
    n
}

/// The bversion of an accounting key a commit whose first journal entry is `seq`
/// writes: above every delta of that entry, so a replay over the new node skips the
/// journal's copy and one over the old node adds it.
pub fn accounting_version(seq: u64) -> u64 {
    (seq << 32) | 0xffff_ffff
}

/// The repair of accounting finding `f` with `n` counters: the recount as the node's
/// value into `node_v`, and the change as the journal's delta into `journal_v`
/// (each `n * 8` bytes). `None` when a buffer is short.
pub fn accounting_values(
    f: &Finding,
    n: usize,
    node_v: &mut [u8],
    journal_v: &mut [u8],
) -> Option<()> {
    let want = f.acct_want.get(..n)?;
    let got = f.acct_got.get(..n)?;
    write_accounting(node_v, want)?;
    let mut delta = [0i64; 3];
    for (d, (w, g)) in delta.iter_mut().zip(want.iter().zip(got)) {
        *d = w.wrapping_sub(*g);
    }
    write_accounting(journal_v, &delta[..n])?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::super::super::alloc::format::accounting_counter;
    use super::super::finding::Kind;
    use super::*;

    #[test]
    fn accounting_repair_is_recount_and_delta() {
        let mut f = Finding::new(Kind::AccountingMismatch);
        f.acct_got = [10, 7, 0];
        f.acct_want = [13, 5, 0];
        let (mut v, mut j) = ([0u8; 16], [0u8; 16]);
        accounting_values(&f, 2, &mut v, &mut j).unwrap();
        assert_eq!(
            (accounting_counter(&v, 0), accounting_counter(&v, 1)),
            (13, 5)
        );
        assert_eq!(
            (accounting_counter(&j, 0), accounting_counter(&j, 1)),
            (3, -2)
        );
        assert!(accounting_values(&f, 2, &mut [0u8; 8], &mut j).is_none());
        assert!(accounting_values(&f, 4, &mut v, &mut j).is_none());
        assert_eq!(accounting_version(5), (5 << 32) | 0xffff_ffff);
    }

    #[test]
    fn gens_write_frees_a_bucket_waiting_for_gc_gens() {
        use super::super::super::alloc::format::{DATA_FREE, DATA_NEED_GC_GENS};
        let a = AllocV4 {
            gen: 200,
            oldest_gen: 50,
            data_type: DATA_NEED_GC_GENS,
            ..Default::default()
        };
        let n = with_oldest_gen(&a, 200);
        assert_eq!((n.oldest_gen, n.data_type), (200, DATA_FREE));
        // Still too far apart: it keeps waiting.
        assert_eq!(with_oldest_gen(&a, 60).data_type, DATA_NEED_GC_GENS);
    }

    #[test]
    fn field_set_to_recount() {
        let mut f = Finding::new(Kind::AllocKeyWrong);
        f.field = Some(AllocField::DirtySectors);
        f.want = 96;
        let mut a = AllocV4::default();
        apply_field(&mut a, &f);
        assert_eq!(a.dirty_sectors, 96);
    }
}
