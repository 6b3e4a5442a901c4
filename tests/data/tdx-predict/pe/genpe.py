import struct,sys
def pe(trailing=b'', order=(0,1,2)):
    fa=0x200
    nsec=3
    dos=bytearray(0x80); dos[0:2]=b'MZ'; struct.pack_into('<I',dos,0x3c,0x80)
    coff=struct.pack('<HHIIIHH',0x8664,nsec,0,0,0,240,0x22)
    opt=bytearray(240)
    struct.pack_into('<H',opt,0,0x20b)
    struct.pack_into('<I',opt,16,0x1000)  # entry
    struct.pack_into('<Q',opt,24,0x140000000)
    struct.pack_into('<II',opt,32,0x1000,fa)
    struct.pack_into('<I',opt,56,0x5000) # SizeOfImage
    struct.pack_into('<I',opt,60,0x400) # SizeOfHeaders
    struct.pack_into('<I',opt,64,0x12345678) # checksum (excluded)
    struct.pack_into('<H',opt,68,10) # subsystem EFI app
    struct.pack_into('<I',opt,108,16)
    hdr=bytearray(dos+b'PE\0\0'+coff+opt)
    names=[b'.text',b'.data',b'.linux']
    raws=[(0x400,0x200),(0x600,0x400),(0xa00,0x200)]
    # place section headers in given order (to make table order differ from raw order)
    for i,idx in enumerate(order):
        off,sz=raws[idx]
        hdr+=struct.pack('<8sIIIIIIHHI',names[idx],sz,0x1000*(idx+1),sz,off,0,0,0,0,0x60000020)
    hdr+=bytes(0x400-len(hdr))
    body=bytearray()
    for idx in range(3):
        off,sz=raws[idx]
        body+=bytes(((i*31+idx*7)&0xff) for i in range(sz))
    return bytes(hdr+body+trailing)
open('a.efi','wb').write(pe())
open('b.efi','wb').write(pe(trailing=bytes(range(256))*2, order=(2,0,1)))
