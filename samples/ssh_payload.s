# tcpdump 'tcp port 22 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)'
# (the second filter of ../shared/seeds/004: SSH segments carrying data),
# converted by hand from `tcpdump -d` to eBPF with direct packet access.
# r1 points to { u64 data; u64 data_end; }. Returns 262144 on a match, else 0.
    ldxdw %r2, [%r1+8]
    ldxdw %r1, [%r1+0]
    sub %r2, %r1
    mov %r0, 0
    jlt %r2, 14, out
    ldxh %r3, [%r1+12]
    be16 %r3
    jne %r3, 0x800, out
    jlt %r2, 24, out
    ldxb %r3, [%r1+23]
    jne %r3, 6, out
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
    jeq %r3, 22, ports_ok
    mov %r5, %r4
    add %r5, 18
    jgt %r5, %r2, out
    ldxh %r3, [%r6+16]
    be16 %r3
    jne %r3, 22, out
ports_ok:
    ldxh %r7, [%r1+16]
    be16 %r7
    sub32 %r7, %r4
    mov %r5, %r4
    add %r5, 27
    jgt %r5, %r2, out
    ldxb %r3, [%r6+26]
    and %r3, 0xf0
    rsh %r3, 2
    jeq %r7, %r3, out
    mov %r0, 262144
out:
    exit
