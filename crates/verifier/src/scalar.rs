//! Scalar value tracking: signed and unsigned 64- and 32-bit bounds plus
//! known bits, the arithmetic on them, and branch refinement.

use crate::tnum::Tnum;
use core::fmt;

/// What is known about a 64-bit value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Scalar {
    /// Known bits.
    pub var: Tnum,
    /// Signed 64-bit minimum.
    pub smin: i64,
    /// Signed 64-bit maximum.
    pub smax: i64,
    /// Unsigned 64-bit minimum.
    pub umin: u64,
    /// Unsigned 64-bit maximum.
    pub umax: u64,
    /// Signed minimum of the low 32 bits.
    pub s32min: i32,
    /// Signed maximum of the low 32 bits.
    pub s32max: i32,
    /// Unsigned minimum of the low 32 bits.
    pub u32min: u32,
    /// Unsigned maximum of the low 32 bits.
    pub u32max: u32,
}

/// Operations with range tracking.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `&`
    And,
    /// `|`
    Or,
    /// `^`
    Xor,
    /// `<<` by a constant.
    Lsh,
    /// `>>` by a constant.
    Rsh,
    /// Arithmetic `>>` by a constant.
    Arsh,
}

/// Comparisons, including the negation of `jset`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cmp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// unsigned `>`
    Gt,
    /// unsigned `>=`
    Ge,
    /// unsigned `<`
    Lt,
    /// unsigned `<=`
    Le,
    /// signed `>`
    Sgt,
    /// signed `>=`
    Sge,
    /// signed `<`
    Slt,
    /// signed `<=`
    Sle,
    /// `a & b != 0`
    Set,
    /// `a & b == 0`
    NotSet,
}

impl Cmp {
    /// The comparison that holds when this one does not.
    pub fn negate(self) -> Cmp {
        use Cmp::*;
        match self {
            Eq => Ne,
            Ne => Eq,
            Gt => Le,
            Ge => Lt,
            Lt => Ge,
            Le => Gt,
            Sgt => Sle,
            Sge => Slt,
            Slt => Sge,
            Sle => Sgt,
            Set => NotSet,
            NotSet => Set,
        }
    }

    /// The comparison with its operands swapped (`a < b` is `b > a`).
    pub fn swap(self) -> Cmp {
        use Cmp::*;
        match self {
            Gt => Lt,
            Ge => Le,
            Lt => Gt,
            Le => Ge,
            Sgt => Slt,
            Sge => Sle,
            Slt => Sgt,
            Sle => Sge,
            o => o,
        }
    }
}

/// One width's view of a scalar.
#[derive(Clone, Copy, Debug)]
struct R {
    smin: i64,
    smax: i64,
    umin: u64,
    umax: u64,
    var: Tnum,
}

fn umax_of(bits: u32) -> u64 {
    if bits == 32 {
        u32::MAX as u64
    } else {
        u64::MAX
    }
}
fn smin_of(bits: u32) -> i64 {
    if bits == 32 {
        i32::MIN as i64
    } else {
        i64::MIN
    }
}
fn smax_of(bits: u32) -> i64 {
    if bits == 32 {
        i32::MAX as i64
    } else {
        i64::MAX
    }
}
fn fit(v: Tnum, bits: u32) -> Tnum {
    if bits == 32 {
        v.subreg()
    } else {
        v
    }
}

impl R {
    fn unbounded_s(&mut self, bits: u32) {
        self.smin = smin_of(bits);
        self.smax = smax_of(bits);
    }
    fn unbounded_u(&mut self, bits: u32) {
        self.umin = 0;
        self.umax = umax_of(bits);
    }
    fn is_const(&self) -> bool {
        self.var.is_const() && self.umin == self.umax
    }
}

impl Default for Scalar {
    fn default() -> Self {
        Scalar::UNKNOWN
    }
}

impl Scalar {
    /// Nothing known.
    pub const UNKNOWN: Scalar = Scalar {
        var: Tnum::UNKNOWN,
        smin: i64::MIN,
        smax: i64::MAX,
        umin: 0,
        umax: u64::MAX,
        s32min: i32::MIN,
        s32max: i32::MAX,
        u32min: 0,
        u32max: u32::MAX,
    };

    /// A known constant.
    pub fn konst(v: u64) -> Scalar {
        Scalar {
            var: Tnum::konst(v),
            smin: v as i64,
            smax: v as i64,
            umin: v,
            umax: v,
            s32min: v as u32 as i32,
            s32max: v as u32 as i32,
            u32min: v as u32,
            u32max: v as u32,
        }
    }

    /// An unknown value of `bytes` bytes, zero-extended.
    pub fn unknown_of_size(bytes: u32) -> Scalar {
        let mut s = Scalar::UNKNOWN;
        s.coerce(bytes);
        s
    }

    /// An unknown value in `[min, max]` (unsigned).
    pub fn urange(min: u64, max: u64) -> Scalar {
        let mut s = Scalar::UNKNOWN;
        s.umin = min;
        s.umax = max;
        s.sync();
        s
    }

    /// The value is a known constant.
    pub fn is_const(&self) -> bool {
        self.var.is_const()
    }

    /// The constant, if known.
    pub fn const_value(&self) -> Option<u64> {
        self.var.is_const().then_some(self.var.value)
    }

    /// The low 32 bits are a known constant.
    pub fn is_const32(&self) -> bool {
        self.var.subreg().is_const()
    }

    fn view(&self, bits: u32) -> R {
        if bits == 32 {
            R {
                smin: self.s32min as i64,
                smax: self.s32max as i64,
                umin: self.u32min as u64,
                umax: self.u32max as u64,
                var: self.var.subreg(),
            }
        } else {
            R { smin: self.smin, smax: self.smax, umin: self.umin, umax: self.umax, var: self.var }
        }
    }

    fn set_view(&mut self, bits: u32, r: R) {
        if bits == 32 {
            self.s32min = r.smin as i32;
            self.s32max = r.smax as i32;
            self.u32min = r.umin as u32;
            self.u32max = r.umax as u32;
            self.var = self.var.with_subreg(r.var);
        } else {
            self.smin = r.smin;
            self.smax = r.smax;
            self.umin = r.umin;
            self.umax = r.umax;
            self.var = r.var;
        }
    }

    /// Bounds are consistent (some value satisfies all of them).
    pub fn is_consistent(&self) -> bool {
        self.umin <= self.umax
            && self.smin <= self.smax
            && self.u32min <= self.u32max
            && self.s32min <= self.s32max
            && self.var.value <= self.umax
            && (self.var.value | self.var.mask) >= self.umin
            && (self.var.value as u32) <= self.u32max
            && ((self.var.value | self.var.mask) as u32) >= self.u32min
    }

    /// Propagates information between the bounds and known bits
    /// (the kernel's `reg_bounds_sync`).
    pub fn sync(&mut self) {
        self.update_bounds();
        self.deduce32();
        self.deduce64();
        self.deduce_mixed();
        self.bound_offset();
        self.update_bounds();
    }

    fn update_bounds(&mut self) {
        let v32 = self.var.subreg();
        self.s32min = self.s32min.max((v32.value | (v32.mask & 0x8000_0000)) as u32 as i32);
        self.s32max = self.s32max.min((v32.value | (v32.mask & 0x7fff_ffff)) as u32 as i32);
        self.u32min = self.u32min.max(v32.value as u32);
        self.u32max = self.u32max.min((v32.value | v32.mask) as u32);
        let v = self.var;
        self.smin = self.smin.max((v.value | (v.mask & (1 << 63))) as i64);
        self.smax = self.smax.min((v.value | (v.mask & !(1u64 << 63))) as i64);
        self.umin = self.umin.max(v.value);
        self.umax = self.umax.min(v.value | v.mask);
    }

    fn deduce32(&mut self) {
        if (self.umin >> 32) == (self.umax >> 32) {
            self.u32min = self.u32min.max(self.umin as u32);
            self.u32max = self.u32max.min(self.umax as u32);
            if (self.umin as u32 as i32) <= (self.umax as u32 as i32) {
                self.s32min = self.s32min.max(self.umin as u32 as i32);
                self.s32max = self.s32max.min(self.umax as u32 as i32);
            }
        }
        if (self.smin >> 32) == (self.smax >> 32) {
            if (self.smin as u32) <= (self.smax as u32) {
                self.u32min = self.u32min.max(self.smin as u32);
                self.u32max = self.u32max.min(self.smax as u32);
            }
            if (self.smin as u32 as i32) <= (self.smax as u32 as i32) {
                self.s32min = self.s32min.max(self.smin as u32 as i32);
                self.s32max = self.s32max.min(self.smax as u32 as i32);
            }
        }
        if (self.u32min as i32) <= (self.u32max as i32) {
            self.s32min = self.s32min.max(self.u32min as i32);
            self.s32max = self.s32max.min(self.u32max as i32);
        }
        if (self.s32min as u32) <= (self.s32max as u32) {
            self.u32min = self.u32min.max(self.s32min as u32);
            self.u32max = self.u32max.min(self.s32max as u32);
        } else if self.u32max < self.s32min as u32 {
            // The signed range wraps; the unsigned range meets only its
            // non-negative part.
            self.s32min = self.u32min as i32;
            self.u32max = self.u32max.min(self.s32max as u32);
        } else if (self.s32max as u32) < self.u32min {
            // ... or only its negative part.
            self.s32max = self.u32max as i32;
            self.u32min = self.u32min.max(self.s32min as u32);
        }
    }

    fn deduce64(&mut self) {
        if (self.umin as i64) <= (self.umax as i64) {
            self.smin = self.smin.max(self.umin as i64);
            self.smax = self.smax.min(self.umax as i64);
        }
        if (self.smin as u64) <= (self.smax as u64) {
            self.umin = self.umin.max(self.smin as u64);
            self.umax = self.umax.min(self.smax as u64);
        } else if self.umax < self.smin as u64 {
            self.smin = self.umin as i64;
            self.umax = self.umax.min(self.smax as u64);
        } else if (self.smax as u64) < self.umin {
            self.smax = self.umax as i64;
            self.umin = self.umin.max(self.smin as u64);
        }
    }

    fn deduce_mixed(&mut self) {
        let new_umin = (self.umin & !0xffff_ffff) | self.u32min as u64;
        let new_umax = (self.umax & !0xffff_ffff) | self.u32max as u64;
        self.umin = self.umin.max(new_umin);
        self.umax = self.umax.min(new_umax);
        let new_smin = ((self.smin as u64 & !0xffff_ffff) | self.u32min as u64) as i64;
        let new_smax = ((self.smax as u64 & !0xffff_ffff) | self.u32max as u64) as i64;
        self.smin = self.smin.max(new_smin);
        self.smax = self.smax.min(new_smax);
        if self.s32min >= 0 && self.smin >= i32::MIN as i64 && self.smax <= i32::MAX as i64 {
            self.smin = self.smin.max(self.s32min as i64);
            self.smax = self.smax.min(self.s32max as i64);
            self.umin = self.umin.max(self.s32min as u64);
            self.umax = self.umax.min(self.s32max as u64);
        }
    }

    fn bound_offset(&mut self) {
        let v64 = self.var.intersect(Tnum::range(self.umin, self.umax));
        let v32 = v64.subreg().intersect(Tnum::range(self.u32min as u64, self.u32max as u64));
        self.var = v64.with_subreg(v32);
    }

    /// Truncates to `bytes` bytes, zero-extending (narrow loads).
    pub fn coerce(&mut self, bytes: u32) {
        if bytes >= 8 {
            return;
        }
        self.var = self.var.cast(bytes);
        let mask = (1u64 << (bytes * 8)) - 1;
        if (self.umin & !mask) == (self.umax & !mask) {
            self.umin &= mask;
            self.umax &= mask;
        } else {
            self.umin = 0;
            self.umax = mask;
        }
        self.smin = self.umin as i64;
        self.smax = self.umax as i64;
        if bytes < 4 {
            self.s32min = i32::MIN;
            self.s32max = i32::MAX;
            self.u32min = 0;
            self.u32max = u32::MAX;
        } else {
            self.s32min = i32::MIN;
            self.s32max = i32::MAX;
            self.u32min = self.umin as u32;
            self.u32max = self.umax as u32;
        }
        self.sync();
    }

    /// Sign-extends the low `bytes` bytes to 64 bits (`movsx`, `ldxs`).
    pub fn sign_extend(&mut self, bytes: u32) {
        let bits = bytes * 8;
        if let Some(v) = self.const_value() {
            let sh = 64 - bits;
            *self = Scalar::konst((((v << sh) as i64) >> sh) as u64);
            return;
        }
        let half = 1u64 << (bits - 1);
        let mut c = *self;
        c.coerce(bytes);
        if c.umax < half {
            *self = c;
            return;
        }
        if c.umin >= half && bits < 64 {
            // Every value has its sign bit set: all negative.
            let full = 1u64 << bits;
            let mut s = Scalar::UNKNOWN;
            s.smin = c.umin as i64 - full as i64;
            s.smax = c.umax as i64 - full as i64;
            s.sync();
            *self = s;
            return;
        }
        let mut s = Scalar::UNKNOWN;
        s.smin = -(half as i64);
        s.smax = (half - 1) as i64;
        s.sync();
        *self = s;
    }

    /// Zero-extends the low 32 bits (the result of every 32-bit ALU op).
    pub fn zext32(&mut self) {
        self.var = self.var.subreg();
        self.umin = self.u32min as u64;
        self.umax = self.u32max as u64;
        if self.s32min >= 0 && self.s32max >= 0 {
            self.smin = self.s32min as i64;
            self.smax = self.s32max as i64;
        } else {
            self.smin = 0;
            self.smax = u32::MAX as i64;
        }
        self.sync();
    }

    /// Sign-extends the low 32 bits into the 64-bit value.
    pub fn sext32(&mut self) {
        self.sign_extend(4);
    }

    /// `self op src` at width 32 or 64, with the kernel's range tracking
    /// (shift amounts must be constants below the width, checked by the caller).
    pub fn alu(&self, op: Op, bits: u32, src: &Scalar) -> Scalar {
        let mut out = Scalar::UNKNOWN;
        let r32 = alu_range(op, self.view(32), src.view(32), 32);
        if bits == 32 {
            out.set_view(32, r32);
            out.var = r32.var;
            out.sync();
            out.zext32();
            return out;
        }
        let r64 = alu_range(op, self.view(64), src.view(64), 64);
        out.set_view(64, r64);
        if matches!(op, Op::Add | Op::Sub | Op::Mul | Op::And | Op::Or | Op::Xor) {
            out.s32min = r32.smin as i32;
            out.s32max = r32.smax as i32;
            out.u32min = r32.umin as u32;
            out.u32max = r32.umax as u32;
        }
        out.sync();
        out
    }

    /// Whether `self cmp other` is always (`Some(true)`) or never
    /// (`Some(false)`) true at the given width.
    pub fn branch_taken(&self, cmp: Cmp, bits: u32, other: &Scalar) -> Option<bool> {
        let a = self.view(bits);
        let b = other.view(bits);
        let (sa, sb) = (a, b);
        use Cmp::*;
        match cmp {
            Eq | Ne => {
                let r = if sa.is_const() && sb.is_const() {
                    Some(sa.umin == sb.umin)
                } else if sa.umin > sb.umax
                    || sa.umax < sb.umin
                    || sa.smin > sb.smax
                    || sa.smax < sb.smin
                    || (sa.var.value ^ sb.var.value) & !(sa.var.mask | sb.var.mask) != 0
                {
                    Some(false)
                } else {
                    None
                };
                if cmp == Ne {
                    r.map(|x| !x)
                } else {
                    r
                }
            }
            Gt => decide(a.umin > b.umax, a.umax <= b.umin),
            Ge => decide(a.umin >= b.umax, a.umax < b.umin),
            Lt => decide(a.umax < b.umin, a.umin >= b.umax),
            Le => decide(a.umax <= b.umin, a.umin > b.umax),
            Sgt => decide(a.smin > b.smax, a.smax <= b.smin),
            Sge => decide(a.smin >= b.smax, a.smax < b.smin),
            Slt => decide(a.smax < b.smin, a.smin >= b.smax),
            Sle => decide(a.smax <= b.smin, a.smin > b.smax),
            Set | NotSet => {
                let r = if a.var.value & b.var.value != 0 {
                    Some(true)
                } else if (a.var.value | a.var.mask) & (b.var.value | b.var.mask) == 0 {
                    Some(false)
                } else {
                    None
                };
                if cmp == NotSet {
                    r.map(|x| !x)
                } else {
                    r
                }
            }
        }
    }

    /// Narrows `self` and `other` assuming `self cmp other` holds at the
    /// given width. Returns false when that is impossible.
    pub fn refine(&mut self, cmp: Cmp, bits: u32, other: &mut Scalar) -> bool {
        let mut a = self.view(bits);
        let mut b = other.view(bits);
        let umax = umax_of(bits);
        let smin = smin_of(bits);
        let smax = smax_of(bits);
        use Cmp::*;
        match cmp {
            Eq => {
                let r = R {
                    umin: a.umin.max(b.umin),
                    umax: a.umax.min(b.umax),
                    smin: a.smin.max(b.smin),
                    smax: a.smax.min(b.smax),
                    var: a.var.intersect(b.var),
                };
                a = r;
                b = r;
            }
            Ne => {
                let (a0, b0) = (a, b);
                for (x, y) in [(&mut a, b0), (&mut b, a0)] {
                    if y.is_const() {
                        let v = y.umin;
                        if x.umin == v && x.umin < x.umax {
                            x.umin += 1;
                        } else if x.umax == v && x.umin < x.umax {
                            x.umax -= 1;
                        }
                        let sv = if bits == 32 { v as u32 as i32 as i64 } else { v as i64 };
                        if x.smin == sv && x.smin < x.smax {
                            x.smin += 1;
                        } else if x.smax == sv && x.smin < x.smax {
                            x.smax -= 1;
                        }
                    }
                }
            }
            Gt | Ge | Lt | Le => {
                let (lo, hi, strict) = match cmp {
                    Gt => (&mut b, &mut a, true),
                    Ge => (&mut b, &mut a, false),
                    Lt => (&mut a, &mut b, true),
                    _ => (&mut a, &mut b, false),
                };
                // lo < hi (or <=)
                let d = strict as u64;
                if lo.umin > umax - d || hi.umax < d {
                    return false;
                }
                hi.umin = hi.umin.max(lo.umin + d);
                lo.umax = lo.umax.min(hi.umax - d);
            }
            Sgt | Sge | Slt | Sle => {
                let (lo, hi, strict) = match cmp {
                    Sgt => (&mut b, &mut a, true),
                    Sge => (&mut b, &mut a, false),
                    Slt => (&mut a, &mut b, true),
                    _ => (&mut a, &mut b, false),
                };
                let d = strict as i64;
                if lo.smin > smax - d || hi.smax < smin + d {
                    return false;
                }
                hi.smin = hi.smin.max(lo.smin + d);
                lo.smax = lo.smax.min(hi.smax - d);
            }
            Set => {
                let (a0, b0) = (a, b);
                for (x, y) in [(&mut a, b0), (&mut b, a0)] {
                    if y.is_const() && y.umin.is_power_of_two() {
                        x.var = x.var.or(Tnum::konst(y.umin));
                        break;
                    }
                }
            }
            NotSet => {
                let (a0, b0) = (a, b);
                for (x, y) in [(&mut a, b0), (&mut b, a0)] {
                    if y.is_const() {
                        x.var = fit(x.var.and(Tnum::konst(!y.umin)), bits);
                        break;
                    }
                }
            }
        }
        self.set_view(bits, a);
        other.set_view(bits, b);
        if !self.is_consistent() || !other.is_consistent() {
            return false;
        }
        self.sync();
        other.sync();
        self.is_consistent() && other.is_consistent()
    }

    /// `self` contains every value `other` may have (for state pruning).
    pub fn contains(&self, other: &Scalar) -> bool {
        self.umin <= other.umin
            && self.umax >= other.umax
            && self.smin <= other.smin
            && self.smax >= other.smax
            && self.u32min <= other.u32min
            && self.u32max >= other.u32max
            && self.s32min <= other.s32min
            && self.s32max >= other.s32max
            && self.var.contains(other.var)
    }
}

fn decide(yes: bool, no: bool) -> Option<bool> {
    if yes {
        Some(true)
    } else if no {
        Some(false)
    } else {
        None
    }
}

fn alu_range(op: Op, a: R, b: R, bits: u32) -> R {
    let mut r = R { smin: 0, smax: 0, umin: 0, umax: 0, var: Tnum::UNKNOWN };
    let umax = umax_of(bits);
    let in_s = |v: i128| v >= smin_of(bits) as i128 && v <= smax_of(bits) as i128;
    match op {
        Op::Add => {
            let (lo, hi) = (a.smin as i128 + b.smin as i128, a.smax as i128 + b.smax as i128);
            if in_s(lo) && in_s(hi) {
                r.smin = lo as i64;
                r.smax = hi as i64;
            } else {
                r.unbounded_s(bits);
            }
            let (lo, hi) = (a.umin as u128 + b.umin as u128, a.umax as u128 + b.umax as u128);
            if hi <= umax as u128 {
                r.umin = lo as u64;
                r.umax = hi as u64;
            } else {
                r.unbounded_u(bits);
            }
            r.var = fit(a.var.add(b.var), bits);
        }
        Op::Sub => {
            let (lo, hi) = (a.smin as i128 - b.smax as i128, a.smax as i128 - b.smin as i128);
            if in_s(lo) && in_s(hi) {
                r.smin = lo as i64;
                r.smax = hi as i64;
            } else {
                r.unbounded_s(bits);
            }
            if a.umin < b.umax {
                r.unbounded_u(bits);
            } else {
                r.umin = a.umin - b.umax;
                r.umax = a.umax - b.umin;
            }
            r.var = fit(a.var.sub(b.var), bits);
        }
        Op::Mul => {
            r.var = fit(a.var.mul(b.var), bits);
            let half = if bits == 32 { u16::MAX as u64 } else { u32::MAX as u64 };
            if a.smin < 0 || b.smin < 0 || a.umax > half || b.umax > half {
                r.unbounded_s(bits);
                r.unbounded_u(bits);
            } else {
                r.umin = a.umin * b.umin;
                r.umax = a.umax * b.umax;
                if r.umax > smax_of(bits) as u64 {
                    r.unbounded_s(bits);
                } else {
                    r.smin = r.umin as i64;
                    r.smax = r.umax as i64;
                }
            }
        }
        Op::And => {
            r.var = fit(a.var.and(b.var), bits);
            r.umin = r.var.value;
            r.umax = a.umax.min(b.umax);
            if a.smin < 0 || b.smin < 0 {
                r.unbounded_s(bits);
            } else {
                r.smin = r.umin as i64;
                r.smax = r.umax as i64;
            }
        }
        Op::Or => {
            r.var = fit(a.var.or(b.var), bits);
            r.umin = a.umin.max(b.umin);
            r.umax = r.var.value | r.var.mask;
            if a.smin < 0 || b.smin < 0 {
                r.unbounded_s(bits);
            } else {
                r.smin = r.umin as i64;
                r.smax = r.umax as i64;
            }
        }
        Op::Xor => {
            r.var = fit(a.var.xor(b.var), bits);
            r.umin = r.var.value;
            r.umax = r.var.value | r.var.mask;
            if a.smin >= 0 && b.smin >= 0 {
                r.smin = r.umin as i64;
                r.smax = r.umax as i64;
            } else {
                r.unbounded_s(bits);
            }
        }
        Op::Lsh => {
            let s = b.umin as u32;
            r.var = fit(a.var.lshift(s), bits);
            if a.umax > (umax >> s) {
                r.unbounded_u(bits);
            } else {
                r.umin = a.umin << s;
                r.umax = a.umax << s;
            }
            r.unbounded_s(bits);
        }
        Op::Rsh => {
            let s = b.umin as u32;
            r.var = fit(a.var.rshift(s), bits);
            r.umin = a.umin >> s;
            r.umax = a.umax >> s;
            r.unbounded_s(bits);
        }
        Op::Arsh => {
            let s = b.umin as u32;
            r.var = fit(a.var.arshift(s, bits), bits);
            r.smin = a.smin >> s;
            r.smax = a.smax >> s;
            r.unbounded_u(bits);
        }
    }
    if r.umin > r.umax {
        r.unbounded_u(bits);
    }
    r
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = self.const_value() {
            return write!(f, "{}", v as i64);
        }
        let mut parts = Vec::new();
        if self.smin != i64::MIN {
            parts.push(format!("smin={}", self.smin));
        }
        if self.smax != i64::MAX {
            parts.push(format!("smax={}", self.smax));
        }
        if self.umin != 0 {
            parts.push(format!("umin={}", self.umin));
        }
        if self.umax != u64::MAX {
            parts.push(format!("umax={}", self.umax));
        }
        if self.var.mask != u64::MAX {
            parts.push(format!("var_off={}", self.var));
        }
        if parts.is_empty() {
            write!(f, "?")
        } else {
            write!(f, "{}", parts.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_refine() {
        let a = Scalar::urange(0, 10);
        let b = Scalar::konst(5);
        let c = a.alu(Op::Add, 64, &b);
        assert_eq!((c.umin, c.umax), (5, 15));
        let mut x = Scalar::UNKNOWN;
        let mut k = Scalar::konst(100);
        assert!(x.refine(Cmp::Lt, 64, &mut k));
        assert_eq!((x.umin, x.umax), (0, 99));
        assert_eq!(x.branch_taken(Cmp::Gt, 64, &Scalar::konst(200)), Some(false));
        let m = Scalar::UNKNOWN.alu(Op::And, 64, &Scalar::konst(0xff));
        assert_eq!((m.umin, m.umax, m.smin, m.smax), (0, 255, 0, 255));
        let z = Scalar::UNKNOWN.alu(Op::Add, 32, &Scalar::konst(1));
        assert_eq!(z.umax, u32::MAX as u64);
        let mut y = Scalar::unknown_of_size(1);
        assert!(!y.refine(Cmp::Gt, 64, &mut Scalar::konst(300)));
    }
}
