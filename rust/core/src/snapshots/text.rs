// SPDX-License-Identifier: GPL-2.0
//! Text forms of snapshot values: `bch2_snapshot_to_text`,
//! `bch2_snapshot_tree_to_text`, `bch2_subvolume_to_text`.

use core::fmt::Write;

use super::super::bkey::Bkey;
use super::super::text::{Pb, TextCtx};
use super::format::{
    snapshot_flag, snapshot_state_str, snapshot_state_valid, snapshot_tree_fields,
    subvolume_state_str, Snapshot, Subvolume, SUBVOLUME_CREATION_PARENT,
};

/// `prt_bitflags`: names of the set bits, comma separated, stopping at the first bit
/// without a name.
fn prt_bitflags(pb: &mut Pb<'_, '_>, names: &[&str], flags: u64) {
    let mut flags = flags;
    let mut first = true;
    while flags != 0 {
        let bit = flags.trailing_zeros() as usize;
        let Some(name) = names.get(bit) else { break };
        if !first {
            pb.str(",");
        }
        first = false;
        pb.str(name);
        flags ^= 1u64 << bit;
    }
}

/// `bch2_snapshot_to_text` on a (padded) snapshot value.
pub fn snapshot_fields_to_text(pb: &mut Pb<'_, '_>, s: &Snapshot) {
    let _ = write!(
        pb,
        "parent {:10} children {:10} {:10} subvol {} tree {}",
        s.parent, s.children[0], s.children[1], s.subvol, s.tree
    );
    let _ = write!(
        pb,
        " depth {} skiplist {} {} {}",
        s.depth, s.skip[0], s.skip[1], s.skip[2]
    );

    if s.state == 0 {
        // not upgraded: no state field, the obsolete flags are the truth
        let _ = write!(
            pb,
            " {} (not upgraded, flags 0x{:x}:",
            snapshot_state_str(s.state_from_flags()),
            s.flags
        );
        prt_bitflags(pb, &snapshot_flag::NAMES, s.flags as u64);
        pb.str(")");
    } else if !snapshot_state_valid(s.state) {
        let _ = write!(pb, " state 0x{:x} invalid (flags 0x{:x}:", s.state, s.flags);
        prt_bitflags(pb, &snapshot_flag::NAMES, s.flags as u64);
        pb.str(")");
    } else {
        let _ = write!(pb, " {}", snapshot_state_str(s.state));

        // print only where the dual-written obsolete flags diverge from the state
        let expect = s.expected_flags(s.state);
        for (bit, name) in [
            (snapshot_flag::WILL_DELETE, "will_delete_obsolete"),
            (snapshot_flag::SUBVOL, "subvol_obsolete"),
            (snapshot_flag::DELETED, "deleted_obsolete"),
            (snapshot_flag::NO_KEYS, "no_keys_obsolete"),
        ] {
            if (s.flags ^ expect) & bit != 0 {
                let _ = write!(pb, " {}={}", name, (s.flags & bit != 0) as u64);
            }
        }
    }
}

/// `bch2_snapshot_key_to_text`.
pub fn snapshot_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    snapshot_fields_to_text(pb, &Snapshot::read(v));
}

/// `bch2_snapshot_tree_to_text`.
pub fn snapshot_tree_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    let (master_subvol, root_snapshot) = snapshot_tree_fields(v);
    let _ = write!(
        pb,
        "subvol {} root snapshot {}",
        master_subvol, root_snapshot
    );
}

/// `bch2_subvolume_to_text`.
pub fn subvolume_to_text(pb: &mut Pb<'_, '_>, _ctx: &TextCtx<'_>, _k: &Bkey, v: &[u8]) {
    let s = Subvolume::read(v);
    let _ = write!(pb, "root {} snapshot id {}", s.inode, s.snapshot);
    if v.len() > SUBVOLUME_CREATION_PARENT {
        let _ = write!(pb, " creation_parent {}", s.creation_parent);
        let _ = write!(pb, " fs_parent {}", s.fs_path_parent);
    }
    if s.ro() {
        pb.str(" ro");
    }
    if s.snap() {
        pb.str(" snapshot");
    }
    let _ = write!(pb, " {}", subvolume_state_str(s.state_compat()));
}

#[cfg(test)]
mod tests {
    use super::super::super::printbuf::{FixedBuf, Printbuf, TextOut};
    use super::super::super::text::NoDevs;
    use super::super::format::{SNAPSHOT_STATE_LIVE, SNAPSHOT_STATE_WILL_DELETE};
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    fn show(f: fn(&mut Pb<'_, '_>, &TextCtx<'_>, &Bkey, &[u8]), v: &[u8]) -> String {
        let mut buf = [0u8; 1024];
        let mut out = FixedBuf::new(&mut buf);
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut out);
            f(&mut pb, &TextCtx { devs: &NoDevs }, &Bkey::default(), v);
        }
        String::from_utf8(out.as_bytes().to_vec()).unwrap()
    }

    fn le32s(x: &[u32]) -> Vec<u8> {
        x.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn snapshot() {
        // flags, parent, children, subvol, tree, depth, skip[3], btime(4), state, pad
        let v = le32s(&[
            2,
            0,
            0,
            0,
            1,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            SNAPSHOT_STATE_LIVE,
            0,
        ]);
        assert_eq!(
            show(snapshot_to_text, &v),
            "parent          0 children          0          0 subvol 1 tree 1 depth 0 skiplist 0 0 0 live"
        );
        // live with a stale will_delete flag and no subvol flag
        let v = le32s(&[
            1,
            7,
            0,
            0,
            1,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            SNAPSHOT_STATE_LIVE,
            0,
        ]);
        assert!(
            show(snapshot_to_text, &v).ends_with(" live will_delete_obsolete=1 subvol_obsolete=0")
        );
        let v = le32s(&[
            1,
            0,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            SNAPSHOT_STATE_WILL_DELETE,
            0,
        ]);
        assert!(show(snapshot_to_text, &v).ends_with(" will_delete"));
        // pre-state key (24 bytes, no depth): flags rule
        let v = le32s(&[0x13, 5, 0, 0, 1, 1]);
        assert_eq!(
            show(snapshot_to_text, &v),
            "parent          5 children          0          0 subvol 1 tree 1 depth 0 skiplist 0 0 0 will_delete (not upgraded, flags 0x13:will_delete,subvol)"
        );
        let v = le32s(&[0xf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1234, 0]);
        assert!(show(snapshot_to_text, &v)
            .ends_with(" state 0x1234 invalid (flags 0xf:will_delete,subvol,deleted,no_keys)"));
        assert!(show(snapshot_to_text, &[]).contains(" live (not upgraded, flags 0x0:)"));
    }

    #[test]
    fn snapshot_tree_and_subvolume() {
        let v = le32s(&[1, u32::MAX]);
        assert_eq!(
            show(snapshot_tree_to_text, &v),
            "subvol 1 root snapshot 4294967295"
        );

        let mut v = le32s(&[0, u32::MAX, 4096, 0, 0, 0, 0, 0, 0, 0, 0x4ad5447e, 0]);
        assert_eq!(
            show(subvolume_to_text, &v),
            "root 4096 snapshot id 4294967295 creation_parent 0 fs_parent 0 live"
        );
        v[0] = 3;
        assert!(show(subvolume_to_text, &v).ends_with(" ro snapshot live"));
        // old 16-byte value with the obsolete unlinked flag
        let v = le32s(&[4, 7, 4096, 0]);
        assert_eq!(
            show(subvolume_to_text, &v),
            "root 4096 snapshot id 7 unlinked"
        );
        let v = le32s(&[0, 7, 4096, 0, 0, 0, 0, 0, 0, 0, 5, 0]);
        assert!(show(subvolume_to_text, &v).ends_with(" (invalid state)"));
    }
}
