// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of what the kernel side does: the format core compiled into the
//! module, and the kernel's hash primitives behind the core's checksum trait.

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
        assert_eq!(KernelHashes.crc64_be(0, b"123456789"), 0x6c40_df5f_0b49_7347);
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
}
