# tcpdump 'port 22' (the first filter of ../shared/seeds/004), converted by
# hand from `tcpdump -d 'port 22'` to eBPF with direct packet access.
# r1 points to { u64 data; u64 data_end; }. Returns 262144 on a match, else 0;
# a load beyond the packet ends the filter with 0, as in classic BPF.
    ldxdw %r2, [%r1+8]
    ldxdw %r1, [%r1+0]
    sub %r2, %r1
    mov %r0, 0
    jlt %r2, 14, out
    ldxh %r3, [%r1+12]
    be16 %r3
    jne %r3, 0x86dd, ipv4
    jlt %r2, 21, out
    ldxb %r3, [%r1+20]
    jeq %r3, 0x84, v6ports
    jeq %r3, 6, v6ports
    jne %r3, 0x11, out
v6ports:
    jlt %r2, 56, out
    ldxh %r3, [%r1+54]
    be16 %r3
    jeq %r3, 22, match
    jlt %r2, 58, out
    ldxh %r3, [%r1+56]
    be16 %r3
    jeq %r3, 22, match
    ja out
ipv4:
    jne %r3, 0x800, out
    jlt %r2, 24, out
    ldxb %r3, [%r1+23]
    jeq %r3, 0x84, v4ports
    jeq %r3, 6, v4ports
    jne %r3, 0x11, out
v4ports:
    ldxh %r3, [%r1+20]
    be16 %r3
    jset %r3, 0x1fff, out
    ldxb %r4, [%r1+14]
    and %r4, 0xf
    lsh %r4, 2
    mov %r5, %r4
    add %r5, 16
    jgt %r5, %r2, out
    mov %r6, %r1
    add %r6, %r4
    ldxh %r3, [%r6+14]
    be16 %r3
    jeq %r3, 22, match
    mov %r5, %r4
    add %r5, 18
    jgt %r5, %r2, out
    ldxh %r3, [%r6+16]
    be16 %r3
    jeq %r3, 22, match
    ja out
match:
    mov %r0, 262144
out:
    exit
