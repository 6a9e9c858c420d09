//! The classic BPF instruction (`struct sock_filter`), its opcode fields,
//! the Linux ancillary-data offsets, the three text/binary forms tcpdump and
//! the kernel exchange programs in, and the libpcap disassembly form.

use crate::CbpfError;
use core::fmt;

/// One classic BPF instruction, laid out exactly as the kernel's
/// `struct sock_filter` (and libpcap's `struct bpf_insn`): 8 bytes, host
/// byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SockFilter {
    /// Opcode: class | size/operation | mode/source.
    pub code: u16,
    /// Jump offset when the condition is true (relative to the next instruction).
    pub jt: u8,
    /// Jump offset when the condition is false.
    pub jf: u8,
    /// Generic field: constant, offset, scratch index, jump distance.
    pub k: u32,
}

impl SockFilter {
    /// Size of one instruction in bytes.
    pub const SIZE: usize = 8;

    /// A non-jump instruction (`BPF_STMT(code, k)`).
    pub const fn stmt(code: u16, k: u32) -> Self {
        SockFilter { code, jt: 0, jf: 0, k }
    }

    /// A jump instruction (`BPF_JUMP(code, k, jt, jf)`).
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Self {
        SockFilter { code, jt, jf, k }
    }

    /// Decodes one instruction from 8 bytes in host order.
    pub fn from_bytes(b: [u8; 8]) -> Self {
        SockFilter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Encodes the instruction as 8 bytes in host order.
    pub fn to_bytes(self) -> [u8; 8] {
        let c = self.code.to_ne_bytes();
        let k = self.k.to_ne_bytes();
        [c[0], c[1], self.jt, self.jf, k[0], k[1], k[2], k[3]]
    }

    /// Instruction class (`code & 7`).
    pub const fn class(&self) -> u16 {
        self.code & 0x07
    }
}

/// Classic BPF opcode fields (`linux/bpf_common.h`, `linux/filter.h`).
pub mod op {
    /// Load into A.
    pub const LD: u16 = 0x00;
    /// Load into X.
    pub const LDX: u16 = 0x01;
    /// Store A into scratch memory.
    pub const ST: u16 = 0x02;
    /// Store X into scratch memory.
    pub const STX: u16 = 0x03;
    /// Arithmetic on A.
    pub const ALU: u16 = 0x04;
    /// Jumps.
    pub const JMP: u16 = 0x05;
    /// Return.
    pub const RET: u16 = 0x06;
    /// `tax` / `txa`.
    pub const MISC: u16 = 0x07;

    /// 32-bit load.
    pub const W: u16 = 0x00;
    /// 16-bit load.
    pub const H: u16 = 0x08;
    /// 8-bit load.
    pub const B: u16 = 0x10;

    /// Immediate.
    pub const IMM: u16 = 0x00;
    /// Absolute packet offset.
    pub const ABS: u16 = 0x20;
    /// Packet offset X + k.
    pub const IND: u16 = 0x40;
    /// Scratch memory word.
    pub const MEM: u16 = 0x60;
    /// Packet length.
    pub const LEN: u16 = 0x80;
    /// IP header length helper (`4 * ([k] & 0xf)`).
    pub const MSH: u16 = 0xa0;

    /// `+`
    pub const ADD: u16 = 0x00;
    /// `-`
    pub const SUB: u16 = 0x10;
    /// `*`
    pub const MUL: u16 = 0x20;
    /// `/` (unsigned)
    pub const DIV: u16 = 0x30;
    /// `|`
    pub const OR: u16 = 0x40;
    /// `&`
    pub const AND: u16 = 0x50;
    /// `<<`
    pub const LSH: u16 = 0x60;
    /// `>>` (logical)
    pub const RSH: u16 = 0x70;
    /// Negation.
    pub const NEG: u16 = 0x80;
    /// `%` (unsigned)
    pub const MOD: u16 = 0x90;
    /// `^`
    pub const XOR: u16 = 0xa0;

    /// Unconditional jump by k.
    pub const JA: u16 = 0x00;
    /// `==`
    pub const JEQ: u16 = 0x10;
    /// unsigned `>`
    pub const JGT: u16 = 0x20;
    /// unsigned `>=`
    pub const JGE: u16 = 0x30;
    /// `& != 0`
    pub const JSET: u16 = 0x40;

    /// Operand is the constant k.
    pub const K: u16 = 0x00;
    /// Operand is X.
    pub const X: u16 = 0x08;
    /// Return A.
    pub const A: u16 = 0x10;

    /// `tax`: X = A.
    pub const TAX: u16 = 0x00;
    /// `txa`: A = X.
    pub const TXA: u16 = 0x80;

    /// Number of scratch memory words (`BPF_MEMWORDS`).
    pub const MEMWORDS: u32 = 16;
    /// Maximum program length (`BPF_MAXINSNS`).
    pub const MAXINSNS: usize = 4096;
}

/// Linux ancillary-data loads (`SKF_AD_*`) and negative-offset bases.
///
/// A `ld{,h,b} [k]` whose `k` is `SKF_AD_OFF + n` reads socket-buffer
/// metadata instead of packet bytes; `SKF_NET_OFF + n` and `SKF_LL_OFF + n`
/// read relative to the network and link-layer headers.
pub mod skf {
    /// Base of the ancillary loads (`-0x1000`).
    pub const AD_OFF: i32 = -0x1000;
    /// `skb->protocol` (the EtherType, host order).
    pub const AD_PROTOCOL: i32 = 0;
    /// `skb->pkt_type` (`PACKET_HOST`, `PACKET_BROADCAST`, ...).
    pub const AD_PKTTYPE: i32 = 4;
    /// `skb->dev->ifindex`.
    pub const AD_IFINDEX: i32 = 8;
    /// Netlink attribute search.
    pub const AD_NLATTR: i32 = 12;
    /// Nested netlink attribute search.
    pub const AD_NLATTR_NEST: i32 = 16;
    /// `skb->mark`.
    pub const AD_MARK: i32 = 20;
    /// `skb->queue_mapping`.
    pub const AD_QUEUE: i32 = 24;
    /// `skb->dev->type` (`ARPHRD_*`).
    pub const AD_HATYPE: i32 = 28;
    /// `skb->hash`.
    pub const AD_RXHASH: i32 = 32;
    /// Current CPU number.
    pub const AD_CPU: i32 = 36;
    /// `A ^= X`.
    pub const AD_ALU_XOR_X: i32 = 40;
    /// `skb->vlan_tci`.
    pub const AD_VLAN_TAG: i32 = 44;
    /// Whether the skb carries an out-of-band VLAN tag.
    pub const AD_VLAN_TAG_PRESENT: i32 = 48;
    /// Payload offset found by the flow dissector.
    pub const AD_PAY_OFFSET: i32 = 52;
    /// A random 32-bit number.
    pub const AD_RANDOM: i32 = 56;
    /// `skb->vlan_proto` (host order).
    pub const AD_VLAN_TPID: i32 = 60;
    /// One past the last ancillary offset.
    pub const AD_MAX: i32 = 64;
    /// Loads relative to the network header start here (`-0x100000`).
    pub const NET_OFF: i32 = -0x100000;
    /// Loads relative to the link-layer header start here (`-0x200000`).
    pub const LL_OFF: i32 = -0x200000;

    /// The `SKF_AD_*` name of ancillary offset `n` (relative to
    /// [`AD_OFF`]), if the kernel defines one.
    pub fn name(n: i32) -> Option<&'static str> {
        Some(match n {
            AD_PROTOCOL => "SKF_AD_PROTOCOL",
            AD_PKTTYPE => "SKF_AD_PKTTYPE",
            AD_IFINDEX => "SKF_AD_IFINDEX",
            AD_NLATTR => "SKF_AD_NLATTR",
            AD_NLATTR_NEST => "SKF_AD_NLATTR_NEST",
            AD_MARK => "SKF_AD_MARK",
            AD_QUEUE => "SKF_AD_QUEUE",
            AD_HATYPE => "SKF_AD_HATYPE",
            AD_RXHASH => "SKF_AD_RXHASH",
            AD_CPU => "SKF_AD_CPU",
            AD_ALU_XOR_X => "SKF_AD_ALU_XOR_X",
            AD_VLAN_TAG => "SKF_AD_VLAN_TAG",
            AD_VLAN_TAG_PRESENT => "SKF_AD_VLAN_TAG_PRESENT",
            AD_PAY_OFFSET => "SKF_AD_PAY_OFFSET",
            AD_RANDOM => "SKF_AD_RANDOM",
            AD_VLAN_TPID => "SKF_AD_VLAN_TPID",
            _ => return None,
        })
    }

    /// The ancillary offset (relative to [`AD_OFF`]) that a `ld{,h,b} [k]`
    /// with this `k` denotes, if `k` is in the ancillary range
    /// (`k >= SKF_AD_OFF` as an unsigned number).
    pub fn ancillary(k: u32) -> Option<i32> {
        (k >= AD_OFF as u32).then(|| k.wrapping_sub(AD_OFF as u32) as i32)
    }

    /// Short names used in the disassembly (`ld #proto`), as in the
    /// kernel's `bpf_asm`.
    pub(crate) fn asm_name(n: i32) -> Option<&'static str> {
        Some(match n {
            AD_PROTOCOL => "#proto",
            AD_PKTTYPE => "#type",
            AD_IFINDEX => "#ifidx",
            AD_NLATTR => "#nla",
            AD_NLATTR_NEST => "#nlan",
            AD_MARK => "#mark",
            AD_QUEUE => "#queue",
            AD_HATYPE => "#hatype",
            AD_RXHASH => "#rxhash",
            AD_CPU => "#cpu",
            AD_ALU_XOR_X => "#xor_x",
            AD_VLAN_TAG => "#vlan_tci",
            AD_VLAN_TAG_PRESENT => "#vlan_avail",
            AD_PAY_OFFSET => "#poff",
            AD_RANDOM => "#rand",
            AD_VLAN_TPID => "#vlan_tpid",
            _ => return None,
        })
    }
}

/// Parses a binary program: consecutive 8-byte `struct sock_filter`
/// records in host byte order (what `SO_ATTACH_FILTER` takes).
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<SockFilter>, CbpfError> {
    if bytes.len() % SockFilter::SIZE != 0 {
        return Err(CbpfError::RawLength { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(SockFilter::SIZE)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            SockFilter::from_bytes(b)
        })
        .collect())
}

/// Encodes a program as consecutive 8-byte records in host byte order.
pub fn to_bytes(prog: &[SockFilter]) -> Vec<u8> {
    prog.iter().flat_map(|i| i.to_bytes()).collect()
}

fn parse_num(tok: &str, line: usize, what: &str) -> Result<u64, CbpfError> {
    let t = tok.trim();
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else {
        t.parse::<u64>()
    };
    r.map_err(|_| CbpfError::Parse { line, msg: format!("{what} {t:?} is not a number") })
}

fn field<T: TryFrom<u64>>(v: u64, line: usize, what: &str) -> Result<T, CbpfError> {
    T::try_from(v).map_err(|_| CbpfError::Parse { line, msg: format!("{what} {v} is out of range") })
}

fn insn_from_fields(f: &[&str], line: usize) -> Result<SockFilter, CbpfError> {
    if f.len() != 4 {
        return Err(CbpfError::Parse { line, msg: format!("expected 4 fields (code jt jf k), found {}", f.len()) });
    }
    Ok(SockFilter {
        code: field(parse_num(f[0], line, "code")?, line, "code")?,
        jt: field(parse_num(f[1], line, "jt")?, line, "jt")?,
        jf: field(parse_num(f[2], line, "jf")?, line, "jf")?,
        k: field(parse_num(f[3], line, "k")?, line, "k")?,
    })
}

/// Parses `tcpdump -ddd` output: the first line is the instruction count,
/// then one `code jt jf k` line (decimal) per instruction.
///
/// The comma-separated one-line form used by iptables' `xt_bpf` and
/// `nfbpf_compile` (`4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0`) is accepted too;
/// there "line" in errors counts comma-separated records. Blank lines are
/// ignored. The count must match the number of instructions.
pub fn parse_ddd(text: &str) -> Result<Vec<SockFilter>, CbpfError> {
    let sep = if !text.trim().contains('\n') && text.contains(',') { ',' } else { '\n' };
    let mut records = text.split(sep).enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());
    let (line, first) = records.next().ok_or(CbpfError::Parse { line: 1, msg: "empty input".into() })?;
    let count: usize = field(parse_num(first, line, "instruction count")?, line, "instruction count")?;
    let mut prog = Vec::with_capacity(count.min(op::MAXINSNS));
    let mut last = line;
    for (line, l) in records {
        let f: Vec<&str> = l.split_whitespace().collect();
        prog.push(insn_from_fields(&f, line)?);
        last = line;
    }
    if prog.len() != count {
        return Err(CbpfError::Parse {
            line: last,
            msg: format!("the first line announces {count} instructions but {} follow", prog.len()),
        });
    }
    Ok(prog)
}

/// Parses `tcpdump -dd` output: one C initializer per line,
/// `{ 0x28, 0, 0, 0x0000000c },` (numbers in hex or decimal). Lines that
/// are blank or do not contain `{` are ignored, so a surrounding
/// `struct sock_filter code[] = { ... };` is accepted.
pub fn parse_dd(text: &str) -> Result<Vec<SockFilter>, CbpfError> {
    let mut prog = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        let Some(open) = l.find('{') else { continue };
        let rest = &l[open + 1..];
        if rest.contains('{') {
            // `struct sock_filter code[] = {` alone on a line opens the array.
            continue;
        }
        let Some(close) = rest.find('}') else {
            if rest.trim().is_empty() {
                continue;
            }
            return Err(CbpfError::Parse { line, msg: "missing '}'".into() });
        };
        let f: Vec<&str> = rest[..close].split(',').map(str::trim).collect();
        prog.push(insn_from_fields(&f, line)?);
    }
    if prog.is_empty() {
        return Err(CbpfError::Parse { line: 1, msg: "no `{ code, jt, jf, k }` instruction found".into() });
    }
    Ok(prog)
}

/// Parses either text form: `-dd` when the text contains `{`, else `-ddd`.
pub fn parse_text(text: &str) -> Result<Vec<SockFilter>, CbpfError> {
    if text.contains('{') {
        parse_dd(text)
    } else {
        parse_ddd(text)
    }
}

/// Formats a program as `tcpdump -ddd` prints it.
pub fn to_ddd(prog: &[SockFilter]) -> String {
    let mut s = format!("{}\n", prog.len());
    for i in prog {
        s += &format!("{} {} {} {}\n", i.code, i.jt, i.jf, i.k);
    }
    s
}

/// Formats a program as `tcpdump -dd` prints it.
pub fn to_dd(prog: &[SockFilter]) -> String {
    prog.iter().map(|i| format!("{{ 0x{:x}, {}, {}, 0x{:08x} }},\n", i.code, i.jt, i.jf, i.k)).collect()
}

/// Disassembles a program in the format of `tcpdump -d` (libpcap's
/// `bpf_image`), one `(NNN) op operand` line per instruction. Linux
/// ancillary loads are shown with the kernel `bpf_asm` names
/// (`ld #proto`); unknown opcodes as `unimp 0xNN`.
pub fn disassemble(prog: &[SockFilter]) -> String {
    let mut s = String::new();
    for (n, i) in prog.iter().enumerate() {
        s += &image(i, n);
        s.push('\n');
    }
    s
}

fn image(p: &SockFilter, n: usize) -> String {
    use op::*;
    let k = p.k;
    let ks = k as i32;
    let (o, operand): (&str, String) = match p.code {
        c if c == RET | K => ("ret", format!("#{k}")),
        c if c == RET | A => ("ret", "a".into()),
        c if c == RET | X => ("ret", "x".into()),
        c if c == LD | W | ABS || c == LD | H | ABS || c == LD | B | ABS => {
            let o = match p.code & 0x18 {
                W => "ld",
                H => "ldh",
                _ => "ldb",
            };
            match skf::ancillary(k).and_then(skf::asm_name) {
                Some(name) => (o, name.into()),
                None => (o, format!("[{ks}]")),
            }
        }
        c if c == LD | W | LEN => ("ld", "#pktlen".into()),
        c if c == LD | W | IND => ("ld", format!("[x + {ks}]")),
        c if c == LD | H | IND => ("ldh", format!("[x + {ks}]")),
        c if c == LD | B | IND => ("ldb", format!("[x + {ks}]")),
        c if c == LD | IMM => ("ld", format!("#0x{k:x}")),
        c if c == LDX | IMM => ("ldx", format!("#0x{k:x}")),
        c if c == LDX | MSH | B => ("ldxb", format!("4*([{ks}]&0xf)")),
        c if c == LD | MEM => ("ld", format!("M[{k}]")),
        c if c == LDX | MEM => ("ldx", format!("M[{k}]")),
        c if c == LDX | W | LEN => ("ldx", "#pktlen".into()),
        c if c == ST => ("st", format!("M[{k}]")),
        c if c == STX => ("stx", format!("M[{k}]")),
        c if c == JMP | JA => ("ja", format!("{}", n as u64 + 1 + k as u64)),
        c if c == MISC | TAX => ("tax", String::new()),
        c if c == MISC | TXA => ("txa", String::new()),
        c if c == ALU | NEG => ("neg", String::new()),
        c if c & 0x07 == JMP && matches!(c & 0xf0, JEQ | JGT | JGE | JSET) && c & !0xf8 == JMP => {
            let o = match c & 0xf0 {
                JEQ => "jeq",
                JGT => "jgt",
                JGE => "jge",
                _ => "jset",
            };
            let operand = if c & X != 0 { "x".to_string() } else { format!("#0x{k:x}") };
            return format!("({n:03}) {o:<8} {operand:<16} jt {}\tjf {}", n + 1 + p.jt as usize, n + 1 + p.jf as usize);
        }
        c if c & 0x07 == ALU && c & !0xf8 == ALU && (c & 0xf0) != NEG && (c & 0xf0) <= XOR => {
            let o = match c & 0xf0 {
                ADD => "add",
                SUB => "sub",
                MUL => "mul",
                DIV => "div",
                OR => "or",
                AND => "and",
                LSH => "lsh",
                RSH => "rsh",
                MOD => "mod",
                _ => "xor",
            };
            let operand = if c & X != 0 {
                "x".to_string()
            } else if matches!(c & 0xf0, AND | OR | XOR) {
                format!("#0x{k:x}")
            } else {
                format!("#{k}")
            };
            (o, operand)
        }
        c => return format!("({n:03}) unimp    0x{c:x}"),
    };
    if operand.is_empty() {
        format!("({n:03}) {o}")
    } else {
        format!("({n:03}) {o:<8} {operand}")
    }
}

impl fmt::Display for SockFilter {
    /// The libpcap disassembly of the instruction as if it were at index 0
    /// (jump targets are shown relative: `jt 1+jt`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = image(self, 0);
        f.write_str(s.strip_prefix("(000) ").unwrap_or(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT22_DDD: &str = "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n";

    #[test]
    fn ddd_roundtrip_and_line_errors() {
        let p = parse_ddd(PORT22_DDD).unwrap();
        assert_eq!(p[1], SockFilter::jump(0x15, 2048, 0, 1));
        assert_eq!(to_ddd(&p), PORT22_DDD);
        assert_eq!(parse_ddd("4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0").unwrap(), p);
        let e = parse_ddd("2\n40 0 0 12\n21 0 x 2048\n").unwrap_err().to_string();
        assert!(e.starts_with("line 3:") && e.contains("jf"), "{e}");
        let e = parse_ddd("3\n40 0 0 12\n6 0 0 0\n").unwrap_err().to_string();
        assert!(e.contains("announces 3") && e.starts_with("line 3"), "{e}");
        let e = parse_ddd("1\n40 0 0 99999999999\n").unwrap_err().to_string();
        assert!(e.starts_with("line 2") && e.contains("k 99999999999 is out of range"), "{e}");
        let e = parse_ddd("1\n40 300 0 1\n").unwrap_err().to_string();
        assert!(e.contains("jt 300"), "{e}");
        let e = parse_ddd("1\n40 0 0\n").unwrap_err().to_string();
        assert!(e.contains("expected 4 fields"), "{e}");
    }

    #[test]
    fn dd_roundtrip_and_errors() {
        let p = parse_ddd(PORT22_DDD).unwrap();
        let dd = to_dd(&p);
        assert_eq!(dd.lines().next(), Some("{ 0x28, 0, 0, 0x0000000c },"));
        assert_eq!(parse_dd(&dd).unwrap(), p);
        assert_eq!(parse_text(&dd).unwrap(), p);
        assert_eq!(parse_text(PORT22_DDD).unwrap(), p);
        let wrapped = format!("struct sock_filter code[] = {{\n{dd}}};\n");
        assert_eq!(parse_dd(&wrapped).unwrap(), p);
        let e = parse_dd("{ 0x28, 0, 0, 0x0c },\n{ 0x15, 0, zz, 0x800 },\n").unwrap_err().to_string();
        assert!(e.starts_with("line 2") && e.contains("jf \"zz\""), "{e}");
        assert!(parse_dd("nothing here").is_err());
    }

    #[test]
    fn bytes_roundtrip() {
        let p = parse_ddd(PORT22_DDD).unwrap();
        let b = to_bytes(&p);
        assert_eq!(b.len(), 32);
        assert_eq!(parse_bytes(&b).unwrap(), p);
        assert!(matches!(parse_bytes(&b[..31]), Err(CbpfError::RawLength { len: 31 })));
    }

    #[test]
    fn disassembly_matches_libpcap_format() {
        let p = parse_ddd(PORT22_DDD).unwrap();
        let d = disassemble(&p);
        assert_eq!(
            d,
            "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 3\n(002) ret      #262144\n(003) ret      #0\n"
        );
        let anc = SockFilter::stmt(0x20, (skf::AD_OFF + skf::AD_PROTOCOL) as u32);
        assert_eq!(anc.to_string(), "ld       #proto");
        assert_eq!(SockFilter::stmt(0xb1, 14).to_string(), "ldxb     4*([14]&0xf)");
        assert_eq!(SockFilter::stmt(0xff, 0).to_string(), "unimp    0xff");
    }
}
