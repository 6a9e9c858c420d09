//! Running converted filters on uxdp-vm: the helpers the converted code
//! calls, and [`Filter`], a checked, converted and loaded program.

use crate::context::{NetDevice, Packet, SkbContext};
use crate::convert::{
    convert, HELPER_CPU, HELPER_LOAD_B, HELPER_LOAD_H, HELPER_LOAD_W, HELPER_PAY_OFFSET, HELPER_PRANDOM,
};
use crate::insn::SockFilter;
use crate::semantics::{current_cpu, random_u32, View};
use crate::CbpfError;
use std::sync::{Arc, OnceLock};
use uxdp_isa::Insn;
use uxdp_vm::{Helpers, LoadOptions, Machine, Program, Region, Stack, VmError};

const EFAULT: u64 = (-14i64) as u64;

fn context_view<'m>(m: &'m Machine<'_>, ctx: u64, helper: &'static str) -> Result<View<'m>, VmError> {
    let bad = |msg: &str| VmError::Helper { pc: m.pc(), helper, msg: msg.to_string() };
    let bytes = m.mem.slice(ctx, SkbContext::SIZE as u64).ok_or_else(|| bad("r1 is not a classic filter context"))?;
    let c = SkbContext::from_bytes(bytes).ok_or_else(|| bad("short context"))?;
    let data = m
        .mem
        .slice(c.data, c.caplen as u64)
        .ok_or_else(|| bad("the context's packet is not readable by the program"))?;
    Ok(View::of_context(&c, data))
}

fn load_helper<const N: usize>(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    let name = match N {
        1 => "cbpf_skb_load_helper_8",
        2 => "cbpf_skb_load_helper_16",
        _ => "cbpf_skb_load_helper_32",
    };
    let v = context_view(m, a[0], name)?;
    Ok(v.load(a[1] as u32 as i32, N).map_or(EFAULT, u64::from))
}

fn pay_offset_helper(m: &mut Machine<'_>, a: [u64; 5]) -> Result<u64, VmError> {
    const NAME: &str = "cbpf_skb_get_pay_offset";
    let v = context_view(m, a[0], NAME)?;
    crate::dissect::payload_offset(&v).map(u64::from).map_err(|what| VmError::Helper {
        pc: m.pc(),
        helper: NAME,
        msg: format!("SKF_AD_PAY_OFFSET: flow dissection of {what} is not implemented"),
    })
}

fn cpu_helper(_: &mut Machine<'_>, _: [u64; 5]) -> Result<u64, VmError> {
    Ok(current_cpu() as u64)
}

fn prandom_helper(_: &mut Machine<'_>, _: [u64; 5]) -> Result<u64, VmError> {
    Ok(random_u32() as u64)
}

/// The helpers converted classic programs call (see
/// [`crate::convert`](mod@crate::convert) for their ids).
pub fn helpers() -> Arc<Helpers> {
    static H: OnceLock<Arc<Helpers>> = OnceLock::new();
    H.get_or_init(|| {
        let mut h = Helpers::new();
        h.register(HELPER_LOAD_B, "cbpf_skb_load_helper_8", load_helper::<1>)
            .register(HELPER_LOAD_H, "cbpf_skb_load_helper_16", load_helper::<2>)
            .register(HELPER_LOAD_W, "cbpf_skb_load_helper_32", load_helper::<4>)
            .register(HELPER_PAY_OFFSET, "cbpf_skb_get_pay_offset", pay_offset_helper)
            .register(HELPER_CPU, "get_smp_processor_id", cpu_helper)
            .register(HELPER_PRANDOM, "get_prandom_u32", prandom_helper);
        h.into_shared()
    })
    .clone()
}

/// A classic filter ready to run on uxdp's interpreter: checked with the
/// kernel's rules, converted to eBPF and loaded.
///
/// A `Filter` is immutable and `Sync`: share it between threads, each with
/// its own [`Stack`].
#[derive(Debug)]
pub struct Filter {
    classic: Vec<SockFilter>,
    ebpf: Vec<Insn>,
    prog: Program,
}

impl Filter {
    /// Checks, converts and loads `prog`.
    pub fn new(prog: &[SockFilter]) -> Result<Filter, CbpfError> {
        let ebpf = convert(prog)?;
        let loaded = Program::load(&ebpf, &LoadOptions::new(helpers()))?;
        Ok(Filter { classic: prog.to_vec(), ebpf, prog: loaded })
    }

    /// Compiles a tcpdump expression with libpcap for `linktype` and loads
    /// it (see [`crate::libpcap::compile`]).
    #[cfg(feature = "pcap")]
    pub fn compile(expr: &str, linktype: crate::LinkType, snaplen: u32) -> Result<Filter, CbpfError> {
        Filter::new(&crate::libpcap::compile(expr, linktype, snaplen)?)
    }

    /// The classic program.
    pub fn classic(&self) -> &[SockFilter] {
        &self.classic
    }

    /// The converted eBPF program.
    pub fn ebpf(&self) -> &[Insn] {
        &self.ebpf
    }

    /// The loaded program.
    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// Runs the filter on an Ethernet frame as a plain offline packet
    /// ([`Packet::ethernet`]: `ld len` is the captured length, the protocol
    /// comes from the Ethernet header) and returns the classic return
    /// value: the number of bytes to keep, 0 for no match.
    pub fn run(&self, stack: &mut Stack, packet: &[u8]) -> Result<u32, CbpfError> {
        self.run_packet(stack, &Packet::ethernet(packet))
    }

    /// Runs the filter on a packet with explicit metadata.
    pub fn run_packet(&self, stack: &mut Stack, p: &Packet<'_>) -> Result<u32, CbpfError> {
        let dev = p.device.map(|d| NetDevice { ifindex: d.ifindex, hatype: d.hatype, _pad: 0 });
        let ctx = SkbContext::new(p, dev.as_ref());
        let mut env = ();
        let mut m = Machine::new(&self.prog, stack, &mut env);
        let ctx_bytes = ctx.as_bytes();
        m.mem.push(Region::of_slice(ctx_bytes));
        m.mem.push(Region::of_slice(p.data));
        if let Some(d) = dev.as_ref() {
            m.mem.push(Region::of_slice(d.as_bytes()));
        }
        m.legacy_packet = (p.data.as_ptr() as u64, p.data.len() as u64);
        let r = m.run(ctx_bytes.as_ptr() as u64)?;
        Ok(r as u32)
    }

    /// Whether the filter accepts the Ethernet frame (`run` returns non-zero).
    pub fn matches(&self, stack: &mut Stack, packet: &[u8]) -> Result<bool, CbpfError> {
        Ok(self.run(stack, packet)? != 0)
    }

    /// Whether the filter accepts the packet (`run_packet` returns non-zero).
    pub fn matches_packet(&self, stack: &mut Stack, p: &Packet<'_>) -> Result<bool, CbpfError> {
        Ok(self.run_packet(stack, p)? != 0)
    }
}
