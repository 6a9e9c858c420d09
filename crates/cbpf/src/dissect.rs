//! `SKF_AD_PAY_OFFSET`: the kernel's `skb_get_poff()`, i.e. the basic flow
//! dissection (`skb_flow_dissect_flow_keys_basic`, no flags) followed by
//! `__skb_get_poff`.
//!
//! Implemented exactly for the protocols that matter to packet filters:
//! IPv4 (options, fragments), IPv6 (hop-by-hop, routing, destination and
//! fragment headers), 802.1Q / 802.1ad tags (in-band, and the out-of-band
//! tag), IP-in-IP and IPv6-in-IP encapsulation, ARP/RARP, MPLS and FCoE
//! (which the basic dissection stops at). A protocol the kernel dissects
//! further but this module does not (PPPoE, TIPC, batman-adv, PTP, HSR/PRP,
//! CFM, GRE, MPLS-in-IP) is reported by name instead of guessed; any other
//! EtherType fails dissection, which the kernel reports as offset 0.

use crate::semantics::View;

const MAX_HDRS: u32 = 15;

enum Next {
    /// Dissect `proto` at `nhoff` again.
    Proto,
    /// Dissect `ip_proto` at `nhoff`.
    IpProto,
    /// Stop: keys are valid.
    Good,
    /// Stop: dissection failed.
    Bad,
}

const FRAG: u8 = 1;
const FIRST_FRAG: u8 = 2;

/// The payload offset of the packet in `v`, or the name of a protocol on
/// the way that is not implemented.
pub(crate) fn payload_offset(v: &View<'_>) -> Result<u32, String> {
    let d = v.data;
    let be16 = |o: usize| d.get(o..o.checked_add(2)?).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut proto = if v.vlan_present() { v.vlan.0 } else { v.protocol };
    let mut nhoff = v.network_offset as usize;
    let mut ip_proto: u8 = 0;
    let mut flags = 0u8;
    let mut vlans_seen = 0u32;
    let mut num_hdrs = 0u32;
    let mut next = Next::Proto;
    let mut first = true;
    loop {
        // Every step after the first counts as one more header; past
        // MAX_FLOW_DISSECT_HDRS the kernel stops with what it has.
        if matches!(next, Next::Proto | Next::IpProto) && !first {
            num_hdrs += 1;
            if num_hdrs > MAX_HDRS {
                break;
            }
        }
        first = false;
        next = match next {
            Next::Proto => match proto {
                0x0800 => match d.get(nhoff..nhoff + 20) {
                    Some(h) if h[0] & 0x0f >= 5 => {
                        nhoff += (h[0] & 0x0f) as usize * 4;
                        ip_proto = h[9];
                        let frag_off = u16::from_be_bytes([h[6], h[7]]);
                        if frag_off & 0x3fff != 0 {
                            flags |= FRAG;
                            if frag_off & 0x1fff == 0 {
                                flags |= FIRST_FRAG;
                            }
                            Next::Good
                        } else {
                            Next::IpProto
                        }
                    }
                    _ => Next::Bad,
                },
                0x86dd => match d.get(nhoff..nhoff + 40) {
                    Some(h) => {
                        ip_proto = h[6];
                        nhoff += 40;
                        Next::IpProto
                    }
                    None => Next::Bad,
                },
                0x8100 | 0x88a8 => {
                    vlans_seen += 1;
                    if vlans_seen == 1 && v.vlan_present() {
                        proto = v.protocol;
                        Next::Proto
                    } else {
                        match be16(nhoff + 2) {
                            Some(p) => {
                                proto = p;
                                nhoff += 4;
                                Next::Proto
                            }
                            None => Next::Bad,
                        }
                    }
                }
                0x0806 | 0x8035 | 0x8847 | 0x8848 => Next::Good,
                0x8906 => {
                    if d.len() < nhoff + 38 {
                        Next::Bad
                    } else {
                        nhoff += 38;
                        Next::Good
                    }
                }
                0x8864 => return Err("PPPoE session (EtherType 0x8864)".into()),
                0x88ca => return Err("TIPC (EtherType 0x88ca)".into()),
                0x4305 => return Err("batman-adv (EtherType 0x4305)".into()),
                0x88f7 => return Err("PTP (EtherType 0x88f7)".into()),
                0x88fb | 0x892f => return Err(format!("HSR/PRP (EtherType {proto:#06x})")),
                0x8902 => return Err("CFM (EtherType 0x8902)".into()),
                _ => Next::Bad,
            },
            Next::IpProto => match ip_proto {
                0 | 43 | 60 if proto == 0x86dd => match d.get(nhoff..nhoff + 2) {
                    Some(h) => {
                        ip_proto = h[0];
                        nhoff += (h[1] as usize + 1) * 8;
                        Next::IpProto
                    }
                    None => Next::Bad,
                },
                44 if proto == 0x86dd => match d.get(nhoff..nhoff + 8) {
                    Some(h) => {
                        flags |= FRAG;
                        nhoff += 8;
                        ip_proto = h[0];
                        if u16::from_be_bytes([h[2], h[3]]) & 0xfff8 == 0 {
                            flags |= FIRST_FRAG;
                        }
                        Next::Good
                    }
                    None => Next::Bad,
                },
                4 => {
                    proto = 0x0800;
                    Next::Proto
                }
                41 => {
                    proto = 0x86dd;
                    Next::Proto
                }
                47 => return Err("GRE (IP protocol 47)".into()),
                137 => return Err("MPLS in IP (IP protocol 137)".into()),
                _ => Next::Good,
            },
            Next::Good => break,
            Next::Bad => return Ok(0),
        };
    }
    // key_control->thoff = min_t(u16, nhoff, skb->len)
    let mut poff = (nhoff as u16).min(v.len as u16) as u32;
    if flags & FRAG != 0 && flags & FIRST_FRAG == 0 {
        return Ok(poff);
    }
    match ip_proto {
        6 => {
            let Some(&doff) = d.get(poff as usize + 12) else { return Ok(poff) };
            poff += 20u32.max(((doff & 0xf0) >> 2) as u32);
        }
        17 | 136 => poff += 8,
        1 => poff += 8,
        58 => poff += 8,
        2 => poff += 8,
        33 => poff += 12,
        132 => poff += 12,
        _ => {}
    }
    Ok(poff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(d: &[u8], proto: u16) -> View<'_> {
        View { data: d, len: d.len() as u32, protocol: proto, vlan: (0, 0), mac_offset: Some(0), network_offset: 14 }
    }

    #[test]
    fn ipv4_transport_headers() {
        let mut p = vec![0u8; 80];
        p[12..14].copy_from_slice(&[0x08, 0x00]);
        p[14] = 0x45;
        p[23] = 1; // ICMP
        assert_eq!(payload_offset(&view(&p, 0x0800)), Ok(42));
        p[23] = 6;
        p[34 + 12] = 0x80; // doff 8 -> 32 bytes
        assert_eq!(payload_offset(&view(&p, 0x0800)), Ok(66));
        p[23] = 17;
        assert_eq!(payload_offset(&view(&p, 0x0800)), Ok(42));
        // later fragment: transport header not counted
        p[20] = 0x00;
        p[21] = 0x10;
        assert_eq!(payload_offset(&view(&p, 0x0800)), Ok(34));
        // truncated IPv4 header: dissection fails
        assert_eq!(payload_offset(&view(&p[..30], 0x0800)), Ok(0));
        assert_eq!(payload_offset(&view(&p, 0x1234)), Ok(0));
        assert!(payload_offset(&view(&p, 0x8864)).unwrap_err().contains("PPPoE"));
    }

    #[test]
    fn vlan_and_ipv6_extension_headers() {
        let mut p = vec![0u8; 120];
        p[14..16].copy_from_slice(&[0, 1]);
        p[16..18].copy_from_slice(&[0x86, 0xdd]);
        p[18 + 6] = 0; // hop-by-hop
        p[58] = 17; // next: UDP
        p[59] = 0; // 8 bytes
        assert_eq!(payload_offset(&view(&p, 0x8100)), Ok(18 + 40 + 8 + 8));
    }
}
