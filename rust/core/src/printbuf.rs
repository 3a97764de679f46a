// SPDX-License-Identifier: GPL-2.0
//! A printbuf with upstream's indentation and tabstop rules, over a caller's buffer.
//!
//! Exact output parity with the reference tool depends on these rules, including their
//! corners: `indent_add` emits spaces at once; `indent_sub` takes them back only when
//! the line holds nothing but indentation; a `'\n'` inside formatted text starts an
//! indented line only while an indent or tabstop is set (otherwise it is a raw byte
//! and the "start of line" is not moved). A `'\t'` in text pads to one column short
//! of the next tabstop (the tab itself counts; a literal tab when none is left), while
//! [`Printbuf::tab`] (`prt_tab`) pads to it; `'\r'` right-justifies the field since
//! the previous one to the tabstop.

use core::fmt;

/// Where printed bytes go. The core never allocates: the caller provides this.
pub trait TextOut {
    /// Append bytes.
    fn push(&mut self, s: &[u8]);
    /// Bytes written so far.
    fn len(&self) -> usize;
    /// Whether nothing was written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Drop everything after `len`.
    fn truncate(&mut self, len: usize);
    /// Insert `n` spaces at `at`, shifting what follows (for right-justified fields).
    fn insert_spaces(&mut self, at: usize, n: usize);
}

const MAX_TABSTOPS: usize = 8;

/// Bytes of the stack line a newline (with its indent), or a short field line and
/// its newline, goes out in as one push.
const LINE: usize = 64;

/// Printing state on top of a [`TextOut`].
pub struct Printbuf<'o, O: TextOut + ?Sized> {
    /// The buffer.
    pub out: &'o mut O,
    indent: usize,
    last_newline: usize,
    last_field: usize,
    tabstops: [usize; MAX_TABSTOPS],
    nr_tabstops: usize,
    cur_tabstop: usize,
    has_indent_or_tabstops: bool,
}

impl<'o, O: TextOut + ?Sized> Printbuf<'o, O> {
    /// A printbuf appending to `out`; the current line is taken to start at its end.
    pub fn new(out: &'o mut O) -> Self {
        let pos = out.len();
        Printbuf {
            out,
            indent: 0,
            last_newline: pos,
            last_field: pos,
            tabstops: [0; MAX_TABSTOPS],
            nr_tabstops: 0,
            cur_tabstop: 0,
            has_indent_or_tabstops: false,
        }
    }

    fn pos(&self) -> usize {
        self.out.len()
    }

    fn spaces(&mut self, n: usize) {
        const SP: [u8; 32] = [b' '; 32];
        let mut n = n;
        while n > 0 {
            let k = n.min(32);
            self.out.push(&SP[..k]);
            n -= k;
        }
    }

    /// `prt_newline`: newline, then the current indent.
    pub fn newline(&mut self) {
        self.line_end(&mut [0; LINE], 0);
    }

    /// The first `n` bytes of `line` raw, then [`Printbuf::newline`]: written after
    /// them into `line` and pushed with them when they fit (a newline and a usual
    /// indent always do).
    fn line_end(&mut self, line: &mut [u8; LINE], n: usize) {
        let i = self.indent;
        let before = self.pos();
        if let Some(nl) = line.get_mut(n..).and_then(|l| l.get_mut(..1 + i)) {
            nl.fill(b' ');
            if let Some(c) = nl.first_mut() {
                *c = b'\n';
            }
            self.out.push(line.get(..n + 1 + i).unwrap_or(&[]));
            // Where the newline landed (a sink that ran out of room may have
            // taken less than the push).
            self.last_newline = (before + n + 1).min(self.pos());
        } else {
            self.out.push(line.get(..n).unwrap_or(&[]));
            self.out.push(b"\n");
            self.last_newline = self.pos();
            self.spaces(i);
        }
        self.last_field = self.pos();
        self.cur_tabstop = 0;
    }

    /// `printbuf_indent_add`: raise the indent and emit that many spaces now.
    pub fn indent_add(&mut self, n: usize) {
        self.indent += n;
        self.spaces(n);
        self.has_indent_or_tabstops = true;
    }

    /// `printbuf_indent_add_nextline`: raise the indent from the next line on.
    pub fn indent_add_nextline(&mut self, n: usize) {
        self.indent += n;
        self.has_indent_or_tabstops = true;
    }

    /// `printbuf_indent_sub`: lower the indent, taking back the spaces of a line that
    /// holds nothing but indentation.
    pub fn indent_sub(&mut self, n: usize) {
        let n = n.min(self.indent);
        if self.last_newline + self.indent == self.pos() {
            let p = self.pos() - n;
            self.out.truncate(p);
        }
        self.indent -= n;
        if self.indent == 0 && self.nr_tabstops == 0 {
            self.has_indent_or_tabstops = false;
        }
    }

    /// Current indent.
    pub fn indent(&self) -> usize {
        self.indent
    }

    /// `printbuf_tabstop_push`: a tabstop `n` columns after the previous one.
    pub fn tabstop_push(&mut self, n: usize) {
        if self.nr_tabstops < MAX_TABSTOPS {
            let prev = if self.nr_tabstops > 0 {
                self.tabstops[self.nr_tabstops - 1]
            } else {
                0
            };
            self.tabstops[self.nr_tabstops] = prev + n;
            self.nr_tabstops += 1;
            self.has_indent_or_tabstops = true;
        }
    }

    /// `printbuf_tabstops_reset`.
    pub fn tabstops_reset(&mut self) {
        self.nr_tabstops = 0;
        self.cur_tabstop = 0;
        if self.indent == 0 {
            self.has_indent_or_tabstops = false;
        }
    }

    fn cur_tabstop(&self) -> usize {
        if self.cur_tabstop < self.nr_tabstops {
            self.tabstops[self.cur_tabstop]
        } else {
            0
        }
    }

    fn linelen(&self) -> usize {
        self.pos() - self.last_newline
    }

    /// `prt_tab`: pad with spaces to the next tabstop.
    pub fn tab(&mut self) {
        let ts = self.cur_tabstop();
        if ts == 0 {
            return;
        }
        let n = ts.saturating_sub(self.linelen());
        self.spaces(n);
        self.last_field = self.pos();
        self.cur_tabstop += 1;
    }

    /// A `'\t'` inside printed text, as upstream's printf path handles it: the tab
    /// counts as one column, so the padding stops one short of the tabstop; with no
    /// tabstop left it stays a literal tab.
    fn text_tab(&mut self) {
        let ts = self.cur_tabstop();
        if ts == 0 {
            self.out.push(b"\t");
            return;
        }
        let n = ts.saturating_sub(self.linelen() + 1);
        self.spaces(n);
        self.last_field = self.pos();
        self.cur_tabstop += 1;
    }

    /// `prt_tab_rjust`: right-justify the text since the last field to the tabstop.
    pub fn tab_rjust(&mut self) {
        let ts = self.cur_tabstop();
        if ts == 0 {
            return;
        }
        let ll = self.linelen();
        if ts > ll {
            let at = self.last_field;
            self.out.insert_spaces(at, ts - ll);
        }
        self.last_field = self.pos();
        self.cur_tabstop += 1;
    }

    /// Append raw bytes, with no newline or tab processing.
    pub fn raw(&mut self, s: &[u8]) {
        self.out.push(s);
    }

    /// Append text, processing `\n`, `\t` and `\r` as upstream does when an indent or
    /// a tabstop is set.
    pub fn str(&mut self, s: &str) {
        let mut rest = s.as_bytes();
        if self.has_indent_or_tabstops {
            while let Some(i) = special_at(rest) {
                let (text, tail) = rest.split_at(i);
                self.out.push(text);
                match tail.first() {
                    Some(b'\n') => self.newline(),
                    Some(b'\t') => self.text_tab(),
                    _ => self.tab_rjust(),
                }
                rest = tail.get(1..).unwrap_or(&[]);
            }
        }
        self.out.push(rest);
    }

    /// `name=v` and a `'\n'` as text: what `writeln!(pb, "{}={}", name, v)` prints
    /// when `name` holds no `'\n'`, `'\t'` or `'\r'` (it goes out raw, as a field
    /// name from a table does), in one push when it is short and an indent is set
    /// (the inode printer's lines).
    pub fn field_u64(&mut self, name: &str, v: u64) {
        let n = name.as_bytes();
        // A short name, '=' and the (at most 20) digits fit a line.
        if n.len() > 40 {
            self.raw(n);
            self.str("=");
            self.u64(v);
            return self.str("\n");
        }
        let mut line = [0u8; LINE];
        let (head, rest) = line.split_at_mut(n.len());
        head.copy_from_slice(n);
        let mut len = n.len();
        if let Some(eq) = rest.first_mut() {
            *eq = b'=';
            len += 1;
        }
        len += decimal(v, line.get_mut(len..).unwrap_or(&mut []));
        // The newline as `str("\n")` prints it: with the indent it starts, or raw
        // when no indent or tabstop is set.
        if self.has_indent_or_tabstops {
            self.line_end(&mut line, len);
        } else {
            self.out.push(line.get(..len).unwrap_or(&[]));
            self.out.push(b"\n");
        }
    }

    /// `v` in decimal (what `{}` prints), without going through `core::fmt`: the
    /// listings print millions of numbers.
    pub fn u64(&mut self, v: u64) {
        let mut d = [0u8; 20];
        let n = decimal(v, &mut d);
        self.out.push(d.get(..n).unwrap_or(&[]));
    }

    /// `v` in lowercase hexadecimal (what `{:x}` prints).
    pub fn hex(&mut self, v: u64) {
        let mut d = [0u8; 16];
        let mut i = d.len();
        let mut v = v;
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.out.push(d.get(i..).unwrap_or(&[]));
    }

    /// Append `n` copies of byte `c`.
    pub fn chars(&mut self, c: u8, n: usize) {
        for _ in 0..n {
            self.out.push(&[c]);
        }
    }
}

/// Writes `v` in decimal at the start of `out` and returns the digits' count (none
/// when `out` is short: 20 always fit).
fn decimal(v: u64, out: &mut [u8]) -> usize {
    let mut n = 1;
    let mut rest = v / 10;
    while rest > 0 {
        n += 1;
        rest /= 10;
    }
    let Some(digits) = out.get_mut(..n) else {
        return 0;
    };
    let mut v = v;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    n
}

/// The first `'\n'`, `'\t'` or `'\r'` in `b`, eight bytes at a time: text rarely
/// holds one, and this scan runs over every byte printed.
fn special_at(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Nonzero exactly when some byte of `x` is below 0x0e (all three are).
    let maybe = |x: u64| x.wrapping_sub(ONES * 0x0e) & !x & HIGH != 0;
    let is_special = |c: u8| matches!(c, b'\n' | b'\t' | b'\r');
    let words = b.chunks_exact(8);
    let tail = words.remainder();
    for (n, w) in words.enumerate() {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if maybe(x) {
            if let Some(i) = w.iter().position(|&c| is_special(c)) {
                return Some(n * 8 + i);
            }
        }
    }
    // The last bytes padded with spaces to a word.
    let mut last = [b' '; 8];
    for (d, s) in last.iter_mut().zip(tail) {
        *d = *s;
    }
    if !maybe(u64::from_le_bytes(last)) {
        return None;
    }
    tail.iter()
        .position(|&c| is_special(c))
        .map(|i| b.len() - tail.len() + i)
}

impl<O: TextOut + ?Sized> fmt::Write for Printbuf<'_, O> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.str(s);
        Ok(())
    }
}

/// A fixed-size byte buffer implementing [`TextOut`]: output past its end is dropped
/// and remembered in `overflow`.
pub struct FixedBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
    /// Set when something did not fit.
    pub overflow: bool,
}

impl<'a> FixedBuf<'a> {
    /// An empty buffer over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        FixedBuf {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// What was written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl TextOut for FixedBuf<'_> {
    fn push(&mut self, s: &[u8]) {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        if n < s.len() {
            self.overflow = true;
        }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
        }
    }
    fn insert_spaces(&mut self, at: usize, n: usize) {
        if at > self.len {
            return;
        }
        let room = self.buf.len() - self.len;
        let n2 = n.min(room);
        if n2 < n {
            self.overflow = true;
        }
        self.buf.copy_within(at..self.len, at + n2);
        for b in &mut self.buf[at..at + n2] {
            *b = b' ';
        }
        self.len += n2;
    }
}

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

/// A growable sink for callers with a heap (the tool, tests): enabled by the
/// `alloc` feature, never in the kernel build.
#[cfg(any(test, feature = "alloc"))]
impl TextOut for alloc::vec::Vec<u8> {
    fn push(&mut self, s: &[u8]) {
        self.extend_from_slice(s)
    }
    fn len(&self) -> usize {
        alloc::vec::Vec::len(self)
    }
    fn truncate(&mut self, len: usize) {
        alloc::vec::Vec::truncate(self, len)
    }
    fn insert_spaces(&mut self, at: usize, n: usize) {
        if at <= alloc::vec::Vec::len(self) {
            self.splice(at..at, core::iter::repeat_n(b' ', n));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    #[test]
    fn tabs_in_text_and_prt_tab() {
        let mut v: Vec<u8> = Vec::new();
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut v);
            pb.tabstop_push(8);
            pb.str("ab\tc\td\n");
            pb.str("ab");
            pb.tab();
            pb.str("c");
        }
        // in text: one short of column 8, then a literal tab (no tabstop left);
        // prt_tab: to column 8
        assert_eq!(v, b"ab     c\td\nab      c");
    }

    #[test]
    fn numbers_print_as_core_fmt_does() {
        use core::fmt::Write;
        let vals = [
            0,
            1,
            9,
            10,
            15,
            16,
            99,
            100,
            4096,
            u32::MAX as u64,
            1 << 63,
            u64::MAX,
        ];
        for v in vals.iter().copied().chain((0..64).map(|b| (1u64 << b) - 1)) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            {
                let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut a);
                pb.u64(v);
                pb.str(" ");
                pb.hex(v);
                pb.indent_add(2);
                pb.field_u64("bi_size", v);
                pb.field_u64("a_long_field_name_longer_than_forty_bytes_here", v);
                let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut b);
                let _ = write!(pb, "{} {:x}", v, v);
                pb.indent_add(2);
                let _ = writeln!(pb, "bi_size={}", v);
                let _ = writeln!(pb, "a_long_field_name_longer_than_forty_bytes_here={}", v);
            }
            assert_eq!(a, b);
        }
    }

    #[test]
    fn a_full_buffer_keeps_the_line_start_where_text_landed() {
        // Room for the text and the newline only: the indent is cut off, and a
        // later indent_sub must not take back text.
        let mut b = [0u8; 12];
        let mut f = FixedBuf::new(&mut b);
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut f);
            pb.indent_add(4);
            pb.field_u64("ab", 7);
            pb.indent_sub(4);
            pb.newline();
        }
        assert_eq!(f.as_bytes(), b"    ab=7\n   ");
        let mut b = [0u8; 2];
        let mut f = FixedBuf::new(&mut b);
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut f);
            pb.indent_add(8);
            pb.newline();
            pb.indent_sub(8);
        }
        assert_eq!(f.as_bytes(), b"  ");
    }

    #[test]
    fn special_bytes_found_at_every_offset() {
        for len in 0..40 {
            for at in 0..len {
                for c in [b'\n', b'\t', b'\r'] {
                    let mut b = vec![b'a'; len];
                    // bytes near the specials and above them must not match
                    for (i, x) in b.iter_mut().enumerate() {
                        *x = [b'a', 0x0b, 0x0c, 0x0e, 0xff, 0x00, 0x08][i % 7];
                    }
                    b[at] = c;
                    let want = b.iter().position(|&x| matches!(x, b'\n' | b'\t' | b'\r'));
                    assert_eq!(special_at(&b), want, "len {} at {}", len, at);
                }
            }
            let b = vec![0x0bu8; len];
            assert_eq!(special_at(&b), None);
        }
    }

    #[test]
    fn indent_sub_takes_back_only_bare_indentation() {
        let mut v: Vec<u8> = Vec::new();
        {
            let mut pb: Printbuf<'_, dyn TextOut> = Printbuf::new(&mut v);
            pb.str("x\n"); // no indent set: a raw newline, the line start stays
            pb.indent_add(2);
            pb.indent_sub(2);
            pb.str("y");
            pb.indent_add(2);
            pb.newline();
            pb.indent_sub(2);
            pb.str("z");
        }
        assert_eq!(v, b"x\n  y  \nz");
    }
}
