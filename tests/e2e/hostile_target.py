#!/usr/bin/python3
"""A hostile process for test_hostile.py: it maps an executable file, then turns the path
that llmtap would follow to that file against it. Run as root; prints 'ready' when set.

    hostile_target.py fifo    ROOT LIB           map ROOT/lib.so, chroot into ROOT, and put
                                                 a FIFO where ROOT/lib.so leads in that root
    hostile_target.py symlink ROOT LIB TARGET    ... a symbolic link to TARGET (a file
                                                 outside its root) there instead
    hostile_target.py cut     ROOT               map ROOT/cut.so (an ELF file whose symbol
                                                 table is 48 MiB, sparse) and cut it to one
                                                 page and back, again and again

    hostile_target.py ident   ROOT LIBLLAMA      load LIBLLAMA (so a daemon attaches), map
                                                 ROOT/evil.gguf, a GGUF header whose
                                                 general.name is NAME_HEX (argv[4], hex),
                                                 and call itself COMM_HEX (argv[5], hex)
                                                 with prctl(PR_SET_NAME); its environment,
                                                 the test's, claims an identity

LIB: the executable file copied to ROOT/lib.so. The process maps it from ROOT/lib.so, so
/proc/PID/maps (read from llmtap's root) names ROOT/lib.so; after the chroot the same path
inside its root is ROOT/ROOT/lib.so on the host, which it controls.
"""
import ctypes
import mmap
import os
import shutil
import signal
import struct
import sys
import time

PAGE = 4096
SYMTAB = 48 << 20  # bytes: 2 Mi symbols of 24 bytes, under llmtap's 64 MiB bound


def map_exec(path, length=0):
    fd = os.open(path, os.O_RDONLY)
    m = mmap.mmap(fd, length, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_EXEC)
    os.close(fd)
    return m


def elf_with_big_symtab(path):
    """ELF64 x86-64 ET_DYN: one PT_LOAD, .symtab (SYMTAB bytes of zeros at PAGE, a hole),
    .strtab and .shstrtab in the first page. Cutting the file to PAGE keeps its headers."""
    shstr = b"\0.symtab\0.strtab\0.shstrtab\0"
    shstr_at, str_at, sh_at = 128, 160, 256
    ehdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack(
        "<HHIQQQIHHHHHH", 3, 62, 1, 0, 64, sh_at, 0, 64, 56, 1, 64, 4, 3)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, PAGE, PAGE, PAGE)
    null = bytes(64)
    symtab = struct.pack("<IIQQQQIIQQ", 1, 2, 0, 0, PAGE, SYMTAB, 2, 1, 8, 24)
    strtab = struct.pack("<IIQQQQIIQQ", 9, 3, 0, 0, str_at, 1, 0, 0, 1, 0)
    shstrtab = struct.pack("<IIQQQQIIQQ", 17, 3, 0, 0, shstr_at, len(shstr), 0, 0, 1, 0)
    page = bytearray(PAGE)
    page[0:64] = ehdr
    page[64:64 + 56] = phdr
    page[shstr_at:shstr_at + len(shstr)] = shstr
    page[sh_at:sh_at + 256] = null + symtab + strtab + shstrtab
    with open(path, "wb") as f:
        f.write(page)
        f.truncate(PAGE + SYMTAB)


def gguf_header(path, name):
    """A GGUF v3 file of no tensors: general.architecture "llama", general.name name (bytes)."""
    def string(b):
        return struct.pack("<Q", len(b)) + b

    def kv_str(key, value):
        return string(key.encode()) + struct.pack("<I", 8) + string(value)  # 8: GGUF string
    kvs = [kv_str("general.architecture", b"llama"), kv_str("general.name", name)]
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs))
        f.write(bytes(-f.tell() % PAGE))


def main():
    mode, root = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if mode == "cut":
        path = os.path.join(root, "cut.so")
        elf_with_big_symtab(path)
        keep = map_exec(path, PAGE)  # noqa: F841 (the mapping is the point)
        fd = os.open(path, os.O_WRONLY)
        print("ready", flush=True)
        while True:
            os.ftruncate(fd, PAGE)
            os.ftruncate(fd, PAGE + SYMTAB)
            time.sleep(0.0002)
    if mode == "ident":
        path = os.path.join(root, "evil.gguf")
        gguf_header(path, bytes.fromhex(sys.argv[4]))
        fd = os.open(path, os.O_RDONLY)
        keep = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)  # noqa: F841
        os.close(fd)
        comm = ctypes.create_string_buffer(bytes.fromhex(sys.argv[5]))
        if ctypes.CDLL(None, use_errno=True).prctl(15, comm, 0, 0, 0):  # PR_SET_NAME
            sys.exit(f"prctl: {os.strerror(ctypes.get_errno())}")
        # last: a daemon may attach as soon as libllama is mapped
        libllama = ctypes.CDLL(sys.argv[3])  # noqa: F841 (mapped is the point)
        print("ready", flush=True)
        while True:
            signal.pause()
    lib = os.path.join(root, "lib.so")
    shutil.copyfile(sys.argv[3], lib)
    keep = map_exec(lib)  # noqa: F841
    os.chroot(root)
    os.chdir("/")
    os.makedirs(os.path.dirname(lib), exist_ok=True)  # lib's path, inside its root now
    if mode == "fifo":
        os.mkfifo(lib)
    else:
        os.symlink(sys.argv[4], lib)
    print("ready", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
