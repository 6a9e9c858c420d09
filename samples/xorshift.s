# xorshift64 for 10,000 rounds; r1 (the context) is ignored. (benchmark program)
    mov %r0, 88172645
    mov %r2, 0
loop:
    mov %r3, %r0
    lsh %r3, 13
    xor %r0, %r3
    mov %r3, %r0
    rsh %r3, 7
    xor %r0, %r3
    mov %r3, %r0
    lsh %r3, 17
    xor %r0, %r3
    add %r2, 1
    jlt %r2, 10000, loop
    exit
