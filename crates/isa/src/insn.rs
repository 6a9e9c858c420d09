//! The raw 8-byte instruction, exactly as stored in objects and memory.

use crate::IsaError;

/// One raw eBPF instruction slot (`struct bpf_insn`), little-endian.
///
/// `lddw` occupies two consecutive slots; the second slot carries the upper
/// 32 bits of the immediate in `imm` and must otherwise be zero.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Insn {
    /// Opcode byte.
    pub code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high nibble.
    pub regs: u8,
    /// Signed 16-bit offset.
    pub off: i16,
    /// Signed 32-bit immediate.
    pub imm: i32,
}

impl Insn {
    /// Size of one instruction slot in bytes.
    pub const SIZE: usize = 8;

    /// Builds an instruction from its fields.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Insn { code, regs: (dst & 0x0f) | (src << 4), off, imm }
    }

    /// Destination register number (0-15; only 0-10 are valid).
    #[inline(always)]
    pub const fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    /// Source register number (0-15; only 0-10 are valid).
    #[inline(always)]
    pub const fn src(&self) -> u8 {
        self.regs >> 4
    }

    /// Instruction class (`code & 7`).
    #[inline(always)]
    pub const fn class(&self) -> u8 {
        self.code & crate::opcode::CLASS_MASK
    }

    /// Decodes one slot from 8 little-endian bytes.
    pub const fn from_bytes(b: [u8; 8]) -> Self {
        Insn {
            code: b[0],
            regs: b[1],
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Encodes the slot as 8 little-endian bytes.
    pub const fn to_bytes(self) -> [u8; 8] {
        let o = self.off.to_le_bytes();
        let i = self.imm.to_le_bytes();
        [self.code, self.regs, o[0], o[1], i[0], i[1], i[2], i[3]]
    }

    /// The slot as a little-endian 64-bit word (the `raw` form the
    /// bpf_conformance suite writes as `0x...`).
    pub const fn to_u64(self) -> u64 {
        u64::from_le_bytes(self.to_bytes())
    }

    /// Inverse of [`Insn::to_u64`].
    pub const fn from_u64(v: u64) -> Self {
        Self::from_bytes(v.to_le_bytes())
    }
}

impl core::fmt::Debug for Insn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Insn {{ code: {:#04x}, dst: {}, src: {}, off: {}, imm: {} }}",
            self.code,
            self.dst(),
            self.src(),
            self.off,
            self.imm
        )
    }
}

/// Splits a byte buffer into instruction slots.
///
/// Fails if the length is not a multiple of 8.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<Insn>, IsaError> {
    if bytes.len() % Insn::SIZE != 0 {
        return Err(IsaError::TruncatedBytes { len: bytes.len() });
    }
    Ok(bytes.chunks_exact(Insn::SIZE).map(|c| Insn::from_bytes(c.try_into().expect("chunk of 8"))).collect())
}

/// Concatenates instruction slots into bytes.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}
