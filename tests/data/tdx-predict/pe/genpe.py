#!/usr/bin/env python3
"""Generates the small PE images used by the predict unit tests (run in this directory).

a.efi, b.efi: PE32+ with three sections (b: section table out of file order, trailing data).
bz.efi: a PE32+ that also carries a Linux boot-protocol 2.15 setup header at 0x1f1 (like a
bzImage with its EFI stub); bz.patched.efi is bz.efi with the edits QEMU makes for
`-kernel bz.efi -initrd <4096 bytes> -append "console=ttyS0"` and 2 GiB of RAM.
uki.efi: a unified kernel image: .linux (a.efi), .cmdline, .initrd sections.
"""
import struct


def pe(sections, lfanew=0x80, trailing=b'', order=None, hdr_size=0x400, setup=None):
    nsec = len(sections)
    dos = bytearray(lfanew)
    dos[0:2] = b'MZ'
    struct.pack_into('<I', dos, 0x3c, lfanew)
    coff = struct.pack('<HHIIIHH', 0x8664, nsec, 0, 0, 0, 240, 0x22)
    opt = bytearray(240)
    struct.pack_into('<H', opt, 0, 0x20b)
    struct.pack_into('<I', opt, 16, 0x1000)
    struct.pack_into('<Q', opt, 24, 0x140000000)
    struct.pack_into('<II', opt, 32, 0x1000, 0x200)
    struct.pack_into('<I', opt, 56, 0x1000 * (nsec + 2))
    struct.pack_into('<I', opt, 60, hdr_size)
    struct.pack_into('<I', opt, 64, 0x12345678)  # CheckSum, not hashed
    struct.pack_into('<H', opt, 68, 10)
    struct.pack_into('<I', opt, 108, 16)
    hdr = bytearray(dos + b'PE\0\0' + coff + opt)
    off = hdr_size
    table = []
    body = bytearray()
    for i, (name, data) in enumerate(sections):
        raw = len(data) + (-len(data) % 0x200)
        table.append(struct.pack('<8sIIIIIIHHI', name, len(data), 0x1000 * (i + 1), raw, off, 0, 0, 0, 0,
                                 0x60000020))
        body += data + bytes(raw - len(data))
        off += raw
    for i in (order or range(nsec)):
        hdr += table[i]
    hdr += bytes(hdr_size - len(hdr))
    if setup:
        for o, v in setup.items():
            hdr[o:o + len(v)] = v
    return bytes(hdr + body + trailing)


def pattern(n, k):
    return bytes(((i * 31 + k * 7) & 0xff) for i in range(n))


three = [(b'.text', pattern(0x200, 0)), (b'.data', pattern(0x400, 1)), (b'.linux', pattern(0x200, 2))]
a = pe(three)
open('a.efi', 'wb').write(a)
open('b.efi', 'wb').write(pe(three, trailing=bytes(range(256)) * 2, order=(2, 0, 1)))

# Setup header: setup_sects 3, "HdrS", protocol 2.15, loadflags LOADED_HIGH,
# initrd_addr_max 0x7fffffff, xloadflags XLF_CAN_BE_LOADED_ABOVE_4G.
setup = {0x1f1: b'\x03', 0x202: b'HdrS', 0x206: struct.pack('<H', 0x20f), 0x211: b'\x01',
         0x22c: struct.pack('<I', 0x7fffffff), 0x236: struct.pack('<H', 0x40)}
bz = pe([(b'.text', pattern(0x600, 3))], lfanew=0x40, setup=setup)
open('bz.efi', 'wb').write(bz)
p = bytearray(bz)
initrd_size = 4096
initrd_max = 0x80000000 - 0x28000 - 1
p[0x210] = 0xb0
p[0x211] |= 0x80
p[0x224:0x226] = struct.pack('<H', 0x20000 - 0x10000 - 0x200)
p[0x228:0x22c] = struct.pack('<I', 0x20000)
p[0x218:0x21c] = struct.pack('<I', (initrd_max - initrd_size) & ~4095)
p[0x21c:0x220] = struct.pack('<I', initrd_size)
open('bz.patched.efi', 'wb').write(p)

uki = pe([(b'.osrel', b'ID=conker\n'), (b'.cmdline', b'console=ttyS0 root=/dev/vda\n'),
          (b'.initrd', pattern(0x300, 4)), (b'.linux', a)])
open('uki.efi', 'wb').write(uki)
