"""
A SHA-256 whose state can be saved after one request and taken up by another process.

An upload's chunks may reach different processes (several C{http.workers}, or replicas on one
object store), and the one that commits needs the digest of everything before. hashlib cannot
hand its state over, so without this the committing process reads the whole upload back and
hashes it again (0.6 s of CPU per GiB). Here the hashing is OpenSSL's own SHA-256 (the same
code hashlib runs, SHA extensions included) on a context this module owns, through ctypes, and
the state is saved as distribution saves it (Go's crypto/sha256 MarshalBinary, in
C{_uploads/<id>/hashstates/sha256/<offset>}), so either registry can take up the other's uploads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
from typing import Any

_MAGIC = b"sha\x03"
"""Go's crypto/sha256 marshalled-state prefix for SHA-256."""

_BLOCK = 64
MARSHALLED_SIZE = len(_MAGIC) + 8 * 4 + _BLOCK + 8


class _Context(ctypes.Structure):
    """OpenSSL's SHA256_CTX (<openssl/sha.h>): h[8], Nl, Nh, data[16], num, md_len (32-bit words)."""

    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * _BLOCK),
        ("num", ctypes.c_uint32),
        ("md_len", ctypes.c_uint32),
    ]


def _findLibcrypto() -> Any | None:
    """libcrypto's SHA256_Init/Update/Final (ctypes drops the GIL around each call), or None."""
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        functions = (library.SHA256_Init, library.SHA256_Update, library.SHA256_Final)
    except (OSError, AttributeError):
        return None
    context = ctypes.POINTER(_Context)
    functions[0].argtypes = [context]
    functions[1].argtypes = [context, ctypes.c_char_p, ctypes.c_size_t]
    functions[2].argtypes = [ctypes.c_char_p, context]
    for function in functions:
        function.restype = ctypes.c_int
    return library


_libcrypto = _findLibcrypto()


def _selfTest() -> bool:
    """The context layout is the one assumed (checked once against hashlib, at import)."""
    if _libcrypto is None:
        return False
    try:
        probe = ResumableSHA256()
        probe.update(b"registryd" * 20)
        resumed = ResumableSHA256.unmarshal(probe.marshal())
        resumed.update(b"!")
        return resumed.hexdigest() == hashlib.sha256(b"registryd" * 20 + b"!").hexdigest()
    except Exception:
        return False


class ResumableSHA256:
    """A SHA-256 with hashlib's update/hexdigest/copy, and L{marshal}/L{unmarshal} for its state."""

    name = "sha256"

    def __init__(self, context: _Context | None = None) -> None:
        if context is None:
            context = _Context()
            _libcrypto.SHA256_Init(ctypes.byref(context))
        self._context = context

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash more bytes (without the GIL: ctypes releases it for the call)."""
        if not isinstance(data, bytes):
            data = bytes(data)  # bytes are passed by address; anything else is copied once
        if data:
            _libcrypto.SHA256_Update(ctypes.byref(self._context), data, len(data))

    def copy(self) -> ResumableSHA256:
        """An independent hasher in the same state."""
        context = _Context()
        ctypes.pointer(context)[0] = self._context
        return ResumableSHA256(context)

    def digest(self) -> bytes:
        """The digest of what was hashed so far (this hasher can go on)."""
        out = ctypes.create_string_buffer(32)
        _libcrypto.SHA256_Final(out, ctypes.byref(self.copy()._context))
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()

    @property
    def length(self) -> int:
        """How many bytes were hashed."""
        return ((self._context.Nh << 32) | self._context.Nl) // 8

    def marshal(self) -> bytes:
        """The state in Go's crypto/sha256 binary form (what distribution stores as a hash state)."""
        context = self._context
        pending = bytes(context.data)[: context.num]
        return b"".join(
            (
                _MAGIC,
                struct.pack(">8I", *context.h),
                pending.ljust(_BLOCK, b"\0"),
                struct.pack(">Q", self.length),
            )
        )

    @classmethod
    def unmarshal(cls, state: bytes) -> ResumableSHA256:
        """A hasher taking up a marshalled state. @raise ValueError: not a SHA-256 state."""
        if len(state) != MARSHALLED_SIZE or not state.startswith(_MAGIC):
            raise ValueError("not a marshalled SHA-256 state")
        offset = len(_MAGIC)
        words = struct.unpack_from(">8I", state, offset)
        offset += 32
        block = state[offset : offset + _BLOCK]
        (length,) = struct.unpack_from(">Q", state, offset + _BLOCK)
        context = _Context()
        _libcrypto.SHA256_Init(ctypes.byref(context))
        for index, word in enumerate(words):
            context.h[index] = word
        bits = length * 8
        context.Nl, context.Nh = bits & 0xFFFFFFFF, (bits >> 32) & 0xFFFFFFFF
        context.num = length % _BLOCK
        ctypes.memmove(context.data, block, _BLOCK)
        return cls(context)


AVAILABLE = _selfTest()
"""Whether this C library lets hash states be saved (else uploads rehash stored bytes, as before)."""


def newRunningHasher() -> Any:
    """A SHA-256 for an upload's running hash: resumable where possible, hashlib's otherwise."""
    return ResumableSHA256() if AVAILABLE else hashlib.sha256()


def marshalled(hasher: Any) -> bytes | None:
    """The hasher's state to save, or None when it cannot be saved."""
    return hasher.marshal() if isinstance(hasher, ResumableSHA256) else None


def resumed(state: bytes, length: int) -> ResumableSHA256 | None:
    """The hasher a saved state stands for, if it is one that has seen exactly length bytes."""
    if not AVAILABLE:
        return None
    try:
        hasher = ResumableSHA256.unmarshal(state)
    except ValueError:
        return None
    return hasher if hasher.length == length else None
