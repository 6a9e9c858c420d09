# Sum of all packet bytes of a {data, data_end} context, one byte load per
# iteration with a bounds check. (benchmark program)
    ldxdw %r2, [%r1+8]
    ldxdw %r1, [%r1+0]
    mov %r0, 0
loop:
    mov %r3, %r1
    add %r3, 1
    jgt %r3, %r2, out
    ldxb %r4, [%r1+0]
    add %r0, %r4
    mov %r1, %r3
    ja loop
out:
    exit
