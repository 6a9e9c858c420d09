#!/usr/bin/env python3
"""Differential check of uxdp-object against libbpf's own gen-loader.

`bpftool gen skeleton -L` makes libbpf relocate an object in gen-loader
form (maps as BPF_PSEUDO_MAP_IDX, data as BPF_PSEUDO_MAP_IDX_VALUE, the same
form uxdp-object produces) and embeds the instructions in the skeleton's
data blob. This script looks for each program uxdp-object relocated,
byte for byte, in that blob.

Usage (from the workspace root; needs bpftool, run by hand, not by CI):
    cargo run -p uxdp-object --example dump_insns -- /tmp/progs OBJ.o...
    python3 crates/object/scripts/compare_with_libbpf.py /tmp/progs OBJ.o...

Known, expected differences: kfunc calls and `__ksym` references. libbpf's
gen-loader leaves their `imm` 0 (its loader program writes the kernel BTF
id at run time); uxdp-object puts the object's local BTF id there. And
CO-RE: the gen-loader leaves CO-RE relocations to the kernel, so its blob
keeps clang's values where libbpf's rules differ from clang's (bitfield
load sizes); these are reported as DIFF. Objects bpftool cannot
open (iproute2-style section names) or that pin maps are reported as
NOLSKEL. Do not run it as root on a machine whose /sys/fs/bpf matters:
libbpf may try to pin maps declared with LIBBPF_PIN_BY_NAME.
"""
import glob
import os
import re
import subprocess
import sys


def c_string(s):
    out, i = bytearray(), 0
    simple = {'n': 10, 't': 9, 'r': 13, '\\': 92, '"': 34, "'": 39, 'a': 7, 'b': 8, 'f': 12, 'v': 11, '?': 63}
    while i < len(s):
        c = s[i]
        if c != '\\':
            out.append(ord(c))
            i += 1
            continue
        n = s[i + 1]
        if n == '\n':
            i += 2
        elif n == 'x':
            j = i + 2
            while j < len(s) and j < i + 4 and s[j] in '0123456789abcdefABCDEF':
                j += 1
            out.append(int(s[i + 2:j], 16))
            i = j
        elif n in '01234567':
            j = i + 1
            while j < len(s) and j < i + 4 and s[j] in '01234567':
                j += 1
            out.append(int(s[i + 1:j], 8))
            i = j
        else:
            out.append(simple[n])
            i += 2
    return bytes(out)


def is_kfunc_imm_only(ours, theirs):
    kfunc = ours[0] == 0x85 and ours[1] >> 4 == 2 and theirs[:4] == bytes([0x85, 0x20, 0, 0])
    ksym = ours[0] == 0x18 and ours[1] >> 4 == 3 and theirs[:4] == ours[:4]
    return kfunc or ksym


def main():
    progs_dir, objs = sys.argv[1], sys.argv[2:]
    stats = {'exact': 0, 'kfunc_imm_only': 0, 'diff': 0, 'missing': 0, 'nolskel': 0}
    for obj in objs:
        base = os.path.basename(obj)
        progs = sorted(glob.glob(f'{progs_dir}/{base}__*.bin'))
        r = subprocess.run(['bpftool', 'gen', 'skeleton', '-L', obj, 'name', 'x'], capture_output=True, text=True)
        m = re.search(r'opts\.data = \(void \*\)"\\\n(.*?)";\n', r.stdout, re.S)
        if r.returncode != 0 or not m:
            stats['nolskel'] += len(progs)
            print('NOLSKEL', base)
            continue
        blob = c_string(m.group(1))
        for p in progs:
            ours = open(p, 'rb').read()
            name = os.path.basename(p)
            if ours in blob:
                stats['exact'] += 1
                continue
            n, best = len(ours) // 8, None
            # Anchor on the first 4-instruction window that occurs in the blob.
            for k in range(max(n - 3, 1)):
                anchor = ours[8 * k:8 * k + 32]
                pos = blob.find(anchor)
                while pos != -1:
                    start = pos - 8 * k
                    cand = blob[start:start + len(ours)] if start >= 0 else b''
                    if len(cand) == len(ours):
                        diffs = [i for i in range(n) if cand[8 * i:8 * i + 8] != ours[8 * i:8 * i + 8]]
                        if best is None or len(diffs) < len(best[1]):
                            best = (start, diffs)
                    pos = blob.find(anchor, pos + 1)
                if best is not None:
                    break
            if best is None:
                stats['missing'] += 1
                print('MISSING', name)
                continue
            start, diffs = best
            real = [i for i in diffs if not is_kfunc_imm_only(ours[8 * i:8 * i + 8], blob[start + 8 * i:start + 8 * i + 8])]
            if not real:
                stats['kfunc_imm_only'] += 1
                continue
            stats['diff'] += 1
            print('DIFF', name, ', '.join(f'insn {i}: ours {ours[8*i:8*i+8].hex()} libbpf {blob[start+8*i:start+8*i+8].hex()}' for i in real[:8]))
    print(stats)
    sys.exit(1 if stats['diff'] or stats['missing'] else 0)


if __name__ == '__main__':
    main()
