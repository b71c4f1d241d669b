"""A symbolic pickle interpreter that never imports or calls anything.

``load(data)`` walks the opcodes of one pickle (protocols 0 to 5) and builds plain Python values:
dicts, lists, tuples, sets, numbers, strings and bytes. A GLOBAL/STACK_GLOBAL becomes an inert
``GlobalRef(module, name)``. REDUCE/NEWOBJ/INST/OBJ on a small set of known callables rebuild a value
(``OrderedDict``, ``set``, ``slice``, ``complex``, ``torch.Size``, ``torch.device``, the torch tensor
rebuild functions, the numpy array/dtype/scalar reconstructors); every other call becomes an inert
``Opaque(callable, args)`` and BUILD stores its state on it. Every global met is counted, with how
it was used (called, instantiated, referenced), so that security rules can judge it.

Bounds: every length field is checked against the bytes left before anything is sliced, large byte
strings are kept as ``RawBytes`` (an offset into the buffer, never a copy), containers are never
copied, and a malformed or truncated stream raises ``PickleError`` with an F code.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from collections.abc import Callable

from ckptdoctor.dtypes import TORCH_STORAGE_DTYPES
from ckptdoctor.snapshot import GlobalRef

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: see ckptdoctor/__init__.py
if TYPE_CHECKING:
    from typing import Any

# bytes/bytearray payloads longer than this are kept as RawBytes (offset, length) instead of copies
RAW_THRESHOLD = 64 * 1024
MAX_LONG_BYTES = 1 << 16  # LONG4 / text LONG longer than this is treated as malformed


class PickleError(Exception):
    """The stream is not a well-formed pickle. ``code`` is F103 (truncated) or F104/F107 (malformed)."""

    def __init__(self, code: str, message: str, position: int) -> None:
        super().__init__(f"{message} (at byte {position})")
        self.code = code
        self.message = message
        self.position = position


class _Record:
    """Plain slotted records instead of dataclasses: ``@dataclass`` costs ~0.4 ms per class at import
    (it compiles generated methods), which every ``inspect`` run would pay. Equality is identity."""

    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Opaque(_Record):
    """An object the pickle would build by calling ``callable`` (never called here)."""

    __slots__ = ("args", "callable", "items", "kind", "kwargs", "state")

    def __init__(self, callable: Any, args: Any = (), kind: str = "reduce", state: Any = None,
                 items: list[Any] | None = None, kwargs: Any = None) -> None:
        self.callable = callable
        self.args = args
        self.kind = kind  # reduce | newobj | inst | obj | reconstructor
        self.state = state
        self.items: list[Any] = items if items is not None else []  # APPEND/SETITEM on an opaque object
        self.kwargs = kwargs

    @property
    def qualname(self) -> str:
        c = self.callable
        if isinstance(c, GlobalRef):
            return c.qualname
        if isinstance(c, Opaque):
            return f"<result of {c.qualname}>"
        return f"<{type(c).__name__}>"


class RawBytes(_Record):
    """A large bytes/bytearray payload left in the buffer: ``length`` bytes at ``offset`` (immutable)."""

    __slots__ = ("length", "offset")

    def __init__(self, offset: int, length: int) -> None:
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "length", length)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"RawBytes is immutable ({name})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawBytes) and (self.offset, self.length) == (other.offset, other.length)

    def __hash__(self) -> int:
        return hash((self.offset, self.length))


class PersistentRef(_Record):
    """A persistent id nobody interpreted (PERSID/BINPERSID without a handler)."""

    __slots__ = ("pid",)

    def __init__(self, pid: Any) -> None:
        self.pid = pid


class StorageRef(_Record):
    """A torch storage named by a persistent id ``("storage", type, key, location, numel[, view])``."""

    __slots__ = ("dtype", "key", "location", "numel", "payload", "storage_type", "view_of", "view_offset")

    def __init__(self, key: str, dtype: str | None, location: str, numel: int, storage_type: str,
                 view_of: str | None = None, view_offset: int = 0, payload: Any = None) -> None:
        self.key = key
        self.dtype = dtype  # None for torch.UntypedStorage (bytes; the tensor gives the dtype)
        self.location = location
        self.numel = numel  # elements of ``dtype`` (bytes when untyped)
        self.storage_type = storage_type
        self.view_of = view_of  # legacy view_metadata: root key
        self.view_offset = view_offset  # legacy view_metadata: offset (elements) into the root storage
        self.payload = payload  # bytes or RawBytes when the storage bytes are inside the pickle itself


class TensorRef(_Record):
    """A tensor rebuilt symbolically from ``torch._utils._rebuild_tensor*``."""

    __slots__ = (
        "dtype",
        "is_parameter",
        "math_bits",
        "offset",
        "quantized",
        "rebuild",
        "requires_grad",
        "shape",
        "storage",
        "strides",
        "subclass",
    )

    def __init__(self, storage: StorageRef | None, offset: int, shape: tuple[int, ...],
                 strides: tuple[int, ...] | None, dtype: str, requires_grad: bool = False,
                 is_parameter: bool = False, subclass: str | None = None, rebuild: str = "",
                 quantized: bool = False) -> None:
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.strides = strides
        self.dtype = dtype
        self.requires_grad = requires_grad
        self.is_parameter = is_parameter
        self.subclass = subclass
        self.rebuild = rebuild
        self.quantized = quantized
        # torch's lazy "conj"/"neg" bits (tensor metadata, the 7th rebuild argument): the stored bytes are
        # the un-conjugated, un-negated values; torch.load applies the bit when the tensor is used
        self.math_bits: frozenset[str] = frozenset()


class NumpyDtype(_Record):
    __slots__ = ("byteorder", "descr", "structured")

    def __init__(self, descr: str, byteorder: str = "=", structured: bool = False) -> None:
        self.descr = descr  # numpy type string such as "f8", "<i4", "O"
        self.byteorder = byteorder
        self.structured = structured


class NumpyArray(_Record):
    """An ndarray pickled inline: ``data`` is bytes, RawBytes, or a list (object arrays)."""

    __slots__ = ("data", "dtype", "fortran", "reconstructor", "shape")

    def __init__(self, shape: tuple[int, ...] = (), dtype: NumpyDtype | None = None, fortran: bool = False,
                 data: Any = None, reconstructor: str = "") -> None:
        self.shape = shape
        self.dtype = dtype
        self.fortran = fortran
        self.data = data
        self.reconstructor = reconstructor


class ODict(dict):  # type: ignore[type-arg]
    """A dict that was an ``OrderedDict``/``defaultdict``/``Counter``; ``state`` holds BUILD state."""

    def __init__(self, cls: str = "collections.OrderedDict") -> None:
        super().__init__()
        self.cls = cls
        self.state: Any = None

    def __hash__(self) -> int:  # type: ignore[override]  # identity, like the other symbolic objects
        return id(self)


class Unhashable(_Record):
    """A dict key or set item that is unhashable here (a list, a dict): kept by its repr."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        object.__setattr__(self, "text", text)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Unhashable is immutable ({name})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unhashable) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)


class GlobalUse(_Record):
    """How a global is used: ``references`` GLOBAL opcodes, ``calls`` REDUCE/NEWOBJ/INST/OBJ on it."""

    __slots__ = ("calls", "references", "uses")

    def __init__(self, references: int = 0, calls: int = 0, uses: set[str] | None = None) -> None:
        self.references = references
        self.calls = calls
        self.uses: set[str] = uses if uses is not None else set()  # "call", "new", "reference"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, GlobalUse)
                and (self.references, self.calls, self.uses) == (other.references, other.calls, other.uses))

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    @property
    def count(self) -> int:
        """Times the file names or uses it (a memoized global is named once but may be called often)."""
        return max(self.references, self.calls)

    def merge(self, other: GlobalUse) -> None:
        self.references += other.references
        self.calls += other.calls
        self.uses |= other.uses


class PickleResult(_Record):
    __slots__ = ("end", "globals", "opcodes", "protocol", "value")

    def __init__(self, value: Any, end: int, protocol: int, globals: dict[GlobalRef, GlobalUse],
                 opcodes: Counter[str]) -> None:
        self.value = value
        self.end = end  # offset just after STOP
        self.protocol = protocol
        self.globals = globals
        self.opcodes = opcodes

    @property
    def global_counts(self) -> dict[str, int]:
        return {g.qualname: u.count for g, u in self.globals.items()}


_U16, _U32, _I32, _U64, _F64BE = (struct.Struct(f) for f in ("<H", "<I", "<i", "<Q", ">d"))

# bytes, or an mmap of the file: both have ``find`` and return bytes from slicing
Buffer = bytes | mmap.mmap

# torch dtype global name -> canonical dtype (torch.float32 ...)
_TORCH_DTYPE_NAMES = {
    "float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
    "float8_e5m2fnuz", "float8_e8m0fnu", "complex128", "complex64", "complex32", "int64", "int32",
    "int16", "int8", "uint64", "uint32", "uint16", "uint8", "bool", "qint8", "quint8", "qint32",
    "quint4x2", "quint2x4", "double", "float", "half", "long", "int", "short", "cdouble", "cfloat",
    "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2",
}
_DTYPE_ALIASES = {"double": "float64", "float": "float32", "half": "float16", "long": "int64", "int": "int32",
                  "short": "int16", "cdouble": "complex128", "cfloat": "complex64"}

_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")


def torch_dtype_name(ref: Any) -> str | None:
    if isinstance(ref, GlobalRef) and ref.module == "torch" and ref.name in _TORCH_DTYPE_NAMES:
        return _DTYPE_ALIASES.get(ref.name, ref.name)
    return None


def load(data: Buffer, start: int = 0, *, end: int | None = None,
         persistent_load: Callable[[Any], Any] | None = None) -> PickleResult:
    """Interpret the pickle that starts at ``data[start]`` up to its STOP (never past ``end``).

    Never imports or calls anything from the pickle."""
    m = _Machine(data, start, persistent_load)
    if end is not None:
        m.end = min(m.end, end)
    return m.run()


class _Machine:
    def __init__(self, data: Buffer, start: int, persistent_load: Callable[[Any], Any] | None) -> None:
        self.data = data
        self.end = len(data)
        self.pos = start
        self.start = start
        self.persistent_load = persistent_load or default_persistent_load
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.proto = 0
        self.globals: dict[GlobalRef, GlobalUse] = {}
        self.opcodes: Counter[str] = Counter()
        self.inline_storages = 0
        # globals interned by (module, name); their use records and rebuilders looked up by id
        self.interned: dict[tuple[str, str], GlobalRef] = {}
        self.use_by_id: dict[int, GlobalUse] = {}
        self.rebuild_by_id: dict[int, Callable[[tuple[Any, ...]], Any]] = {}

    # ---- reading -------------------------------------------------------------------------------
    def fail(self, message: str, truncated: bool = False) -> PickleError:
        return PickleError("F103" if truncated else "F107", message, self.pos)

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise self.fail(f"the pickle ends inside a {n}-byte field", truncated=True)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def read_payload(self, n: int) -> bytes | RawBytes:
        """A bytes payload; large ones stay in the buffer (checked against the bytes left first)."""
        if n < 0 or self.pos + n > self.end:
            raise self.fail(f"the pickle declares {n:,} bytes but only {self.end - self.pos:,} are left",
                            truncated=True)
        if n > RAW_THRESHOLD:
            ref = RawBytes(self.pos, n)
            self.pos += n
            return ref
        return self.read(n)

    def readline(self) -> bytes:
        i = self.data.find(b"\n", self.pos)
        if i < 0:
            raise self.fail("the pickle ends inside a text line", truncated=True)
        line = bytes(self.data[self.pos:i])
        self.pos = i + 1
        return line

    def u8(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.fail("the pickle ends inside a 1-byte field", truncated=True)
        self.pos = pos + 1
        return self.data[pos]

    def unpack(self, fmt: struct.Struct) -> Any:
        pos = self.pos
        if pos + fmt.size > self.end:
            raise self.fail(f"the pickle ends inside a {fmt.size}-byte field", truncated=True)
        self.pos = pos + fmt.size
        return fmt.unpack_from(self.data, pos)[0]

    def u16(self) -> int:
        return self.unpack(_U16)

    def u32(self) -> int:
        return self.unpack(_U32)

    def i32(self) -> int:
        return self.unpack(_I32)

    def u64(self) -> int:
        return self.unpack(_U64)

    def text(self, n: int) -> str:
        raw = self.read_payload(n)
        if isinstance(raw, RawBytes):
            raw = self.data[raw.offset:raw.offset + raw.length]
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise self.fail("invalid UTF-8 in a string") from None

    # ---- stack ---------------------------------------------------------------------------------
    def pop(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow: the stream is not a valid pickle")
        v = self.stack.pop()
        return v

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            raise self.fail("MARK expected but missing: the stream is not a valid pickle")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def top(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow: the stream is not a valid pickle")
        return self.stack[-1]

    def note_global(self, ref: GlobalRef, use: str) -> None:
        g = self.globals.get(ref)
        if g is None:
            g = self.globals[ref] = GlobalUse()
        if use == "reference":
            g.references += 1
        else:
            g.calls += 1
        g.uses.add(use)

    def mark_use(self, callable_: Any, use: str) -> None:
        g = self.use_by_id.get(id(callable_))
        if g is not None:  # an interned global: no dataclass hashing on the hot path
            g.calls += 1
            g.uses.add(use)
        elif isinstance(callable_, GlobalRef):
            self.note_global(callable_, use)

    def intern_global(self, module: str, name: str) -> GlobalRef:
        """One GlobalRef object per (module, name): REDUCE then finds its use record and rebuilder by id."""
        key = (module, name)
        ref = self.interned.get(key)
        if ref is None:
            ref = self.interned[key] = GlobalRef(module, name)  # kept alive here, so ids stay unique
            g = self.globals.get(ref)
            if g is None:
                g = self.globals[ref] = GlobalUse()
            self.use_by_id[id(ref)] = g
            handler = _REBUILDERS_BY_KEY.get(key)
            if handler is not None:
                self.rebuild_by_id[id(ref)] = handler
        g = self.use_by_id[id(ref)]
        g.references += 1
        g.uses.add("reference")
        return ref

    # ---- main loop -----------------------------------------------------------------------------
    def run(self) -> PickleResult:
        """The opcode loop. The opcodes a ``torch.save`` pickle is made of are inlined here, with the
        machine state in locals; every other opcode goes through the dispatch table (state synced
        around the call). Every length field is still checked against ``end`` before it is used."""
        data = self.data
        end = self.end
        pos = self.pos
        stack = self.stack
        metastack = self.metastack
        memo = self.memo
        counts = [0] * 256
        table = _TABLE
        use_by_id = self.use_by_id
        rebuild_by_id = self.rebuild_by_id
        persistent_load = self.persistent_load
        u16 = _U16.unpack_from
        u32 = _U32.unpack_from
        i32 = _I32.unpack_from
        try:
            while True:
                if pos >= end:
                    raise self._fail_at(pos, "the pickle ends without a STOP opcode", truncated=True)
                code = data[pos]
                pos += 1
                counts[code] += 1
                # hot opcodes, most frequent first (LONG_BINPUT/BINGET/BININT1/MARK/... in torch pickles)
                if code == 0x72:  # LONG_BINPUT
                    if pos + 4 > end:
                        raise self._fail_at(pos, "the pickle ends inside a 4-byte field", truncated=True)
                    memo[u32(data, pos)[0]] = stack[-1]
                    pos += 4
                elif code == 0x68:  # BINGET
                    if pos >= end:
                        raise self._fail_at(pos, "the pickle ends inside a 1-byte field", truncated=True)
                    key = data[pos]
                    pos += 1
                    try:
                        stack.append(memo[key])
                    except KeyError:
                        raise self._fail_at(pos, f"memo key {key} used before it was stored") from None
                elif code == 0x4B:  # BININT1
                    if pos >= end:
                        raise self._fail_at(pos, "the pickle ends inside a 1-byte field", truncated=True)
                    stack.append(data[pos])
                    pos += 1
                elif code == 0x28:  # MARK
                    metastack.append(stack)
                    stack = []
                elif code == 0x58:  # BINUNICODE
                    if pos + 4 > end:
                        raise self._fail_at(pos, "the pickle ends inside a 4-byte field", truncated=True)
                    n = u32(data, pos)[0]
                    pos += 4
                    if n > end - pos:
                        raise self._fail_at(pos, f"the pickle declares {n:,} bytes but only {end - pos:,} are left",
                                            truncated=True)
                    try:
                        stack.append(str(data[pos:pos + n], "utf-8", "surrogatepass"))
                    except UnicodeDecodeError:
                        raise self._fail_at(pos, "invalid UTF-8 in a string") from None
                    pos += n
                elif code == 0x74:  # TUPLE
                    if not metastack:
                        raise self._fail_at(pos, "MARK expected but missing: the stream is not a valid pickle")
                    items = tuple(stack)
                    stack = metastack.pop()
                    stack.append(items)
                elif code == 0x85:  # TUPLE1
                    stack[-1] = (stack[-1],)
                elif code == 0x52:  # REDUCE
                    args = stack.pop()
                    func = stack[-1]
                    fid = id(func)
                    handler = rebuild_by_id.get(fid)
                    if handler is not None and type(args) is tuple:
                        g = use_by_id[fid]
                        g.calls += 1
                        g.uses.add("call")
                        try:
                            value = handler(args)
                        except (TypeError, ValueError, IndexError, AttributeError, OverflowError):
                            value = None
                        stack[-1] = value if value is not None else Opaque(func, args)
                    else:
                        stack.append(args)
                        self.pos, self.stack = pos, stack
                        _reduce(self)
                elif code == 0x51:  # BINPERSID
                    stack[-1] = persistent_load(stack[-1])
                elif code == 0x89:  # NEWFALSE
                    stack.append(False)
                elif code == 0x29:  # EMPTY_TUPLE
                    stack.append(())
                elif code == 0x71:  # BINPUT
                    if pos >= end:
                        raise self._fail_at(pos, "the pickle ends inside a 1-byte field", truncated=True)
                    memo[data[pos]] = stack[-1]
                    pos += 1
                elif code == 0x94:  # MEMOIZE (protocol 4+)
                    memo[len(memo)] = stack[-1]
                elif code == 0x8C:  # SHORT_BINUNICODE
                    if pos >= end:
                        raise self._fail_at(pos, "the pickle ends inside a 1-byte field", truncated=True)
                    n = data[pos]
                    pos += 1
                    if n > end - pos:
                        raise self._fail_at(pos, f"the pickle declares {n:,} bytes but only {end - pos:,} are left",
                                            truncated=True)
                    try:
                        stack.append(str(data[pos:pos + n], "utf-8", "surrogatepass"))
                    except UnicodeDecodeError:
                        raise self._fail_at(pos, "invalid UTF-8 in a string") from None
                    pos += n
                elif code == 0x86:  # TUPLE2
                    b = stack.pop()
                    stack[-1] = (stack[-1], b)
                elif code == 0x4D:  # BININT2
                    if pos + 2 > end:
                        raise self._fail_at(pos, "the pickle ends inside a 2-byte field", truncated=True)
                    stack.append(u16(data, pos)[0])
                    pos += 2
                elif code == 0x4A:  # BININT
                    if pos + 4 > end:
                        raise self._fail_at(pos, "the pickle ends inside a 4-byte field", truncated=True)
                    stack.append(i32(data, pos)[0])
                    pos += 4
                elif code == 0x6A:  # LONG_BINGET
                    if pos + 4 > end:
                        raise self._fail_at(pos, "the pickle ends inside a 4-byte field", truncated=True)
                    key = u32(data, pos)[0]
                    pos += 4
                    try:
                        stack.append(memo[key])
                    except KeyError:
                        raise self._fail_at(pos, f"memo key {key} used before it was stored") from None
                elif code == 0x88:  # NEWTRUE
                    stack.append(True)
                elif code == 0x4E:  # NONE
                    stack.append(None)
                elif code == 0x2E:  # STOP
                    self.pos, self.stack = pos, stack
                    value = self.pop()
                    opcodes = self.opcodes
                    for c, n in enumerate(counts):
                        if n:
                            opcodes[_OPCODE_NAMES[c]] += n
                    return PickleResult(value, pos, self.proto, self.globals, opcodes)
                else:
                    handler = table[code]
                    if handler is None:
                        raise PickleError("F104", f"byte 0x{code:02x} is not a pickle opcode", pos - 1)
                    # the cold path: hand the state to the machine, let the handler run, take it back
                    self.pos, self.stack = pos, stack
                    handler(self)
                    pos, stack = self.pos, self.stack
        except PickleError:
            raise
        except RecursionError:
            raise self._fail_at(pos, "nesting too deep") from None
        except IndexError:
            if not stack:
                raise self._fail_at(pos, "stack underflow: the stream is not a valid pickle") from None
            raise self._fail_at(pos, "malformed pickle (IndexError)") from None
        except (ValueError, TypeError, KeyError, OverflowError, struct.error) as exc:
            raise self._fail_at(pos, f"malformed pickle ({type(exc).__name__}: {exc})") from None

    def _fail_at(self, pos: int, message: str, truncated: bool = False) -> PickleError:
        self.pos = pos
        return self.fail(message, truncated)


# ---- opcode handlers (one small function each; the dispatch table maps bytes to them) ------------

def _stop(m: _Machine) -> None:  # handled in run()
    pass


def _proto(m: _Machine) -> None:
    m.proto = m.u8()
    if m.proto > 5:
        raise m.fail(f"unsupported pickle protocol {m.proto}")


def _frame(m: _Machine) -> None:
    n = m.u64()
    if n > m.end - m.pos:
        raise m.fail(f"FRAME declares {n:,} bytes but only {m.end - m.pos:,} are left", truncated=True)


def _mark(m: _Machine) -> None:
    m.metastack.append(m.stack)
    m.stack = []


def _pop(m: _Machine) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark()


def _pop_mark(m: _Machine) -> None:
    m.pop_mark()


def _dup(m: _Machine) -> None:
    m.stack.append(m.top())


def _none(m: _Machine) -> None:
    m.stack.append(None)


def _true(m: _Machine) -> None:
    m.stack.append(True)


def _false(m: _Machine) -> None:
    m.stack.append(False)


def _int(m: _Machine) -> None:
    line = m.readline()
    if line == b"00":
        m.stack.append(False)
    elif line == b"01":
        m.stack.append(True)
    else:
        m.stack.append(_parse_int(m, line))


def _parse_int(m: _Machine, text: bytes) -> int:
    if len(text) > MAX_LONG_BYTES:
        raise m.fail("integer literal too long")
    return int(text.rstrip(b"L"), 0 if text.lstrip(b"-").startswith(b"0x") else 10)


def _long(m: _Machine) -> None:
    m.stack.append(_parse_int(m, m.readline()))


def _binint(m: _Machine) -> None:
    m.stack.append(m.i32())


def _binint1(m: _Machine) -> None:
    m.stack.append(m.u8())


def _binint2(m: _Machine) -> None:
    m.stack.append(m.u16())


def _long1(m: _Machine) -> None:
    n = m.u8()
    m.stack.append(int.from_bytes(m.read(n), "little", signed=True))


def _long4(m: _Machine) -> None:
    n = m.i32()
    if n < 0 or n > MAX_LONG_BYTES:
        raise m.fail(f"LONG4 of {n} bytes")
    m.stack.append(int.from_bytes(m.read(n), "little", signed=True))


def _float(m: _Machine) -> None:
    m.stack.append(float(m.readline()))


def _binfloat(m: _Machine) -> None:
    m.stack.append(m.unpack(_F64BE))


def _string(m: _Machine) -> None:
    line = m.readline().rstrip()
    if len(line) < 2 or line[:1] != line[-1:] or line[:1] not in (b"'", b'"'):
        raise m.fail("STRING argument is not quoted")
    import codecs

    raw = codecs.escape_decode(line[1:-1])[0]
    m.stack.append(_py2str(raw))


def _py2str(raw: bytes) -> Any:
    # Python 2 ``str``: what pickle does with encoding="ASCII" (torch legacy uses latin1 for data)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw


def _binstring(m: _Machine) -> None:
    n = m.i32()
    raw = m.read_payload(n)
    m.stack.append(raw if isinstance(raw, RawBytes) else _py2str(raw))


def _short_binstring(m: _Machine) -> None:
    m.stack.append(_py2str(m.read(m.u8())))


def _binbytes(m: _Machine) -> None:
    m.stack.append(m.read_payload(m.u32()))


def _short_binbytes(m: _Machine) -> None:
    m.stack.append(m.read(m.u8()))


def _binbytes8(m: _Machine) -> None:
    m.stack.append(m.read_payload(m.u64()))


def _bytearray8(m: _Machine) -> None:
    raw = m.read_payload(m.u64())
    m.stack.append(raw if isinstance(raw, RawBytes) else bytearray(raw))


def _next_buffer(m: _Machine) -> None:
    # out-of-band buffers are not in the file: the data lives elsewhere
    m.stack.append(Opaque(GlobalRef("pickle", "PickleBuffer"), (), kind="out-of-band"))


def _readonly_buffer(m: _Machine) -> None:
    m.top()


def _unicode(m: _Machine) -> None:
    m.stack.append(m.readline().decode("raw-unicode-escape"))


def _short_binunicode(m: _Machine) -> None:
    m.stack.append(m.text(m.u8()))


def _binunicode(m: _Machine) -> None:
    m.stack.append(m.text(m.u32()))


def _binunicode8(m: _Machine) -> None:
    m.stack.append(m.text(m.u64()))


def _empty_list(m: _Machine) -> None:
    m.stack.append([])


def _empty_tuple(m: _Machine) -> None:
    m.stack.append(())


def _empty_dict(m: _Machine) -> None:
    m.stack.append({})


def _empty_set(m: _Machine) -> None:
    m.stack.append(set())


def _list(m: _Machine) -> None:
    items = m.pop_mark()
    m.stack.append(items)


def _tuple(m: _Machine) -> None:
    items = m.pop_mark()
    m.stack.append(tuple(items))


def _tuple1(m: _Machine) -> None:
    m.stack.append((m.pop(),))


def _tuple2(m: _Machine) -> None:
    b = m.pop()
    a = m.pop()
    m.stack.append((a, b))


def _tuple3(m: _Machine) -> None:
    c = m.pop()
    b = m.pop()
    a = m.pop()
    m.stack.append((a, b, c))


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        return Unhashable(_short_repr(key))
    return key


def _short_repr(value: Any) -> str:
    import reprlib

    r = reprlib.Repr(maxlevel=3, maxstring=80, maxother=80, maxlist=8, maxtuple=8, maxdict=8)
    return r.repr(value)


def _dict(m: _Machine) -> None:
    items = m.pop_mark()
    if len(items) % 2:
        raise m.fail("DICT with an odd number of items")
    m.stack.append({_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)})


def _set_items(m: _Machine, target: Any, items: list[Any]) -> None:
    if len(items) % 2:
        raise m.fail("SETITEMS with an odd number of items")
    if isinstance(target, dict):
        for i in range(0, len(items), 2):
            target[_hashable(items[i])] = items[i + 1]
    elif isinstance(target, Opaque):
        target.items.extend((items[i], items[i + 1]) for i in range(0, len(items), 2))
    else:
        raise m.fail(f"SETITEM on a {type(target).__name__}")


def _setitem(m: _Machine) -> None:
    v = m.pop()
    k = m.pop()
    _set_items(m, m.top(), [k, v])


def _setitems(m: _Machine) -> None:
    items = m.pop_mark()
    _set_items(m, m.top(), items)


def _appends_to(m: _Machine, target: Any, items: list[Any]) -> None:
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, Opaque):
        target.items.extend(items)
    else:
        raise m.fail(f"APPEND on a {type(target).__name__}")


def _append(m: _Machine) -> None:
    v = m.pop()
    _appends_to(m, m.top(), [v])


def _appends(m: _Machine) -> None:
    items = m.pop_mark()
    _appends_to(m, m.top(), items)


def _additems(m: _Machine) -> None:
    items = m.pop_mark()
    target = m.top()
    if not isinstance(target, set):
        raise m.fail(f"ADDITEMS on a {type(target).__name__}")
    target.update(_hashable(i) for i in items)


def _frozenset(m: _Machine) -> None:
    items = m.pop_mark()
    m.stack.append(frozenset(_hashable(i) for i in items))


# ---- memo -----------------------------------------------------------------------------------

def _get(m: _Machine) -> None:
    _memo_get(m, int(m.readline()))


def _binget(m: _Machine) -> None:
    _memo_get(m, m.u8())


def _long_binget(m: _Machine) -> None:
    _memo_get(m, m.u32())


def _memo_get(m: _Machine, key: int) -> None:
    try:
        m.stack.append(m.memo[key])
    except KeyError:
        raise m.fail(f"memo key {key} used before it was stored") from None


def _put(m: _Machine) -> None:
    m.memo[int(m.readline())] = m.top()


def _binput(m: _Machine) -> None:
    m.memo[m.u8()] = m.top()


def _long_binput(m: _Machine) -> None:
    m.memo[m.u32()] = m.top()


def _memoize(m: _Machine) -> None:
    m.memo[len(m.memo)] = m.top()


# ---- globals and persistent ids --------------------------------------------------------------

def _global(m: _Machine) -> None:
    module = m.readline().decode("utf-8", "replace")
    name = m.readline().decode("utf-8", "replace")
    _push_global(m, module, name)


def _stack_global(m: _Machine) -> None:
    name = m.pop()
    module = m.pop()
    if not isinstance(module, str) or not isinstance(name, str):
        raise m.fail("STACK_GLOBAL needs two strings")
    _push_global(m, module, name)


def _push_global(m: _Machine, module: str, name: str) -> None:
    m.stack.append(m.intern_global(module, name))


def _ext(m: _Machine, code: int) -> None:
    # the copyreg extension registry maps a code to a (module, name) only known to the loading process
    ref = GlobalRef("copyreg._extension_registry", str(code))
    m.note_global(ref, "reference")
    m.stack.append(ref)


def _ext1(m: _Machine) -> None:
    _ext(m, m.u8())


def _ext2(m: _Machine) -> None:
    _ext(m, m.u16())


def _ext4(m: _Machine) -> None:
    _ext(m, m.i32())


def _persid(m: _Machine) -> None:
    pid = m.readline().decode("ascii", "replace")
    m.stack.append(m.persistent_load(pid))


def _binpersid(m: _Machine) -> None:
    m.stack.append(m.persistent_load(m.pop()))


# (module, name) of a storage class -> (dtype or None, qualname); a pure function of the name, capped
_STORAGE_CLASSES: dict[tuple[str, str], tuple[str | None, str]] = {}


def default_persistent_load(pid: Any) -> Any:
    """Storages as ``StorageRef``; any other persistent id stays a ``PersistentRef``."""
    storage = storage_from_pid(pid)
    return storage if storage is not None else PersistentRef(pid)


def storage_from_pid(pid: Any) -> StorageRef | None:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        return None
    stype, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(numel, int) or numel < 0:
        return None
    if isinstance(stype, GlobalRef):
        # one lookup per storage class, not per storage (a state_dict names the same few thousands of times)
        known = _STORAGE_CLASSES.get((stype.module, stype.name))
        if known is None:
            dtype = TORCH_STORAGE_DTYPES.get(stype.name)
            if dtype is None:
                dtype = torch_dtype_name(stype)  # torch.float32 as storage "type" (TypedStorage pickles)
            known = (dtype, stype.qualname)
            if len(_STORAGE_CLASSES) < 1024:
                _STORAGE_CLASSES[(stype.module, stype.name)] = known
        dtype, storage_type = known
    else:
        storage_type = str(stype)
        dtype = TORCH_STORAGE_DTYPES.get(storage_type)
    ref = StorageRef(str(key), dtype, str(location), numel, storage_type)
    view = pid[5] if len(pid) > 5 else None
    if isinstance(view, tuple) and len(view) == 3 and isinstance(view[1], int):
        ref.view_of, ref.view_offset = str(view[0]), view[1]
    return ref


# ---- calls (never performed) -------------------------------------------------------------------

def _reduce(m: _Machine) -> None:
    args = m.pop()
    func = m.pop()
    if (isinstance(func, GlobalRef) and func.qualname in ("copyreg._reconstructor", "copy_reg._reconstructor")
            and isinstance(args, tuple)
            and args and isinstance(args[0], GlobalRef)):
        # protocol 0/1 instances: object.__new__(cls) plus state; the class is instantiated, not called
        m.mark_use(func, "call")
        m.mark_use(args[0], "new")
        m.stack.append(new_object(args[0], args[1:], "reconstructor"))
        return
    m.mark_use(func, "call")
    if (isinstance(func, GlobalRef) and func.qualname == "torch.storage._load_from_bytes" and isinstance(args, tuple)
            and len(args) == 1 and isinstance(args[0], (bytes, RawBytes))):
        storage = _nested_storage(m, args[0])
        if storage is not None:
            m.stack.append(storage)
            return
    m.stack.append(rebuild(func, args))


def _nested_storage(m: _Machine, blob: bytes | RawBytes) -> StorageRef | None:
    """A storage pickled with plain pickle: ``torch.storage._load_from_bytes(<legacy torch.save stream>)``.

    The embedded stream (magic, protocol, sys_info, a storage persistent id, the key list, then a
    count and the raw bytes) is read with this same interpreter; its globals are merged into ours.
    """
    data, start, end = (m.data, blob.offset, blob.offset + blob.length) if isinstance(blob, RawBytes) else (blob, 0, len(blob))
    try:
        results = []
        pos = start
        for _ in range(5):
            r = load(data, pos, end=end)
            results.append(r)
            pos = r.end
    except PickleError:
        return None
    obj, keys = results[3].value, results[4].value
    for r in results:
        for g, use in r.globals.items():
            m.globals.setdefault(g, GlobalUse()).merge(use)
    if not isinstance(obj, StorageRef) or not isinstance(keys, list) or len(keys) != 1 or pos + 8 > end:
        return None
    (count,) = struct.unpack("<q", data[pos:pos + 8])
    from ckptdoctor.dtypes import ITEMSIZE

    nbytes = count * (ITEMSIZE.get(obj.dtype, 1) if obj.dtype else 1)
    if count < 0 or pos + 8 + nbytes > end:
        return None
    base = blob.offset if isinstance(blob, RawBytes) else None
    if base is not None:
        obj.payload = RawBytes(pos + 8, nbytes)
    else:
        obj.payload = bytes(data[pos + 8:pos + 8 + nbytes])
    m.inline_storages += 1
    obj.key = f"inline{m.inline_storages}"
    return obj


def _newobj(m: _Machine) -> None:
    args = m.pop()
    cls = m.pop()
    m.mark_use(cls, "new")
    m.stack.append(new_object(cls, args, "newobj"))


def _newobj_ex(m: _Machine) -> None:
    kwargs = m.pop()
    args = m.pop()
    cls = m.pop()
    m.mark_use(cls, "new")
    obj = new_object(cls, args, "newobj")
    if isinstance(obj, Opaque):
        obj.kwargs = kwargs
    m.stack.append(obj)


def _inst(m: _Machine) -> None:
    module = m.readline().decode("utf-8", "replace")
    name = m.readline().decode("utf-8", "replace")
    args = tuple(m.pop_mark())
    ref = GlobalRef(module, name)
    m.note_global(ref, "reference")
    m.note_global(ref, "new")
    m.stack.append(new_object(ref, args, "inst"))


def _obj(m: _Machine) -> None:
    items = m.pop_mark()
    if not items:
        raise m.fail("OBJ without a class")
    cls, args = items[0], tuple(items[1:])
    m.mark_use(cls, "new")
    m.stack.append(new_object(cls, args, "obj"))


def _build(m: _Machine) -> None:
    state = m.pop()
    obj = m.top()
    if isinstance(obj, (Opaque, ODict)):
        obj.state = state
    elif isinstance(obj, NumpyArray):
        _numpy_setstate(obj, state)
    elif isinstance(obj, NumpyDtype):
        if isinstance(state, tuple) and len(state) >= 2 and isinstance(state[1], str):
            obj.byteorder = state[1]
            obj.structured = len(state) > 3 and state[3] is not None
    elif isinstance(obj, TensorRef):
        pass  # Parameter __setstate__ / legacy Tensor.set_: nothing that changes the layout we report
    elif isinstance(obj, dict) and isinstance(state, dict):
        obj.update(state)
    # BUILD on anything else (a list, a string) would fail in pickle; we just ignore the state


def new_object(cls: Any, args: Any, kind: str) -> Any:
    if isinstance(cls, GlobalRef):
        q = cls.qualname
        if q in ("collections.OrderedDict", "collections.Counter"):
            return ODict(cls=q)
        if q == "torch.nn.parameter.Parameter" and isinstance(args, tuple) and args and isinstance(args[0], TensorRef):
            t = args[0]
            t.is_parameter = True
            t.requires_grad = bool(args[1]) if len(args) > 1 else True
            return t
        if q == "builtins.object":
            return Opaque(cls, args, kind=kind)
    return Opaque(cls, args, kind=kind)


def rebuild(func: Any, args: Any) -> Any:
    """The value of ``func(*args)`` for known safe callables, else an inert ``Opaque``."""
    if not isinstance(func, GlobalRef) or not isinstance(args, tuple):
        return Opaque(func, args)
    handler = _REBUILDERS_BY_REF.get(func)
    if handler is not None:
        try:
            value = handler(args)
        except (TypeError, ValueError, IndexError, AttributeError, OverflowError):
            value = None
        if value is not None:
            return value
    return Opaque(func, args)


def _as_shape(value: Any) -> tuple[int, ...]:
    if type(value) is tuple:  # the common case, without a generator per call
        for v in value:
            if type(v) is not int:
                break
        else:
            return value
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError("not a shape")
    return tuple(value)


def _tensor_from(storage: Any, offset: Any, size: Any, stride: Any, dtype: str | None, name: str) -> TensorRef:
    if not isinstance(storage, StorageRef) or not isinstance(offset, int):
        raise ValueError("not a storage")
    shape = _as_shape(size)
    strides = _as_shape(stride) if stride is not None else None
    if strides is not None and len(strides) != len(shape):
        raise ValueError("strides do not match the shape")
    dt = dtype or storage.dtype
    if dt is None:
        raise ValueError("unknown dtype")
    return TensorRef(storage, offset, shape, strides, dt, rebuild=name)


def _rb_tensor(args: tuple[Any, ...]) -> TensorRef:
    storage, offset, size, stride = args[:4]
    return _tensor_from(storage, offset, size, stride, None, "_rebuild_tensor")


def _rb_tensor_v2(args: tuple[Any, ...]) -> TensorRef:
    storage, offset, size, stride, requires_grad = args[0], args[1], args[2], args[3], args[4]
    if (type(storage) is StorageRef and type(offset) is int and type(size) is tuple and type(stride) is tuple
            and len(size) == len(stride) and storage.dtype is not None):
        # the state_dict case, checked inline (one call per tensor instead of four)
        for v in size:
            if type(v) is not int:
                break
        else:
            for v in stride:
                if type(v) is not int:
                    break
            else:
                t = TensorRef(storage, offset, size, stride, storage.dtype, bool(requires_grad),
                              False, None, "_rebuild_tensor_v2")
                if len(args) > 6:
                    _set_math_bits(t, args[6])
                return t
    t = _tensor_from(storage, offset, size, stride, None, "_rebuild_tensor_v2")
    t.requires_grad = bool(requires_grad)
    if len(args) > 6:
        _set_math_bits(t, args[6])
    return t


def _set_math_bits(t: TensorRef, metadata: Any) -> None:
    """``torch._utils.get_tensor_metadata``: ``{"conj": True}`` or ``{"neg": True}`` for lazy views."""
    if type(metadata) in (dict, ODict) and metadata:
        t.math_bits = frozenset(k for k in ("conj", "neg") if metadata.get(k) is True)


def _rb_tensor_v3(args: tuple[Any, ...]) -> TensorRef:
    storage, offset, size, stride, requires_grad, _hooks, dtype = args[:7]
    name = torch_dtype_name(dtype)
    if name is None:
        raise ValueError("unknown dtype")
    t = _tensor_from(storage, offset, size, stride, name, "_rebuild_tensor_v3")
    t.requires_grad = bool(requires_grad)
    if len(args) > 7:
        _set_math_bits(t, args[7])
    return t


def _rb_qtensor(args: tuple[Any, ...]) -> TensorRef:
    storage, offset, size, stride = args[:4]
    t = _tensor_from(storage, offset, size, stride, None, "_rebuild_qtensor")
    t.quantized = True
    return t


def _rb_meta(args: tuple[Any, ...]) -> TensorRef:
    dtype, size, stride, requires_grad = args[:4]
    name = torch_dtype_name(dtype)
    if name is None:
        raise ValueError("unknown dtype")
    return TensorRef(None, 0, _as_shape(size), _as_shape(stride), name, bool(requires_grad),
                     rebuild="_rebuild_meta_tensor_no_storage")


def _rb_parameter(args: tuple[Any, ...]) -> TensorRef:
    data, requires_grad = args[:2]
    if not isinstance(data, TensorRef):
        raise ValueError("not a tensor")
    data.is_parameter = True
    data.requires_grad = bool(requires_grad)
    return data


def _rb_from_type_v2(args: tuple[Any, ...]) -> Any:
    func, new_type, fargs, _state = args[:4]
    inner = rebuild(func, fargs) if isinstance(fargs, tuple) else None
    if not isinstance(inner, TensorRef):
        raise ValueError("not a tensor")
    if isinstance(new_type, GlobalRef):
        if new_type.qualname == "torch.nn.parameter.Parameter":
            inner.is_parameter = True
        elif new_type.qualname != "torch.Tensor":
            inner.subclass = new_type.qualname
    return inner


def _rb_ordered_dict(args: tuple[Any, ...]) -> ODict:
    out = ODict()
    if args:
        for k, v in args[0]:
            out[_hashable(k)] = v
    return out


def _rb_set(args: tuple[Any, ...]) -> set[Any]:
    return {_hashable(v) for v in args[0]} if args else set()


def _rb_frozenset(args: tuple[Any, ...]) -> frozenset[Any]:
    return frozenset(_hashable(v) for v in args[0]) if args else frozenset()


def _rb_jit_list(args: tuple[Any, ...]) -> list[Any] | None:
    """torch.jit._pickle.build_intlist/build_tensorlist/...: TorchScript's typed lists are the list itself."""
    return args[0] if len(args) == 1 and isinstance(args[0], list) else None


def _rb_jit_type_tag(args: tuple[Any, ...]) -> Any:
    """torch.jit._pickle.restore_type_tag(value, type_str) returns the value (it only notes its type)."""
    return args[0] if len(args) == 2 and isinstance(args[0], (list, dict)) else None


def _rb_layout(args: tuple[Any, ...]) -> str | None:
    """torch.serialization._get_layout("torch.sparse_csr"): the layout, kept as its name."""
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


# torch._utils._rebuild_sparse_tensor(layout, data): the names of data's tensors, per layout
_SPARSE_PARTS = {
    "torch.sparse_coo": ("indices", "values"),
    "torch.sparse_csr": ("crow_indices", "col_indices", "values"),
    "torch.sparse_csc": ("ccol_indices", "row_indices", "values"),
    "torch.sparse_bsr": ("crow_indices", "col_indices", "values"),
    "torch.sparse_bsc": ("ccol_indices", "row_indices", "values"),
}


def _rb_sparse(args: tuple[Any, ...]) -> dict[str, Any] | None:
    """A sparse tensor as its parts ({"indices": ..., "values": ...}), so each part is listed by name, plus
    its layout and dense size."""
    if len(args) != 2 or not isinstance(args[1], tuple):
        return None
    layout, data = args
    if isinstance(layout, GlobalRef):
        layout = layout.qualname  # torch.sparse_coo pickled as a global by older torch
    parts = _SPARSE_PARTS.get(layout) if isinstance(layout, str) else None
    if parts is None or len(data) <= len(parts):
        return None
    out: dict[str, Any] = dict(zip(parts, data, strict=False))
    size = data[len(parts)]
    out["layout"] = layout
    out["size"] = list(size) if isinstance(size, tuple) else size
    return out


def _rb_slice(args: tuple[Any, ...]) -> slice:
    return slice(*args)


def _rb_complex(args: tuple[Any, ...]) -> complex:
    if not all(isinstance(a, (int, float)) for a in args):
        raise ValueError("not numbers")
    return complex(*args)


def _rb_bytearray(args: tuple[Any, ...]) -> Any:
    if not args:
        return bytearray()
    v = args[0]
    if isinstance(v, RawBytes):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytearray(v)
    raise ValueError("not bytes")


def _rb_bytes(args: tuple[Any, ...]) -> bytes:
    if not args:
        return b""
    if isinstance(args[0], (bytes, bytearray)):
        return bytes(args[0])
    raise ValueError("unsupported")


def _rb_codecs_encode(args: tuple[Any, ...]) -> bytes:
    # protocol 2 pickles Python 3 bytes as _codecs.encode(text, "latin1")
    text, encoding = args[0], (args[1] if len(args) > 1 else "utf-8")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "ascii"):
        raise ValueError("unsupported")
    return text.encode(encoding)


def _rb_size(args: tuple[Any, ...]) -> tuple[int, ...]:
    return _as_shape(args[0]) if args else ()


def _rb_device(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int):
        return f"{args[0]}:{args[1]}"
    raise ValueError("not a device")


def _rb_defaultdict(args: tuple[Any, ...]) -> ODict:
    return ODict(cls="collections.defaultdict")


def _rb_np_reconstruct(args: tuple[Any, ...]) -> NumpyArray:
    return NumpyArray(reconstructor="_reconstruct")


def _rb_np_dtype(args: tuple[Any, ...]) -> NumpyDtype:
    if not args or not isinstance(args[0], str):
        raise ValueError("not a dtype")
    return NumpyDtype(args[0])


def _rb_np_frombuffer(args: tuple[Any, ...]) -> NumpyArray:
    buf, dtype, shape, order = args[:4]
    if not isinstance(dtype, NumpyDtype):
        raise ValueError("not a dtype")
    return NumpyArray(_as_shape(shape), dtype, order == "F", buf, reconstructor="_frombuffer")


def _numpy_setstate(arr: NumpyArray, state: Any) -> None:
    # ndarray.__setstate__((version, shape, dtype, is_fortran, rawdata)) or the 4-tuple without version
    if not isinstance(state, tuple):
        return
    if len(state) == 5:
        state = state[1:]
    if len(state) != 4:
        return
    shape, dtype, fortran, data = state
    try:
        arr.shape = _as_shape(shape)
    except ValueError:
        return
    arr.dtype = dtype if isinstance(dtype, NumpyDtype) else None
    arr.fortran = bool(fortran)
    arr.data = data


class NumpyScalar(_Record):
    __slots__ = ("dtype", "value")

    def __init__(self, dtype: NumpyDtype, value: Any) -> None:
        self.dtype = dtype
        self.value = value


def _rb_np_scalar(args: tuple[Any, ...]) -> NumpyScalar:
    dtype = args[0]
    if not isinstance(dtype, NumpyDtype):
        raise ValueError("not a dtype")
    raw = args[1] if len(args) > 1 else None
    value: Any = None
    fmt = _STRUCT_CODES.get(numpy_kind_size(dtype.descr))
    if isinstance(raw, (bytes, bytearray)) and fmt is not None and struct.calcsize(fmt) == len(raw):
        order = ">" if dtype.byteorder == ">" else "<"
        value = struct.unpack(order + fmt, raw)[0]
    return NumpyScalar(dtype, value)


_STRUCT_CODES = {("f", 8): "d", ("f", 4): "f", ("f", 2): "e", ("i", 8): "q", ("i", 4): "i", ("i", 2): "h",
                 ("i", 1): "b", ("u", 8): "Q", ("u", 4): "I", ("u", 2): "H", ("u", 1): "B", ("b", 1): "?"}


def numpy_kind_size(descr: str) -> tuple[str, int]:
    """("f", 8) for "f8"/"<f8"/"float64"; ("O", 8) for objects; ("?", 0) when unknown."""
    d = descr.lstrip("<>=|")
    named = {"float64": ("f", 8), "float32": ("f", 4), "float16": ("f", 2), "int64": ("i", 8),
             "int32": ("i", 4), "int16": ("i", 2), "int8": ("i", 1), "uint8": ("u", 1), "bool": ("b", 1),
             "uint16": ("u", 2), "uint32": ("u", 4), "uint64": ("u", 8), "complex64": ("c", 8),
             "complex128": ("c", 16), "object": ("O", 8)}
    if d in named:
        return named[d]
    if d[:1] in ("O",):
        return ("O", 8)
    if d[:1] == "?":
        return ("b", 1)
    if d[:1] in ("f", "i", "u", "b", "c", "V", "S", "U") and d[1:].isdigit():
        return (d[:1], int(d[1:]))
    return ("?", 0)


def numpy_dtype_name(dtype: NumpyDtype | None) -> str | None:
    """Canonical dtype name of a numpy type string, None for objects/strings/structured/unknown."""
    if dtype is None or dtype.structured:
        return None
    kind, size = numpy_kind_size(dtype.descr)
    names = {("f", 8): "float64", ("f", 4): "float32", ("f", 2): "float16", ("i", 8): "int64",
             ("i", 4): "int32", ("i", 2): "int16", ("i", 1): "int8", ("u", 8): "uint64", ("u", 4): "uint32",
             ("u", 2): "uint16", ("u", 1): "uint8", ("b", 1): "bool", ("c", 8): "complex64",
             ("c", 16): "complex128"}
    return names.get((kind, size))


_REBUILDERS: dict[str, Callable[[tuple[Any, ...]], Any]] = {
    "torch._utils._rebuild_tensor": _rb_tensor,
    "torch._utils._rebuild_tensor_v2": _rb_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rb_tensor_v3,
    "torch._utils._rebuild_qtensor": _rb_qtensor,
    "torch._utils._rebuild_meta_tensor_no_storage": _rb_meta,
    "torch._utils._rebuild_parameter": _rb_parameter,
    "torch._utils._rebuild_parameter_with_state": _rb_parameter,
    "torch._tensor._rebuild_from_type_v2": _rb_from_type_v2,
    "collections.OrderedDict": _rb_ordered_dict,
    "collections.defaultdict": _rb_defaultdict,
    "builtins.set": _rb_set,
    "__builtin__.set": _rb_set,
    "builtins.frozenset": _rb_frozenset,
    "__builtin__.frozenset": _rb_frozenset,
    "builtins.slice": _rb_slice,
    "__builtin__.slice": _rb_slice,
    "builtins.complex": _rb_complex,
    "__builtin__.complex": _rb_complex,
    "builtins.bytearray": _rb_bytearray,
    "__builtin__.bytearray": _rb_bytearray,
    "_codecs.encode": _rb_codecs_encode,
    "builtins.bytes": _rb_bytes,
    "__builtin__.bytes": _rb_bytes,
    "torch.Size": _rb_size,
    "torch.device": _rb_device,
    **{f"{mod}._reconstruct": _rb_np_reconstruct for mod in _NUMPY_MODULES},
    **{f"{mod}.scalar": _rb_np_scalar for mod in _NUMPY_MODULES},
    **{f"{mod}._frombuffer": _rb_np_frombuffer for mod in _NUMPY_MODULES},
    "numpy.dtype": _rb_np_dtype,
    **{f"torch.jit._pickle.build_{kind}list": _rb_jit_list for kind in ("int", "double", "bool", "tensor")},
    "torch.jit._pickle.restore_type_tag": _rb_jit_type_tag,
    "torch.serialization._get_layout": _rb_layout,
    "torch._utils._rebuild_sparse_tensor": _rb_sparse,
}


_DISPATCH: dict[int, Callable[[_Machine], None]] = {
    ord(c): f for c, f in {
        "(": _mark, ".": _stop, "0": _pop, "1": _pop_mark, "2": _dup, "F": _float, "I": _int, "J": _binint,
        "K": _binint1, "L": _long, "M": _binint2, "N": _none, "P": _persid, "Q": _binpersid, "R": _reduce,
        "S": _string, "T": _binstring, "U": _short_binstring, "V": _unicode, "X": _binunicode,
        "a": _append, "b": _build, "c": _global, "d": _dict, "}": _empty_dict, "e": _appends, "g": _get,
        "h": _binget, "i": _inst, "j": _long_binget, "l": _list, "]": _empty_list, "o": _obj, "p": _put,
        "q": _binput, "r": _long_binput, "s": _setitem, "t": _tuple, ")": _empty_tuple, "u": _setitems,
        "G": _binfloat, "B": _binbytes, "C": _short_binbytes,
    }.items()
}
_DISPATCH.update({
    0x80: _proto, 0x81: _newobj, 0x82: _ext1, 0x83: _ext2, 0x84: _ext4, 0x85: _tuple1, 0x86: _tuple2,
    0x87: _tuple3, 0x88: _true, 0x89: _false, 0x8A: _long1, 0x8B: _long4, 0x8C: _short_binunicode,
    0x8D: _binunicode8, 0x8E: _binbytes8, 0x8F: _empty_set, 0x90: _additems, 0x91: _frozenset,
    0x92: _newobj_ex, 0x93: _stack_global, 0x94: _memoize, 0x95: _frame, 0x96: _bytearray8,
    0x97: _next_buffer, 0x98: _readonly_buffer,
})

# flat tables: list indexing and GlobalRef keys avoid building strings on the hot path
_TABLE: list[Callable[[_Machine], None] | None] = [_DISPATCH.get(i) for i in range(256)]
_REBUILDERS_BY_REF: dict[GlobalRef, Callable[[tuple[Any, ...]], Any]] = {
    GlobalRef(*q.rsplit(".", 1)): f for q, f in _REBUILDERS.items()
}
_REBUILDERS_BY_KEY: dict[tuple[str, str], Callable[[tuple[Any, ...]], Any]] = {
    (g.module, g.name): f for g, f in _REBUILDERS_BY_REF.items()
}
_OPCODE_NAMES: list[str] = [f.__name__.lstrip("_") if f is not None else "" for f in _TABLE]
