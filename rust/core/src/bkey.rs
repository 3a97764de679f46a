// SPDX-License-Identifier: GPL-2.0
//! Keys: `struct bkey` (unpacked), `struct bkey_format` and packed keys.
//!
//! A key in a bset starts with three header bytes (`u64s`, `format:7|needs_whiteout:1`,
//! `type`). Format 1 (`KEY_FORMAT_CURRENT`) is the 40-byte unpacked `struct bkey`;
//! format 0 is packed with the node's `bkey_format`: the fields are a big bit string
//! read from the most significant bit of the key's last u64 downwards.

use super::bpos::Bpos;
use super::bytes::{le32, le64, put, put_le32, put_le64, u8_at};

/// `BKEY_U64s`: an unpacked key header is five u64s.
pub const BKEY_U64S: usize = 5;
/// Bytes of the unpacked header.
pub const BKEY_BYTES: usize = BKEY_U64S * 8;
/// `KEY_PACKED_BITS_START`.
pub const KEY_PACKED_BITS_START: u32 = 24;
/// `KEY_FORMAT_LOCAL_BTREE`.
pub const KEY_FORMAT_LOCAL_BTREE: u8 = 0;
/// `KEY_FORMAT_CURRENT`.
pub const KEY_FORMAT_CURRENT: u8 = 1;
/// Number of fields in a key format.
pub const BKEY_NR_FIELDS: usize = 6;

/// Field indices of `bch_bkey_fields`.
pub mod field {
    /// p.inode
    pub const INODE: usize = 0;
    /// p.offset
    pub const OFFSET: usize = 1;
    /// p.snapshot
    pub const SNAPSHOT: usize = 2;
    /// size
    pub const SIZE: usize = 3;
    /// bversion.hi
    pub const VERSION_HI: usize = 4;
    /// bversion.lo
    pub const VERSION_LO: usize = 5;
}

/// `struct bkey_format` (56 bytes on disk).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BkeyFormat {
    /// Size of a packed key header, in u64s.
    pub key_u64s: u8,
    /// Number of fields (6).
    pub nr_fields: u8,
    /// Bits per field.
    pub bits_per_field: [u8; 6],
    /// Offset added to each unpacked field.
    pub field_offset: [u64; 6],
}

/// Bytes of `struct bkey_format` on disk.
pub const BKEY_FORMAT_BYTES: usize = 56;

/// Maximum value of each field in an unpacked key.
const FIELD_BITS_MAX: [u32; 6] = [64, 64, 32, 32, 32, 64];

impl BkeyFormat {
    /// `BKEY_FORMAT_CURRENT`: the identity format of unpacked keys.
    pub const CURRENT: BkeyFormat = BkeyFormat {
        key_u64s: BKEY_U64S as u8,
        nr_fields: BKEY_NR_FIELDS as u8,
        bits_per_field: [64, 64, 32, 32, 32, 64],
        field_offset: [0; 6],
    };

    /// Reads a format at `off` of `b`.
    pub fn read(b: &[u8], off: usize) -> Option<BkeyFormat> {
        let mut f = BkeyFormat {
            key_u64s: u8_at(b, off)?,
            nr_fields: u8_at(b, off + 1)?,
            ..Default::default()
        };
        for i in 0..6 {
            f.bits_per_field[i] = u8_at(b, off + 2 + i)?;
            f.field_offset[i] = le64(b, off + 8 + 8 * i)?;
        }
        Some(f)
    }

    /// Writes the format at `off` of `b` (the write side of [`BkeyFormat::read`]).
    pub fn write(&self, b: &mut [u8], off: usize) -> Option<()> {
        put(b, off, &[self.key_u64s, self.nr_fields])?;
        put(b, off + 2, &self.bits_per_field)?;
        for i in 0..6 {
            put_le64(b, off + 8 + 8 * i, self.field_offset[i])?;
        }
        Some(())
    }

    /// The packed value of each field of `k`, or `None` when one does not fit its
    /// bits (below the field's offset, or too large): then the key is stored
    /// unpacked.
    pub fn packed_fields(&self, k: &Bkey) -> Option<[u64; BKEY_NR_FIELDS]> {
        let mut v = [
            k.p.inode,
            k.p.offset,
            k.p.snapshot as u64,
            k.size as u64,
            k.version_hi as u64,
            k.version_lo,
        ];
        for (i, x) in v.iter_mut().enumerate() {
            let bits = self.bits_per_field[i] as u32;
            let d = x.checked_sub(self.field_offset[i])?;
            if bits < 64 && d >> bits != 0 {
                return None;
            }
            *x = d;
        }
        Some(v)
    }

    /// Total packed bits of the key fields.
    pub fn total_bits(&self) -> u32 {
        self.bits_per_field.iter().map(|&b| b as u32).sum()
    }

    /// `bch2_bkey_format_invalid`: checks that unpacking can neither overflow a field
    /// nor read past `key_u64s`. Returns a static description of the problem.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.nr_fields as usize != BKEY_NR_FIELDS {
            return Err("incorrect number of fields");
        }
        for (i, &field_bits) in FIELD_BITS_MAX.iter().enumerate() {
            let bits = self.bits_per_field[i] as u32;
            if bits > field_bits {
                return Err("field too large");
            }
            let max_packed = if bits == 0 {
                0
            } else {
                u64::MAX >> (64 - bits)
            };
            let field_max = if field_bits == 64 {
                u64::MAX
            } else {
                (1u64 << field_bits) - 1
            };
            // offset + max packed value must not exceed the field's maximum
            match self.field_offset[i].checked_add(max_packed) {
                Some(v) if v <= field_max => {}
                _ => return Err("offset + bits overflow"),
            }
        }
        let needed = self.total_bits() + KEY_PACKED_BITS_START;
        if (self.key_u64s as u32) * 64 < needed || self.key_u64s == 0 {
            return Err("key_u64s too small for fields");
        }
        if self.key_u64s as usize > BKEY_U64S + 1 && (self.key_u64s as u32) * 64 > needed + 64 {
            return Err("key_u64s too large");
        }
        Ok(())
    }
}

/// What a format must cover (`struct bkey_format_state`): each field's smallest
/// and largest value over the keys and positions added.
#[derive(Clone, Copy, Debug)]
pub struct FormatState {
    min: [u64; BKEY_NR_FIELDS],
    max: [u64; BKEY_NR_FIELDS],
}

impl Default for FormatState {
    fn default() -> Self {
        Self::new()
    }
}

impl FormatState {
    /// Nothing added yet (`bch2_bkey_format_init`): a size of 0 always fits.
    pub fn new() -> Self {
        let mut min = [u64::MAX; BKEY_NR_FIELDS];
        min[field::SIZE] = 0;
        FormatState {
            min,
            max: [0; BKEY_NR_FIELDS],
        }
    }

    fn add(&mut self, f: usize, v: u64) {
        self.min[f] = self.min[f].min(v);
        self.max[f] = self.max[f].max(v);
    }

    /// `bch2_bkey_format_add_pos`: a node's min or max key.
    pub fn add_pos(&mut self, p: Bpos) {
        self.add(field::INODE, p.inode);
        self.add(field::OFFSET, p.offset);
        self.add(field::SNAPSHOT, u64::from(p.snapshot));
    }

    /// `bch2_bkey_format_add_key`: every field of `k`.
    pub fn add_key(&mut self, k: &Bkey) {
        self.add_pos(k.p);
        self.add(field::SIZE, u64::from(k.size));
        self.add(field::VERSION_HI, u64::from(k.version_hi));
        self.add(field::VERSION_LO, k.version_lo);
    }

    /// `bch2_bkey_format_done`: the smallest format that packs everything added,
    /// each field then widened to a whole byte while the key's last u64 has room.
    pub fn done(&self) -> BkeyFormat {
        let mut f = BkeyFormat {
            nr_fields: BKEY_NR_FIELDS as u8,
            ..Default::default()
        };
        let mut bits = KEY_PACKED_BITS_START;
        for i in 0..BKEY_NR_FIELDS {
            let min = self.min[i].min(self.max[i]);
            let span = self.max[i] - min;
            set_format_field(&mut f, i, 64 - span.leading_zeros(), min);
            bits += u32::from(f.bits_per_field[i]);
        }
        f.key_u64s = bits.div_ceil(64) as u8;
        let mut spare = u32::from(f.key_u64s) * 64 - bits;
        for i in 0..BKEY_NR_FIELDS {
            let b = u32::from(f.bits_per_field[i]);
            let r = b.div_ceil(8) * 8 - b;
            if r <= spare {
                let off = f.field_offset[i];
                set_format_field(&mut f, i, b + r, off);
                spare -= r;
            }
        }
        f
    }
}

/// `set_format_field`: `bits` (at most the unpacked field's) from `offset`, the
/// offset lowered so that no packed value exceeds the unpacked field.
fn set_format_field(f: &mut BkeyFormat, i: usize, bits: u32, offset: u64) {
    let unpacked = FIELD_BITS_MAX[i];
    let unpacked_max = if unpacked == 64 {
        u64::MAX
    } else {
        (1u64 << unpacked) - 1
    };
    let bits = bits.min(unpacked);
    let offset = if bits == unpacked {
        0
    } else {
        offset.min(unpacked_max - ((1u64 << bits) - 1))
    };
    f.bits_per_field[i] = bits as u8;
    f.field_offset[i] = offset;
}

/// An unpacked key header (`struct bkey`), in host form.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Bkey {
    /// Size of key + value in u64s, as the key was stored (packed or not).
    pub u64s: u8,
    /// Key format: 0 = packed with the node's format, 1 = unpacked.
    pub format: u8,
    /// `needs_whiteout` bit.
    pub needs_whiteout: bool,
    /// Key type (`bch_bkey_type`).
    pub typ: u8,
    /// `bversion.hi`.
    pub version_hi: u32,
    /// `bversion.lo`.
    pub version_lo: u64,
    /// Extent size in sectors.
    pub size: u32,
    /// Position.
    pub p: Bpos,
}

impl Bkey {
    /// Start position of an extent key (`bkey_start_pos`): `p.offset - size`.
    pub fn start_pos(&self) -> Bpos {
        Bpos {
            offset: self.p.offset.wrapping_sub(self.size as u64),
            ..self.p
        }
    }

    /// Reads an unpacked (`KEY_FORMAT_CURRENT`) header at the start of `b`.
    pub fn read_unpacked(b: &[u8]) -> Option<Bkey> {
        let f = u8_at(b, 1)?;
        Some(Bkey {
            u64s: u8_at(b, 0)?,
            format: f & 0x7f,
            needs_whiteout: f & 0x80 != 0,
            typ: u8_at(b, 2)?,
            version_lo: le64(b, 4)?,
            version_hi: le32(b, 12)?,
            size: le32(b, 16)?,
            p: Bpos::read(b, 20)?,
        })
    }

    /// Unpacks the key at the start of `b` with format `f` (used when the key's format
    /// bits say 0). `b` must hold at least `f.key_u64s` u64s.
    pub fn unpack(b: &[u8], f: &BkeyFormat) -> Option<Bkey> {
        let mut k = Bkey::default();
        k.unpack_into(b, f)?;
        Some(k)
    }

    /// [`Bkey::unpack`] into `self` (in place). `self` is unchanged on `None`.
    /// Decoding many keys of one format is faster through [`Unpacker`].
    pub fn unpack_into(&mut self, b: &[u8], f: &BkeyFormat) -> Option<()> {
        Unpacker::new(f).unpack_into(self, b)
    }

    /// Writes the unpacked header (`KEY_FORMAT_CURRENT`, 40 bytes) at the start of
    /// `b` with this key's `u64s`: the write side of [`Bkey::read_unpacked`].
    pub fn write_unpacked(&self, b: &mut [u8]) -> Option<()> {
        put(
            b,
            0,
            &[
                self.u64s,
                KEY_FORMAT_CURRENT | ((self.needs_whiteout as u8) << 7),
                self.typ,
                0,
            ],
        )?;
        put_le64(b, 4, self.version_lo)?;
        put_le32(b, 12, self.version_hi)?;
        put_le32(b, 16, self.size)?;
        self.p.write(b, 20)
    }

    /// Packs the header with `f` into the first `f.key_u64s` u64s of `b` (the
    /// write side of [`Bkey::unpack`]); `None` when a field does not fit `f`.
    pub fn pack(&self, f: &BkeyFormat, b: &mut [u8]) -> Option<()> {
        let vals = f.packed_fields(self)?;
        let n = f.key_u64s as usize;
        if n == 0 || f.total_bits() + KEY_PACKED_BITS_START > n as u32 * 64 {
            return None;
        }
        let out = b.get_mut(..n * 8)?;
        out.fill(0);
        let mut words = [0u64; 32];
        let words = words.get_mut(..n)?;
        // Fields go from the top bit of the last word downwards.
        let (mut wi, mut used) = (n - 1, 0u32);
        for (i, &v) in vals.iter().enumerate() {
            let nb = f.bits_per_field[i] as u32;
            if nb == 0 {
                continue;
            }
            if used == 64 {
                wi = wi.checked_sub(1)?;
                used = 0;
            }
            let room = 64 - used;
            if nb <= room {
                words[wi] |= if nb == 64 { v } else { v << (room - nb) };
                used += nb;
            } else {
                let lo = nb - room;
                words[wi] |= v >> lo;
                wi = wi.checked_sub(1)?;
                words[wi] |= (v & ((1u64 << lo) - 1)) << (64 - lo);
                used = lo;
            }
        }
        for (i, w) in words.iter().enumerate() {
            put_le64(out, i * 8, *w)?;
        }
        put(
            out,
            0,
            &[
                self.u64s,
                KEY_FORMAT_LOCAL_BTREE | ((self.needs_whiteout as u8) << 7),
                self.typ,
            ],
        )
    }

    /// Decodes the key at the start of `b`: packed with `f` or unpacked, by its format
    /// bits. Returns the header and the number of bytes of key (the value follows).
    pub fn decode(b: &[u8], f: &BkeyFormat) -> Option<(Bkey, usize)> {
        let mut k = Bkey::default();
        let n = Bkey::decode_into(b, f, &mut k)?;
        Some((k, n))
    }

    /// [`Bkey::decode`] into `k`, returning the header's length.
    pub fn decode_into(b: &[u8], f: &BkeyFormat, k: &mut Bkey) -> Option<usize> {
        Unpacker::new(f).decode_into(b, k)
    }
}

/// Encodes key `k` with value `v` at the start of `out`: packed with `f` where its
/// fields fit, else unpacked (as upstream's `bch2_bkey_pack` falls back), with
/// `u64s` set for what was written; a value that is not a whole number of u64s is
/// zero padded. Returns the bytes written, or `None` when `out` is too small or the
/// key would be longer than `u64s` can say.
pub fn encode_key(k: &Bkey, v: &[u8], f: &BkeyFormat, out: &mut [u8]) -> Option<usize> {
    encode(
        k,
        v,
        f.packed_fields(k).is_some() && f.validate().is_ok(),
        f,
        out,
    )
}

/// Encodes key `k` with value `v` unpacked (as journal entries hold keys).
pub fn encode_key_unpacked(k: &Bkey, v: &[u8], out: &mut [u8]) -> Option<usize> {
    encode(k, v, false, &BkeyFormat::CURRENT, out)
}

fn encode(k: &Bkey, v: &[u8], packed: bool, f: &BkeyFormat, out: &mut [u8]) -> Option<usize> {
    let vlen = v.len().div_ceil(8) * 8;
    let hdr = if packed {
        f.key_u64s as usize * 8
    } else {
        BKEY_BYTES
    };
    let total = hdr + vlen;
    let u64s = u8::try_from(total / 8).ok()?;
    let dst = out.get_mut(..total)?;
    let key = Bkey {
        u64s,
        format: if packed {
            KEY_FORMAT_LOCAL_BTREE
        } else {
            KEY_FORMAT_CURRENT
        },
        ..*k
    };
    if packed {
        key.pack(f, dst)?;
    } else {
        key.write_unpacked(dst)?;
    }
    dst[hdr..hdr + v.len()].copy_from_slice(v);
    dst[hdr + v.len()..].fill(0);
    Some(total)
}

/// Where one field of a packed key lies, worked out once per format.
#[derive(Clone, Copy, Default)]
struct FieldLoc {
    /// Bits (0: the field is its offset alone).
    bits: u32,
    /// Index of the u64 holding the field's top bit.
    word: usize,
    /// Bits above the field in that word.
    shift: u32,
    /// The field's offset.
    offset: u64,
}

/// A key format made ready for unpacking many keys: the fields' places in the bit
/// string (read from the most significant bit of the key's last u64 downwards) are
/// worked out once, so a key unpacks with one or two loads and shifts per field.
#[derive(Clone, Copy)]
pub struct Unpacker {
    /// `key_u64s`, or 0 when the format cannot unpack (a field over 64 bits, or
    /// more bits than its u64s hold): every packed key is then refused.
    n: usize,
    fields: [FieldLoc; BKEY_NR_FIELDS],
}

impl Unpacker {
    /// Prepares `f`.
    pub fn new(f: &BkeyFormat) -> Unpacker {
        let mut u = Unpacker {
            n: f.key_u64s as usize,
            fields: [FieldLoc::default(); BKEY_NR_FIELDS],
        };
        let mut at = 0u32; // bits from the top of the last word
        for (i, loc) in u.fields.iter_mut().enumerate() {
            let bits = f.bits_per_field[i] as u32;
            let word = (at / 64) as usize;
            if bits > 64 || (bits > 0 && word >= u.n) {
                u.n = 0;
                break;
            }
            *loc = FieldLoc {
                bits,
                word: u.n.saturating_sub(1 + word),
                shift: at % 64,
                offset: f.field_offset[i],
            };
            at += bits;
        }
        if at > u.n as u32 * 64 {
            u.n = 0;
        }
        u
    }

    /// Unpacks the key at the start of `b` (its format bits saying 0) into `k`;
    /// `None`, with `k` unchanged, when `b` is shorter than the format's u64s or the
    /// format cannot unpack.
    #[inline(always)]
    pub fn unpack_into(&self, k: &mut Bkey, b: &[u8]) -> Option<()> {
        let n = self.n;
        if n == 0 {
            return None;
        }
        let kb = b.get(..n * 8)?;
        let word = |i: usize| le64(kb, i * 8).unwrap_or(0);
        let mut v = [0u64; BKEY_NR_FIELDS];
        for (out, l) in v.iter_mut().zip(self.fields.iter()) {
            let raw = if l.bits == 0 {
                0
            } else if l.shift + l.bits <= 64 {
                (word(l.word) << l.shift) >> (64 - l.bits)
            } else {
                // The field runs on into the next lower word (shift > 0 here, and
                // the low part is 1..=63 bits).
                let lo = l.shift + l.bits - 64;
                let hi = (word(l.word) << l.shift) >> l.shift;
                (hi << lo) | (word(l.word.wrapping_sub(1)) >> (64 - lo))
            };
            *out = raw.wrapping_add(l.offset);
        }
        let fb = kb.get(1).copied().unwrap_or(0);
        *k = Bkey {
            u64s: kb.first().copied().unwrap_or(0),
            format: fb & 0x7f,
            needs_whiteout: fb & 0x80 != 0,
            typ: kb.get(2).copied().unwrap_or(0),
            version_hi: v[field::VERSION_HI] as u32,
            version_lo: v[field::VERSION_LO],
            size: v[field::SIZE] as u32,
            p: Bpos {
                inode: v[field::INODE],
                offset: v[field::OFFSET],
                snapshot: v[field::SNAPSHOT] as u32,
            },
        };
        Some(())
    }

    /// [`Bkey::decode_into`] with this format: the key at the start of `b`, packed
    /// or unpacked by its format bits, into `k`; returns the header's length.
    #[inline(always)]
    pub fn decode_into(&self, b: &[u8], k: &mut Bkey) -> Option<usize> {
        match u8_at(b, 1)? & 0x7f {
            KEY_FORMAT_LOCAL_BTREE => {
                self.unpack_into(k, b)?;
                Some(self.n * 8)
            }
            KEY_FORMAT_CURRENT => {
                *k = Bkey::read_unpacked(b)?;
                Some(BKEY_BYTES)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(bits: [u8; 6], offs: [u64; 6]) -> BkeyFormat {
        let total: u32 = bits.iter().map(|&b| b as u32).sum::<u32>() + KEY_PACKED_BITS_START;
        BkeyFormat {
            key_u64s: total.div_ceil(64) as u8,
            nr_fields: 6,
            bits_per_field: bits,
            field_offset: offs,
        }
    }

    #[test]
    fn pack_round_trip() {
        let mut seed = [0u8; 4096];
        super::super::bytes::fill_pseudo_random(&mut seed, 7);
        let formats = [
            fmt([20, 40, 0, 0, 0, 0], [5, 100, 0, 0, 0, 0]),
            fmt([64, 64, 32, 32, 32, 64], [0; 6]),
            fmt([13, 51, 32, 7, 0, 9], [1, 0, 0, 0, 0, 3]),
            fmt([0, 64, 0, 0, 0, 0], [42, 0, 7, 0, 0, 0]),
        ];
        for (n, f) in formats.iter().enumerate() {
            assert_eq!(f.validate(), Ok(()), "format {}", n);
            for i in 0..100 {
                let r =
                    |j: usize| super::super::bytes::le64(&seed, (i * 40 + j * 8) % 4088).unwrap();
                let cap = |bits: u8, off: u64, x: u64| {
                    if bits == 64 {
                        x.wrapping_add(off).max(off)
                    } else {
                        off + (x & ((1u64 << bits) - 1))
                    }
                };
                let b = f.bits_per_field;
                let o = f.field_offset;
                let k = Bkey {
                    u64s: 0,
                    format: 0,
                    needs_whiteout: i % 3 == 0,
                    typ: (i % 40) as u8,
                    p: Bpos::new(
                        cap(b[0], o[0], r(0)),
                        cap(b[1], o[1], r(1)),
                        cap(b[2], o[2], r(2)) as u32,
                    ),
                    size: cap(b[3], o[3], r(3)) as u32,
                    version_hi: cap(b[4], o[4], r(4)) as u32,
                    version_lo: cap(b[5], o[5], r(5)),
                };
                let val = [0xabu8; 13];
                let mut out = [0u8; 128];
                let n = encode_key(&k, &val, f, &mut out).unwrap();
                assert_eq!(n, f.key_u64s as usize * 8 + 16);
                let (d, hdr) = Bkey::decode(&out[..n], f).unwrap();
                assert_eq!(hdr, f.key_u64s as usize * 8);
                assert_eq!(
                    d,
                    Bkey {
                        u64s: (n / 8) as u8,
                        format: 0,
                        ..k
                    }
                );
                assert_eq!(&out[hdr..hdr + 13], &val);
                assert!(out[hdr + 13..n].iter().all(|&x| x == 0));
            }
        }
    }

    #[test]
    fn computed_format_packs_what_was_added() {
        let mut st = FormatState::new();
        st.add_pos(Bpos::new(4096, 0, u32::MAX));
        st.add_pos(Bpos::new(4100, 1 << 20, u32::MAX));
        let f = st.done();
        assert_eq!(f.validate(), Ok(()));
        // inode 4096..4100 (3 bits, widened to a byte), offset 21 bits (to 24),
        // snapshot constant (0 bits), size 0: one u64.
        assert_eq!(f.key_u64s, 1);
        assert_eq!(f.field_offset[field::INODE], 4096);
        assert_eq!(f.bits_per_field[field::INODE], 8);
        assert_eq!(f.bits_per_field[field::OFFSET], 24);
        assert_eq!(f.bits_per_field[field::SNAPSHOT], 0);
        assert_eq!(f.field_offset[field::SNAPSHOT], u64::from(u32::MAX));
        let k = Bkey {
            p: Bpos::new(4099, 77, u32::MAX),
            ..Default::default()
        };
        assert!(f.packed_fields(&k).is_some());
        // Fields that take every bit have offset 0.
        let mut st = FormatState::new();
        st.add_pos(Bpos::MIN);
        st.add_pos(Bpos::MAX);
        let f = st.done();
        assert_eq!(f.bits_per_field[field::INODE], 64);
        assert_eq!(f.field_offset[field::INODE], 0);
        assert_eq!(f.validate(), Ok(()));
    }

    #[test]
    fn unpacked_when_it_does_not_fit() {
        let f = fmt([8, 8, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0]);
        let mut out = [0u8; 64];
        for p in [
            Bpos::new(9, 0, 0),
            Bpos::new(266, 0, 0),
            Bpos::new(10, 0, 1),
        ] {
            let k = Bkey {
                typ: 3,
                p,
                ..Default::default()
            };
            let n = encode_key(&k, &[], &f, &mut out).unwrap();
            assert_eq!(n, BKEY_BYTES);
            let (d, _) = Bkey::decode(&out, &f).unwrap();
            assert_eq!(
                d,
                Bkey {
                    u64s: 5,
                    format: KEY_FORMAT_CURRENT,
                    ..k
                }
            );
        }
        // Too small a buffer or too long a key: refused, never a panic.
        let k = Bkey::default();
        assert_eq!(encode_key(&k, &[0; 8], &f, &mut out[..10]), None);
        let mut big = [0u8; 4096];
        assert_eq!(encode_key(&k, &[0; 2100], &f, &mut big), None);
    }

    /// The unpacker as it was first written, kept as the model: a bit reader
    /// that takes each field from the top of the last u64 downwards, moving to the
    /// next lower u64 when one runs out.
    fn model_unpack(b: &[u8], f: &BkeyFormat) -> Option<[u64; 6]> {
        let n = f.key_u64s as usize;
        if n == 0 || b.len() < n * 8 {
            return None;
        }
        let (mut word, mut w, mut left) = (n - 1, le64(b, (n - 1) * 8)?, 64u32);
        let mut out = [0u64; 6];
        for (i, o) in out.iter_mut().enumerate() {
            let mut bits = f.bits_per_field[i] as u32;
            if bits > 64 {
                return None;
            }
            let mut v = 0u64;
            while bits > 0 {
                if left == 0 {
                    if word == 0 {
                        return None;
                    }
                    word -= 1;
                    w = le64(b, word * 8)?;
                    left = 64;
                }
                let take = bits.min(left);
                let top = w >> (64 - take);
                v = if take == 64 { top } else { (v << take) | top };
                w = if take == 64 { 0 } else { w << take };
                left -= take;
                bits -= take;
            }
            *o = v.wrapping_add(f.field_offset[i]);
        }
        Some(out)
    }

    #[test]
    fn unpacker_equals_the_model_on_random_formats() {
        let mut bytes = [0u8; 64];
        super::super::bytes::fill_pseudo_random(&mut bytes, 11);
        let mut rnd = super::super::bytes::pseudo_random_below(0x2545_f491_4f6c_dd1d);
        let mut ok = 0;
        for _ in 0..20000 {
            let mut bits = [0u8; 6];
            for b in bits.iter_mut() {
                // Mostly fitting widths, now and then one over 64 bits.
                *b = match rnd(20) {
                    0 => 65 + rnd(100) as u8,
                    1 => 64,
                    2 => 0,
                    _ => rnd(64) as u8,
                };
            }
            let f = BkeyFormat {
                key_u64s: rnd(8) as u8,
                nr_fields: 6,
                bits_per_field: bits,
                field_offset: [rnd(u64::MAX), rnd(9), 0, rnd(3), 0, u64::MAX - rnd(2)],
            };
            let b = &bytes[..rnd(65) as usize];
            let want = model_unpack(b, &f);
            let mut k = Bkey {
                typ: 77,
                ..Bkey::default()
            };
            let got = Unpacker::new(&f).unpack_into(&mut k, b);
            assert_eq!(got.is_some(), want.is_some(), "{f:?} len {}", b.len());
            match want {
                Some(v) => {
                    ok += 1;
                    assert_eq!(
                        [
                            k.p.inode,
                            k.p.offset,
                            k.p.snapshot as u64,
                            k.size as u64,
                            k.version_hi as u64,
                            k.version_lo
                        ],
                        [
                            v[0],
                            v[1],
                            v[2] as u32 as u64,
                            v[3] as u32 as u64,
                            v[4] as u32 as u64,
                            v[5]
                        ],
                        "{f:?}"
                    );
                    assert_eq!((k.u64s, k.typ), (b[0], b[2]));
                }
                None => assert_eq!(k.typ, 77, "unchanged on None"),
            }
        }
        assert!(ok > 2000, "too few formats unpacked: {ok}");
    }
}
