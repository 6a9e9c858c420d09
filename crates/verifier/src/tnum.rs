//! Tristate numbers ("known bits"): every bit is known 0, known 1 or
//! unknown. `value` holds the known-1 bits, `mask` the unknown bits.

use core::fmt;

/// A tristate number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tnum {
    /// Known bits set to 1 (never overlaps `mask`).
    pub value: u64,
    /// Unknown bits.
    pub mask: u64,
}

// The arithmetic is named after the operations it abstracts; these are not
// the std operator traits (they over-approximate).
#[allow(clippy::should_implement_trait)]
impl Tnum {
    /// Nothing known.
    pub const UNKNOWN: Tnum = Tnum { value: 0, mask: u64::MAX };

    /// A constant.
    pub const fn konst(v: u64) -> Tnum {
        Tnum { value: v, mask: 0 }
    }

    /// The smallest tnum containing every value in `[min, max]`.
    pub fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits > 63 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum { value: min & !delta, mask: delta }
    }

    /// All bits known.
    pub fn is_const(self) -> bool {
        self.mask == 0
    }

    /// Left shift by a constant.
    pub fn lshift(self, s: u32) -> Tnum {
        Tnum { value: self.value.wrapping_shl(s), mask: self.mask.wrapping_shl(s) }
    }

    /// Logical right shift by a constant.
    pub fn rshift(self, s: u32) -> Tnum {
        Tnum { value: self.value.wrapping_shr(s), mask: self.mask.wrapping_shr(s) }
    }

    /// Arithmetic right shift by a constant at `bits` width (32 or 64).
    pub fn arshift(self, s: u32, bits: u32) -> Tnum {
        if bits == 32 {
            Tnum {
                value: ((self.value as u32 as i32) >> (s & 31)) as u32 as u64,
                mask: ((self.mask as u32 as i32) >> (s & 31)) as u32 as u64,
            }
        } else {
            Tnum { value: ((self.value as i64) >> (s & 63)) as u64, mask: ((self.mask as i64) >> (s & 63)) as u64 }
        }
    }

    /// Addition.
    pub fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum { value: sv & !mu, mask: mu }
    }

    /// Subtraction.
    pub fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum { value: dv & !mu, mask: mu }
    }

    /// Bitwise and.
    pub fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum { value: v, mask: alpha & beta & !v }
    }

    /// Bitwise or.
    pub fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum { value: v, mask: mu & !v }
    }

    /// Bitwise xor.
    pub fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum { value: v & !mu, mask: mu }
    }

    /// Multiplication.
    pub fn mul(self, b: Tnum) -> Tnum {
        let (mut a, mut b) = (self, b);
        let acc_v = a.value.wrapping_mul(b.value);
        let mut acc_m = Tnum::konst(0);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc_m = acc_m.add(Tnum { value: 0, mask: b.mask });
            } else if a.mask & 1 != 0 {
                acc_m = acc_m.add(Tnum { value: 0, mask: b.value | b.mask });
            }
            a = a.rshift(1);
            b = b.lshift(1);
        }
        Tnum::konst(acc_v).add(acc_m)
    }

    /// Values in both.
    pub fn intersect(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Tnum { value: v & !mu, mask: mu }
    }

    /// Truncated to `bytes` bytes.
    pub fn cast(self, bytes: u32) -> Tnum {
        if bytes >= 8 {
            return self;
        }
        let m = (1u64 << (bytes * 8)) - 1;
        Tnum { value: self.value & m, mask: self.mask & m }
    }

    /// Low 32 bits.
    pub fn subreg(self) -> Tnum {
        self.cast(4)
    }

    /// The upper 32 bits of `self` with the low 32 bits of `sub`.
    pub fn with_subreg(self, sub: Tnum) -> Tnum {
        let hi = self.rshift(32).lshift(32);
        hi.or(sub.subreg())
    }

    /// Every value of `b` is a value of `self`.
    pub fn contains(self, b: Tnum) -> bool {
        if b.mask & !self.mask != 0 {
            return false;
        }
        (b.value & !self.mask) == self.value
    }

    /// The low bits `size - 1` are known zero.
    pub fn is_aligned(self, size: u64) -> bool {
        size == 0 || (self.value | self.mask) & (size - 1) == 0
    }
}

impl fmt::Display for Tnum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:#x}; {:#x})", self.value, self.mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_sound_on_samples() {
        let a = Tnum::range(4, 7);
        let b = Tnum::konst(3);
        for x in 4u64..=7 {
            assert!(a.add(b).contains(Tnum::konst(x + 3)));
            assert!(a.sub(b).contains(Tnum::konst(x - 3)));
            assert!(a.mul(b).contains(Tnum::konst(x * 3)));
            assert!(a.and(b).contains(Tnum::konst(x & 3)));
            assert!(a.or(b).contains(Tnum::konst(x | 3)));
            assert!(a.xor(b).contains(Tnum::konst(x ^ 3)));
        }
        assert_eq!(Tnum::range(0, 255), Tnum { value: 0, mask: 255 });
        assert!(Tnum::konst(8).is_aligned(8));
        assert!(!Tnum::range(0, 3).is_aligned(2));
    }
}
