// SPDX-License-Identifier: GPL-2.0
//! Bounds-checked little-endian readers over byte slices. Every accessor returns an
//! `Option` or a default instead of panicking, so corrupt input can never index out of
//! bounds.

/// Reads `N` bytes at `off`, or `None` when they are not all inside `b`.
#[inline]
pub fn arr<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    let s = b.get(off..end)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Some(a)
}

/// Little-endian u8 at `off`.
#[inline]
pub fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

/// Little-endian u16 at `off`.
#[inline]
pub fn le16(b: &[u8], off: usize) -> Option<u16> {
    arr::<2>(b, off).map(u16::from_le_bytes)
}

/// Little-endian u32 at `off`.
#[inline]
pub fn le32(b: &[u8], off: usize) -> Option<u32> {
    arr::<4>(b, off).map(u32::from_le_bytes)
}

/// Little-endian u64 at `off`.
#[inline]
pub fn le64(b: &[u8], off: usize) -> Option<u64> {
    arr::<8>(b, off).map(u64::from_le_bytes)
}

/// Like [`le64`] but reads past the end as zero: for values shorter than their struct
/// (older versions wrote fewer fields; missing fields are zero, as upstream treats them).
#[inline]
pub fn le64z(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    if off < b.len() {
        let n = core::cmp::min(8, b.len() - off);
        a[..n].copy_from_slice(&b[off..off + n]);
    }
    u64::from_le_bytes(a)
}

/// Like [`le64z`] for u32.
#[inline]
pub fn le32z(b: &[u8], off: usize) -> u32 {
    le64z(b, off) as u32
}

/// Like [`le64z`] for u16.
#[inline]
pub fn le16z(b: &[u8], off: usize) -> u16 {
    le64z(b, off) as u16
}

/// Like [`le64z`] for u8.
#[inline]
pub fn u8z(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// Writes `src` at `off` of `b`: the write twin of [`arr`]. `None` (and nothing
/// written) when it does not fit.
#[inline]
pub fn put(b: &mut [u8], off: usize, src: &[u8]) -> Option<()> {
    let end = off.checked_add(src.len())?;
    b.get_mut(off..end)?.copy_from_slice(src);
    Some(())
}

/// Writes a little-endian u16 at `off`.
#[inline]
pub fn put_le16(b: &mut [u8], off: usize, v: u16) -> Option<()> {
    put(b, off, &v.to_le_bytes())
}

/// Writes a little-endian u32 at `off`.
#[inline]
pub fn put_le32(b: &mut [u8], off: usize, v: u32) -> Option<()> {
    put(b, off, &v.to_le_bytes())
}

/// Writes a little-endian u64 at `off`.
#[inline]
pub fn put_le64(b: &mut [u8], off: usize, v: u64) -> Option<()> {
    put(b, off, &v.to_le_bytes())
}

/// `v` with bits `[lo, hi)` set to `x` (the write side of [`bits`]).
#[inline]
pub fn set_bits(v: u64, lo: u32, hi: u32, x: u64) -> u64 {
    let w = hi - lo;
    let mask = if w >= 64 { u64::MAX } else { (1u64 << w) - 1 };
    (v & !(mask << lo)) | ((x & mask) << lo)
}

/// Bits `[lo, hi)` of `v` (upstream's BITMASK/LE_BITMASK accessors).
#[inline]
pub fn bits(v: u64, lo: u32, hi: u32) -> u64 {
    let w = hi - lo;
    if w >= 64 {
        v >> lo
    } else {
        (v >> lo) & ((1u64 << w) - 1)
    }
}

/// A 16-byte UUID.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Uuid(pub [u8; 16]);

impl core::fmt::Display for Uuid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = &self.0;
        for (i, x) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{:02x}", x)?;
        }
        Ok(())
    }
}

/// One step of xorshift64.
#[cfg(test)]
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Test input: fills `v` with an xorshift64 stream seeded from `seed` (the same
/// bytes every run), for tests that feed decoders garbage.
#[cfg(test)]
pub(crate) fn fill_pseudo_random(v: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    for b in v.iter_mut() {
        *b = xorshift(&mut x) as u8;
    }
}

/// Test input: an xorshift64 stream from `state` (not 0), each draw below `n`.
#[cfg(test)]
pub(crate) fn pseudo_random_below(mut state: u64) -> impl FnMut(u64) -> u64 {
    move |n| xorshift(&mut state) % n
}
