#!/usr/bin/env python3
"""Writes samples/sample.pcap: a small synthetic Ethernet capture of our own
(SSH over IPv4/IPv6 with and without payload, HTTP, DNS, ARP, VLAN, SCTP,
fragments, IP options, a truncated frame) used by `uxdp demo` and tests."""
import struct, sys

def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

MAC_A = bytes.fromhex('020000000001'); MAC_B = bytes.fromhex('020000000002')
def eth(etype, payload, vlan=None):
    h = MAC_B + MAC_A
    if vlan is not None: h += struct.pack('!HH', 0x8100, vlan)
    return h + struct.pack('!H', etype) + payload
def ipv4(proto, payload, src='10.0.0.1', dst='10.0.0.2', frag=0, opts=b''):
    ihl = 5 + len(opts)//4
    a = bytes(map(int, src.split('.'))); b = bytes(map(int, dst.split('.')))
    h = struct.pack('!BBHHHBBH4s4s', 0x40|ihl, 0, 20+len(opts)+len(payload), 0x1234, frag, 64, proto, 0, a, b) + opts
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + payload
def ipv6(nh, payload):
    src = bytes.fromhex('fd000000000000000000000000000001'); dst = bytes.fromhex('fd000000000000000000000000000002')
    return struct.pack('!IHBB', 0x60000000, len(payload), nh, 64) + src + dst + payload
def tcp(sport, dport, data=b'', flags=0x18):
    return struct.pack('!HHIIBBHHH', sport, dport, 1, 1, 5<<4, flags, 65535, 0, 0) + data
def udp(sport, dport, data=b''):
    return struct.pack('!HHHH', sport, dport, 8+len(data), 0) + data
def sctp(sport, dport):
    return struct.pack('!HHII', sport, dport, 0, 0) + b'\0'*16

pkts = [
    eth(0x0800, ipv4(6, tcp(40000, 22, b'SSH-2.0-OpenSSH_9.2\r\n'))),
    eth(0x0800, ipv4(6, tcp(22, 40000, flags=0x10))),
    eth(0x0800, ipv4(6, tcp(40001, 80, b'GET / HTTP/1.1\r\n\r\n'))),
    eth(0x0800, ipv4(17, udp(5353, 53, b'\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00'))),
    eth(0x86dd, ipv6(6, tcp(40002, 22, b'hello over v6'))),
    eth(0x86dd, ipv6(17, udp(5353, 5353, b'mdns'))),
    eth(0x0806, struct.pack('!HHBBH6s4s6s4s', 1, 0x0800, 6, 4, 1, MAC_A, bytes([10,0,0,1]), b'\0'*6, bytes([10,0,0,2]))),
    eth(0x0800, ipv4(6, tcp(40003, 22, b'fragment tail'), frag=0x0010)),
    eth(0x0800, ipv4(6, tcp(40004, 22, b'vlan')), vlan=7),
    eth(0x0800, ipv4(6, tcp(40005, 22, b'x')))[:30],
    eth(0x0800, ipv4(6, tcp(40006, 22, b'with options'), opts=b'\x01\x01\x01\x00')),
    eth(0x0800, ipv4(132, sctp(40007, 22))),
    eth(0x0800, ipv4(6, tcp(22, 40008, b''))),
]
out = open(sys.argv[1] if len(sys.argv) > 1 else 'sample.pcap', 'wb')
out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
for i, p in enumerate(pkts):
    if len(p) < 60 and i != 9: p = p + b'\0' * (60 - len(p))
    out.write(struct.pack('<IIII', 1700000000 + i, 0, len(p), len(p)) + p)
print(f'{len(pkts)} packets')
