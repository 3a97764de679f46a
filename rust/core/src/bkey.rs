// SPDX-License-Identifier: GPL-2.0
//! Keys: `struct bkey` (unpacked), `struct bkey_format` and packed keys.
//!
//! A key in a bset starts with three header bytes (`u64s`, `format:7|needs_whiteout:1`,
//! `type`). Format 1 (`KEY_FORMAT_CURRENT`) is the 40-byte unpacked `struct bkey`;
//! format 0 is packed with the node's `bkey_format`: the fields are a big bit string
//! read from the most significant bit of the key's last u64 downwards.

use super::bpos::Bpos;
use super::bytes::{le32, le64, u8_at};

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
        let fb = u8_at(b, 1)?;
        let mut k = Bkey {
            u64s: u8_at(b, 0)?,
            format: fb & 0x7f,
            needs_whiteout: fb & 0x80 != 0,
            typ: u8_at(b, 2)?,
            ..Default::default()
        };
        let n = f.key_u64s as usize;
        if n == 0 || b.len() < n * 8 {
            return None;
        }
        let mut st = Unpack {
            b,
            word: n - 1,
            w: le64(b, (n - 1) * 8)?,
            bits: 64,
        };
        let mut v = [0u64; BKEY_NR_FIELDS];
        for (i, out) in v.iter_mut().enumerate() {
            *out = st
                .field(f.bits_per_field[i] as u32)?
                .wrapping_add(f.field_offset[i]);
        }
        k.p.inode = v[field::INODE];
        k.p.offset = v[field::OFFSET];
        k.p.snapshot = v[field::SNAPSHOT] as u32;
        k.size = v[field::SIZE] as u32;
        k.version_hi = v[field::VERSION_HI] as u32;
        k.version_lo = v[field::VERSION_LO];
        Some(k)
    }

    /// Decodes the key at the start of `b`: packed with `f` or unpacked, by its format
    /// bits. Returns the header and the number of bytes of key (the value follows).
    pub fn decode(b: &[u8], f: &BkeyFormat) -> Option<(Bkey, usize)> {
        match u8_at(b, 1)? & 0x7f {
            KEY_FORMAT_LOCAL_BTREE => Some((Bkey::unpack(b, f)?, f.key_u64s as usize * 8)),
            KEY_FORMAT_CURRENT => Some((Bkey::read_unpacked(b)?, BKEY_BYTES)),
            _ => None,
        }
    }
}

/// Bit reader for packed keys: reads fields from the high word downwards.
struct Unpack<'a> {
    b: &'a [u8],
    word: usize,
    w: u64,
    bits: u32,
}

impl Unpack<'_> {
    fn field(&mut self, mut bits: u32) -> Option<u64> {
        if bits > 64 {
            return None;
        }
        let mut v = 0u64;
        if bits >= self.bits {
            // Take what is left of this word, then move to the next lower one.
            v = if self.bits == 0 {
                0
            } else {
                self.w >> (64 - self.bits)
            };
            bits -= self.bits;
            if self.word == 0 {
                // Only legal when nothing more is needed.
                if bits == 0 {
                    self.bits = 0;
                    self.w = 0;
                    return Some(v);
                }
                return None;
            }
            self.word -= 1;
            self.w = le64(self.b, self.word * 8)?;
            self.bits = 64;
            v = v.checked_shl(bits).unwrap_or(0);
        }
        if bits > 0 {
            v |= self.w >> (64 - bits);
            self.w = if bits == 64 { 0 } else { self.w << bits };
            self.bits -= bits;
        }
        Some(v)
    }
}
