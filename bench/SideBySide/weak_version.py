#!/usr/bin/env python3
"""Marks one symbol-version requirement of an ELF64 shared library weak, in place.

TorchSharp 0.107's libLibTorchSharp.so is linked against GCC 13's libstdc++ and so requires GLIBCXX_3.4.32, where
Debian 12's libstdc++ stops at 3.4.30; the dynamic loader then refuses the whole library. The only symbol of that
version it names is _ZSt21ios_base_library_initv, a marker that <iostream> declares so the static linker picks a new
enough libstdc++: no relocation refers to it, so nothing is ever looked up under that version. Setting VER_FLG_WEAK
on the requirement's .gnu.version_r entry makes glibc skip a missing version silently (dl-version.c, match_symbol)
instead of failing. Only the 2-byte flags field of that one entry changes; the script is idempotent.

    python3 weak_version.py LIB.so GLIBCXX_3.4.32
"""
import struct
import sys

SHT_GNU_VERNEED = 0x6FFFFFFE
VER_FLG_WEAK = 0x2


def mark_weak(path, version):
    with open(path, "r+b") as f:
        elf = bytearray(f.read())
        if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
            raise SystemExit(f"{path}: not a little-endian ELF64 file")
        shoff, = struct.unpack_from("<Q", elf, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
        verneed = [s for s in sections if s[1] == SHT_GNU_VERNEED]
        if not verneed:
            raise SystemExit(f"{path}: no .gnu.version_r section")
        _, _, _, _, offset, _, link, count, _, _ = verneed[0]
        strtab = sections[link][4]

        def name(index):
            start = strtab + index
            return elf[start:elf.index(0, start)].decode()

        changed = found = 0
        need = offset
        for _ in range(count):
            _, aux_count, _, aux, next_need = struct.unpack_from("<HHIII", elf, need)
            entry = need + aux
            for _ in range(aux_count):
                _, flags, _, name_index, next_aux = struct.unpack_from("<IHHII", elf, entry)
                if name(name_index) == version:
                    found += 1
                    if not flags & VER_FLG_WEAK:
                        struct.pack_into("<H", elf, entry + 4, flags | VER_FLG_WEAK)
                        changed += 1
                entry += next_aux
            need += next_need
        if not found:
            raise SystemExit(f"{path}: requires no version {version}")
        if changed:
            f.seek(0)
            f.write(elf)
        print(f"{path}: {version} {'marked weak' if changed else 'already weak'}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    mark_weak(sys.argv[1], sys.argv[2])
