// SPDX-License-Identifier: GPL-2.0
//! The text of a node as it is on disk (`list -m nodes-ondisk`): each bset and its keys
//! in on-disk order, before any merge.

use core::fmt::Write as _;

use super::super::csum::Checksummer;
use super::super::text::{bkey_val_to_text, Pb, TextCtx};
use super::read::{walk_ondisk, KeyIter, NodeError, NodeHeader};

/// Prints the bsets of the node image `node` (the whole node, `node_sectors` long)
/// the way the reference's on-disk listing does, ending with a blank line. Prints
/// nothing when the node header itself is unreadable.
pub fn ondisk_to_text(
    pb: &mut Pb<'_, '_>,
    ctx: &TextCtx<'_>,
    node: &[u8],
    block_sectors: u32,
    node_sectors: u32,
    c: &dyn Checksummer,
) {
    let Some(h) = NodeHeader::parse(node) else {
        return;
    };
    let r = walk_ondisk(node, block_sectors, node_sectors, c, &mut |b| {
        let _ = writeln!(
            pb,
            "  offset {} version {}, journal seq {}",
            b.offset, b.version, b.journal_seq
        );
        pb.indent_add(2);
        for (k, v, _) in KeyIter::new(b.keys(node), h.format).map_while(|kv| kv.ok()) {
            bkey_val_to_text(pb, ctx, &k, v);
            pb.newline();
        }
        pb.indent_sub(2);
    });
    // The reference's words for a bset it cannot check.
    match r {
        Ok(()) => {}
        Err(NodeError::BadChecksum { offset: 0 }) => pb.str("invalid checksum\n"),
        Err(NodeError::BadChecksum { .. }) => pb.str("invalid checksum"),
        Err(e) => {
            let _ = writeln!(pb, "{}", e);
        }
    }
    pb.raw(b"\n");
}
