// SPDX-License-Identifier: GPL-2.0
//! Reading file data: which extent keys cover a byte range, what to read from a
//! device for a pointer, and turning what was read into file bytes (checksum,
//! decompression).
//!
//! A data extent's pointers each name a copy of the same encoded data: `crc`
//! describes it (checksum over the compressed bytes, compressed and uncompressed
//! sizes, and the offset of the key's live data in the uncompressed bytes). Plain
//! data (no checksum, no compression) is read just where needed; anything else is
//! read whole, checked, and decompressed.

use core::ops::ControlFlow;

use super::super::bkey::Bkey;
use super::super::csum::{self, Checksummer, Csum, CsumError};
use super::super::fs::tree::{Keys, Tree};
use super::super::ids::KeyType;
use super::super::text::DevNames;
use super::extents_format::{compression, Crc, DecodedPtr, DecodedPtrs, MEMBER_INVALID};

/// Sector size: extents count in 512-byte sectors.
pub const SECTOR: u64 = 512;

/// A data extent key overlapping a read.
#[derive(Clone, Copy, Debug)]
pub struct DataExtent<'a> {
    /// The key.
    pub k: Bkey,
    /// Its value (the entry list of an `extent`).
    pub v: &'a [u8],
    /// Bytes of the key's live data to skip (where the read starts in the key).
    pub skip: u64,
}

/// What the extents btree says about one overlap: the caller reads `Data` itself.
pub enum Piece<'a> {
    /// A data extent to read from a device.
    Data(DataExtent<'a>),
    /// A key type this code does not read (`reflink_p`, an unknown type): its
    /// bytes cannot be read.
    Unsupported(u8),
}

/// Fills `out` with the bytes of file `inum` at byte `pos`: holes, reservations and
/// unwritten space stay zero (`out` is zeroed first), inline data is copied, and
/// `read(at, piece, dst)` is called for what must come from a device or cannot be
/// read, `dst` being the part of `out` it covers. Stops early when `read` breaks.
///
/// Keys come in order of their end; a byte goes to the first key that covers it,
/// as upstream's read takes the extent at each position and goes on from its end.
/// So the parts handed out never overlap, even when a damaged btree's extents do.
pub fn fill<K: Keys>(
    tree: &Tree<'_, K>,
    inum: u64,
    pos: u64,
    out: &mut [u8],
    read: &mut dyn FnMut(Piece<'_>, &mut [u8]) -> ControlFlow<()>,
) -> Result<(), K::Error> {
    out.fill(0);
    let end = pos.saturating_add(out.len() as u64);
    let (s0, s1) = (pos / SECTOR, end.div_ceil(SECTOR));
    // Where the bytes not yet given to a key start.
    let mut done = pos;
    tree.extents(inum, s0, s1, &mut |k, v| {
        let kstart = k.start_pos().offset.saturating_mul(SECTOR);
        let kend = k.p.offset.saturating_mul(SECTOR);
        let (a, b) = (kstart.max(done), kend.min(end));
        if a >= b {
            return ControlFlow::Continue(());
        }
        done = b;
        let dst = &mut out[(a - pos) as usize..(b - pos) as usize];
        let skip = a - kstart;
        let t = |x: KeyType| k.typ == x as u8;
        if t(KeyType::InlineData) || t(KeyType::IndirectInlineData) {
            // Inline bytes start at the key's start; past them the key reads zero.
            let data = if t(KeyType::IndirectInlineData) {
                v.get(8..).unwrap_or(&[])
            } else {
                v
            };
            let from = (skip as usize).min(data.len());
            let n = dst.len().min(data.len() - from);
            dst[..n].copy_from_slice(&data[from..from + n]);
            ControlFlow::Continue(())
        } else if t(KeyType::Extent) {
            read(Piece::Data(DataExtent { k: *k, v, skip }), dst)
        } else if t(KeyType::Reservation)
            || t(KeyType::Deleted)
            || t(KeyType::Whiteout)
            || t(KeyType::ExtentWhiteout)
        {
            ControlFlow::Continue(())
        } else {
            read(Piece::Unsupported(k.typ), dst)
        }
    })
}

/// The copies of a data extent a read may use, in order: its pointers less the
/// placeholders of dropped devices (`BCH_SB_MEMBER_INVALID`) and cached copies
/// whose bucket has been reused (stale, as `devs` knows bucket gens).
pub fn replicas<'a>(
    x: &DataExtent<'a>,
    devs: &'a dyn DevNames,
) -> impl Iterator<Item = DecodedPtr> + 'a {
    DecodedPtrs::new(x.v, x.k.size).filter(move |p| {
        p.ptr.dev != MEMBER_INVALID
            && !(p.ptr.cached
                && devs
                    .ptr_stale(u32::from(p.ptr.dev), p.ptr.offset, p.ptr.gen)
                    .is_some_and(|s| s != 0))
    })
}

/// What to read from a device for `len` bytes at `skip` into a pointer's live data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Plan {
    /// Device index.
    pub dev: u8,
    /// First sector to read.
    pub sector: u64,
    /// Bytes to read (whole sectors).
    pub bytes: usize,
    /// The whole encoded extent is read: check it and decompress it.
    pub whole: bool,
    /// Where the wanted bytes start in the decoded data.
    pub start: usize,
    /// Bytes wanted.
    pub len: usize,
    /// Scratch bytes [`decode`] needs to decompress into (the uncompressed
    /// extent); 0 when the data is not compressed.
    pub scratch: usize,
}

/// The read of `len` bytes at `skip` into the live data of pointer `p`.
pub fn plan(p: &DecodedPtr, skip: u64, len: usize) -> Plan {
    let c = &p.crc;
    let live = c.offset as u64 * SECTOR + skip;
    if c.csum_type == csum::ty::NONE && !c.is_compressed() {
        let sector = live / SECTOR;
        let start = (live % SECTOR) as usize;
        Plan {
            dev: p.ptr.dev,
            sector: p.ptr.offset + sector,
            bytes: (start + len).div_ceil(SECTOR as usize) * SECTOR as usize,
            whole: false,
            start,
            len,
            scratch: 0,
        }
    } else {
        Plan {
            dev: p.ptr.dev,
            sector: p.ptr.offset,
            bytes: c.compressed_size as usize * SECTOR as usize,
            whole: true,
            start: live as usize,
            len,
            scratch: if c.is_compressed() {
                c.uncompressed_size as usize * SECTOR as usize
            } else {
                0
            },
        }
    }
}

/// Why read data could not be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataError {
    /// The checksum does not match: (stored, computed).
    Csum(Csum, Csum),
    /// The checksum type cannot be computed (encrypted, unknown).
    CsumType(CsumError),
    /// Decompression failed or did not give the expected size.
    Decompress(u8),
    /// A compression type this code does not know.
    CompressionType(u8),
    /// The extent's sizes do not fit what was read (a corrupt key).
    BadSize,
}

/// Decompression a caller provides (the kernel's libraries, or crates).
pub trait Decompressor {
    /// Decompresses `src` (gzip: raw deflate; zstd: one frame without bcachefs's
    /// length prefix) into all of `dst`; `false` unless exactly `dst.len()` bytes
    /// came out.
    fn decompress(&self, typ: u8, src: &[u8], dst: &mut [u8]) -> bool;
}

/// The stored checksum of `c`, as [`csum::checksum`] computes it.
fn stored_csum(c: &Crc) -> Csum {
    Csum {
        lo: c.csum_lo,
        hi: c.csum_hi,
    }
}

/// Turns `raw` (what [`plan`] said to read) into the wanted bytes: checks the
/// checksum and decompresses (into `scratch`, at least `plan.scratch` bytes) when
/// the whole extent was read.
pub fn decode<'a>(
    p: &DecodedPtr,
    plan: &Plan,
    raw: &'a [u8],
    scratch: &'a mut [u8],
    c: &dyn Checksummer,
    d: &dyn Decompressor,
) -> Result<&'a [u8], DataError> {
    let crc = &p.crc;
    let raw = raw.get(..plan.bytes).ok_or(DataError::BadSize)?;
    let data: &[u8] = if plan.whole {
        if crc.csum_type != csum::ty::NONE {
            let got = csum::checksum(c, crc.csum_type, raw).map_err(DataError::CsumType)?;
            if got != stored_csum(crc) {
                return Err(DataError::Csum(stored_csum(crc), got));
            }
        }
        if crc.is_compressed() {
            let dst = scratch.get_mut(..plan.scratch).ok_or(DataError::BadSize)?;
            decompress(crc.compression_type, raw, dst, d)?;
            dst
        } else {
            raw
        }
    } else {
        raw
    };
    data.get(plan.start..plan.start + plan.len)
        .ok_or(DataError::BadSize)
}

/// Decompresses the encoded bytes `src` of compression type `typ` into all of `dst`.
pub fn decompress(
    typ: u8,
    src: &[u8],
    dst: &mut [u8],
    d: &dyn Decompressor,
) -> Result<(), DataError> {
    let ok = match typ {
        compression::LZ4 | compression::LZ4_OLD => lz4_decompress(src, dst),
        compression::GZIP => d.decompress(typ, src, dst),
        compression::ZSTD => {
            // A le32 length of the frame, then the frame; the rest is padding.
            let n = super::super::bytes::le32(src, 0).ok_or(DataError::Decompress(typ))? as usize;
            let frame = src
                .get(4..)
                .and_then(|s| s.get(..n))
                .ok_or(DataError::Decompress(typ))?;
            d.decompress(typ, frame, dst)
        }
        // None and incompressible are not compressed: asking is a caller's bug.
        _ => return Err(DataError::CompressionType(typ)),
    };
    if ok {
        Ok(())
    } else {
        Err(DataError::Decompress(typ))
    }
}

/// Decodes one lz4 block from `src` until `dst` is full (`LZ4_decompress_safe_partial`
/// with the target size `dst.len()`): the encoded data may be followed by padding.
/// `false` on a malformed block or one that ends before `dst` is full.
pub fn lz4_decompress(src: &[u8], dst: &mut [u8]) -> bool {
    let (mut i, mut o) = (0usize, 0usize);
    let ext_len = |i: &mut usize, mut n: usize| -> Option<usize> {
        loop {
            let b = *src.get(*i)?;
            *i += 1;
            n = n.checked_add(b as usize)?;
            if b != 255 {
                return Some(n);
            }
        }
    };
    loop {
        let Some(&token) = src.get(i) else {
            return o == dst.len();
        };
        i += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            match ext_len(&mut i, lit) {
                Some(n) => lit = n,
                None => return false,
            }
        }
        let n = lit.min(dst.len() - o);
        let Some(s) = src.get(i..i + n) else {
            return false;
        };
        dst[o..o + n].copy_from_slice(s);
        i += n;
        o += n;
        if o == dst.len() {
            return true;
        }
        let Some(off) = super::super::bytes::le16(src, i) else {
            return false;
        };
        i += 2;
        let off = off as usize;
        if off == 0 || off > o {
            return false;
        }
        let mut mlen = (token & 15) as usize;
        if mlen == 15 {
            match ext_len(&mut i, mlen) {
                Some(n) => mlen = n,
                None => return false,
            }
        }
        let mlen = (mlen + 4).min(dst.len() - o);
        // Byte by byte: the match may overlap what it copies.
        for _ in 0..mlen {
            dst[o] = dst[o - off];
            o += 1;
        }
        if o == dst.len() {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::extents_format::Ptr;
    use super::*;

    #[test]
    fn lz4_literals_matches_and_padding() {
        // "abcabcabcabc!" : 3 literals, a match of 9 at offset 3, then literal "!".
        let src = [0x35, b'a', b'b', b'c', 3, 0, 0x10, b'!', 0, 0, 0, 0];
        let mut dst = [0u8; 13];
        assert!(lz4_decompress(&src, &mut dst));
        assert_eq!(&dst, b"abcabcabcabc!");
        // Asked for less: stops once full.
        let mut short = [0u8; 5];
        assert!(lz4_decompress(&src, &mut short));
        assert_eq!(&short, b"abcab");
        // Asked for more than the block holds, or a bad offset: refused.
        let mut long = [0u8; 14];
        assert!(!lz4_decompress(&src[..8], &mut long));
        let bad = [0x15, b'a', 9, 0];
        assert!(!lz4_decompress(&bad, &mut [0u8; 8]));
    }

    #[test]
    fn fill_gives_each_byte_to_the_first_key_covering_it() {
        extern crate alloc;
        use super::super::super::bpos::Bpos;
        use super::super::super::fs::tree::{Keys, Tree};
        use alloc::vec::Vec;
        struct Two(Vec<(Bkey, Vec<u8>)>);
        impl Keys for Two {
            type Error = ();
            fn range(
                &self,
                btree: u32,
                from: Bpos,
                to: Bpos,
                f: &mut dyn FnMut(&Bkey, &[u8]) -> ControlFlow<()>,
            ) -> Result<(), ()> {
                for (k, v) in self
                    .0
                    .iter()
                    .filter(|(k, _)| btree == 0 && k.p >= from && k.p <= to)
                {
                    if f(k, v).is_break() {
                        break;
                    }
                }
                Ok(())
            }
        }
        let inline = |end: u64, size: u32| Bkey {
            typ: KeyType::InlineData as u8,
            size,
            p: Bpos::new(7, end, u32::MAX),
            ..Bkey::default()
        };
        // Damaged: sectors 2..4 in one key, 0..6 in the next (keys go by their end).
        let keys = Two(alloc::vec![
            (inline(4, 2), alloc::vec![b'a'; 1024]),
            (inline(6, 6), alloc::vec![b'b'; 3072]),
        ]);
        let t = Tree::new(&keys, &NoCsum, u32::MAX);
        let mut out = [0xffu8; 3072];
        let mut calls = 0;
        fill(&t, 7, 0, &mut out, &mut |_, _| {
            calls += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(calls, 0);
        // 0..1 KiB: no key starts there before the first one's end (a hole, as
        // upstream reads it); 1..2 KiB the first key's; 2..3 KiB the second's.
        assert!(out[..1024].iter().all(|&b| b == 0));
        assert!(out[1024..2048].iter().all(|&b| b == b'a'));
        assert!(out[2048..].iter().all(|&b| b == b'b'));
    }

    struct NoCsum;
    impl Checksummer for NoCsum {
        fn crc32c(&self, _: u32, _: &[u8]) -> u32 {
            0
        }
        fn crc64_be(&self, _: u64, _: &[u8]) -> u64 {
            0
        }
        fn xxh64(&self, _: &[u8]) -> u64 {
            0
        }
    }

    fn dp(crc: Crc) -> DecodedPtr {
        DecodedPtr {
            ptr: Ptr {
                dev: 1,
                offset: 1000,
                ..Default::default()
            },
            crc,
            ec: None,
        }
    }

    #[test]
    fn plain_data_is_read_where_needed_encoded_data_whole() {
        let mut crc = Crc::none(16);
        crc.offset = 2;
        let p = plan(&dp(crc), 700, 100);
        assert_eq!(
            p,
            Plan {
                dev: 1,
                sector: 1000 + 2 + 1,
                bytes: 512,
                whole: false,
                start: 188,
                len: 100,
                scratch: 0
            }
        );
        crc.csum_type = csum::ty::CRC32C;
        crc.compressed_size = 8;
        let p = plan(&dp(crc), 700, 100);
        assert_eq!(
            (p.sector, p.bytes, p.whole, p.start),
            (1000, 4096, true, 1024 + 700)
        );
    }
}
