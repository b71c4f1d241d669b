"""The symbolic pickle interpreter against CPython's own pickle, for every protocol, plus malformed input."""

from __future__ import annotations

import collections
import pickle
import struct

import pytest

from ckptdoctor.readers import pickle_vm
from ckptdoctor.readers.pickle_vm import GlobalRef, ODict, Opaque, PickleError, RawBytes

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def plain(value, data):
    """The VM's value turned into what pickle.loads returns (RawBytes resolved, ODict as dict)."""
    if isinstance(value, RawBytes):
        return bytes(data[value.offset:value.offset + value.length])
    if isinstance(value, ODict):
        return {k: plain(v, data) for k, v in value.items()}
    if isinstance(value, dict):
        return {k: plain(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, data) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v, data) for v in value)
    return value


SAMPLE = {
    "ints": [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**63, -2**100],
    "floats": [0.0, -1.5, 1e300, float("inf")],
    "strings": ["", "a", "é", "x" * 300, "line\nbreak"],
    "bytes": [b"", b"ab", b"z" * 70_000],
    "bool": [True, False, None],
    "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
    "nested": {"a": {"b": [1, {"c": (2,)}]}},
    "set": {1, 2, 3},
    "frozen": frozenset({"x"}),
    "od": collections.OrderedDict([("k", 1), ("j", 2)]),
    "complex": 1 + 2j,
    "bytearray": bytearray(b"qq"),
    "intkeys": {0: "zero", 1: "one"},
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_values_match_pickle_loads(protocol: int) -> None:
    data = pickle.dumps(SAMPLE, protocol=protocol)
    result = pickle_vm.load(data)
    expected = pickle.loads(data)
    got = plain(result.value, data)
    for key in expected:
        exp = expected[key]
        if isinstance(exp, bytearray):
            exp = bytes(exp)
            got[key] = bytes(got[key])
        assert got[key] == exp, key
    assert result.end == len(data)
    assert result.protocol == (protocol if protocol >= 2 else 0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_memo_keeps_identity(protocol: int) -> None:
    shared = [1, 2]
    data = pickle.dumps({"a": shared, "b": shared}, protocol=protocol)
    value = pickle_vm.load(data).value
    assert value["a"] is value["b"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_self_reference_is_safe(protocol: int) -> None:
    loop: list = []
    loop.append(loop)
    value = pickle_vm.load(pickle.dumps(loop, protocol=protocol)).value
    assert value[0] is value


class Custom:
    def __init__(self) -> None:
        self.x = 1


def _side_effect() -> None:  # pragma: no cover - must never run
    raise AssertionError("called")


class Reducer:
    def __reduce__(self):
        return (_side_effect, ())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unknown_objects_stay_inert(protocol: int) -> None:
    data = pickle.dumps({"c": Custom(), "r": Reducer()}, protocol=protocol)
    result = pickle_vm.load(data)
    c, r = result.value["c"], result.value["r"]
    assert isinstance(c, Opaque) and isinstance(r, Opaque)
    assert c.qualname == f"{__name__}.Custom"
    assert c.state == {"x": 1}
    assert r.qualname == f"{__name__}._side_effect"
    uses = {g.qualname: u.uses for g, u in result.globals.items()}
    assert "call" in uses[f"{__name__}._side_effect"]
    assert "call" not in uses[f"{__name__}.Custom"]


def test_global_counts() -> None:
    data = pickle.dumps([collections.OrderedDict(), collections.OrderedDict()], protocol=0)
    result = pickle_vm.load(data)
    assert result.global_counts["collections.OrderedDict"] == 2


def test_start_and_end_offsets() -> None:
    first, second = pickle.dumps(1, protocol=2), pickle.dumps("two", protocol=2)
    data = first + second
    r1 = pickle_vm.load(data)
    assert (r1.value, r1.end) == (1, len(first))
    assert pickle_vm.load(data, r1.end).value == "two"


def test_large_bytes_are_not_copied() -> None:
    data = pickle.dumps(b"\x01" * 200_000, protocol=3)
    value = pickle_vm.load(data).value
    assert isinstance(value, RawBytes) and value.length == 200_000
    assert data[value.offset:value.offset + value.length] == b"\x01" * 200_000


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_truncated_everywhere(protocol: int) -> None:
    data = pickle.dumps(SAMPLE, protocol=protocol)
    for cut in range(1, len(data), max(1, len(data) // 60)):
        with pytest.raises(PickleError) as info:
            pickle_vm.load(data[:cut])
        assert info.value.code in ("F103", "F107")


def test_missing_stop_is_truncated() -> None:
    data = pickle.dumps({"a": 1}, protocol=2)[:-1]
    with pytest.raises(PickleError) as info:
        pickle_vm.load(data)
    assert info.value.code == "F103"


def test_not_a_pickle() -> None:
    with pytest.raises(PickleError) as info:
        pickle_vm.load(b"\xff\xfe garbage")
    assert info.value.code == "F104"


def test_huge_length_field_is_checked_before_reading() -> None:
    # BINUNICODE8 / BINBYTES8 claiming 2**62 bytes: must fail fast, never allocate
    for op in (b"\x8d", b"\x8e", b"\x96"):
        data = b"\x80\x05" + op + struct.pack("<Q", 1 << 62) + b"abc."
        with pytest.raises(PickleError) as info:
            pickle_vm.load(data)
        assert info.value.code == "F103"
    frame = b"\x80\x04\x95" + struct.pack("<Q", 1 << 60) + b"K\x01."
    with pytest.raises(PickleError):
        pickle_vm.load(frame)


def test_bad_memo_and_stack() -> None:
    with pytest.raises(PickleError):
        pickle_vm.load(b"\x80\x02h\x05.")  # BINGET of a key never stored
    with pytest.raises(PickleError):
        pickle_vm.load(b"\x80\x02t.")  # TUPLE without MARK
    with pytest.raises(PickleError):
        pickle_vm.load(b"\x80\x02.")  # STOP on an empty stack


def test_deep_nesting_is_bounded() -> None:
    data = b"\x80\x02" + b"]" * 50_000 + b"a" * 49_999 + b"."
    value = pickle_vm.load(data).value
    assert isinstance(value, list)
    from ckptdoctor.readers.pickle_objects import Walker

    walked = Walker().walk(value)
    assert walked.truncated


def test_shared_containers_do_not_explode() -> None:
    # a DAG where each level references the previous one twice: 2**60 paths
    level: list = [1]
    for _ in range(60):
        level = [level, level]
    data = pickle.dumps(level, protocol=2)
    from ckptdoctor.readers.pickle_objects import Walker

    walked = Walker(budget=10_000).walk(pickle_vm.load(data).value)
    assert walked.truncated


def test_ext_and_stack_global_recorded() -> None:
    data = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94."
    result = pickle_vm.load(data)
    assert result.value == GlobalRef("os", "system")
    assert GlobalRef("os", "system") in result.globals
    ext = pickle_vm.load(b"\x80\x02\x82\x07.")
    assert ext.value.module == "copyreg._extension_registry"


# ---- the state_dict shortcuts (_rb_tensor_v2 checked inline, storage classes looked up once) ----------

def _slow_tensor_v2(args):
    """What _rb_tensor_v2 computed before its inline shortcut: the general _tensor_from path."""
    t = pickle_vm._tensor_from(*args[:4], None, "_rebuild_tensor_v2")
    t.requires_grad = bool(args[4])
    return t


def _fields(t):
    return {k: getattr(t, k) for k in t.__slots__}


@pytest.mark.parametrize("case", [
    ((3, 4), (4, 1), 0, True), ((4, 3), (1, 4), 2, False), ((), (), 5, 0), ((2, 0, 3), (3, 3, 1), 0, 1),
])
def test_rebuild_tensor_v2_shortcut_matches_general_path(case) -> None:
    size, stride, offset, grad = case
    storage = pickle_vm.storage_from_pid(("storage", GlobalRef("torch", "HalfStorage"), "7", "cuda:1", 64))
    args = (storage, offset, size, stride, grad, ODict())
    fast, slow = pickle_vm._rb_tensor_v2(args), _slow_tensor_v2(args)
    assert _fields(fast) == _fields(slow)
    assert fast.dtype == "float16" and fast.requires_grad is bool(grad)


@pytest.mark.parametrize("args", [
    (None, 0, (1,), (1,), False),  # not a storage
    ("storage", "0", (1,), (1,), False),  # an offset that is not a number
    ((), 0, (2, 2), (1,), False),  # strides of another length
])
def test_rebuild_tensor_v2_shortcut_refuses_what_the_general_path_refuses(args) -> None:
    storage = pickle_vm.storage_from_pid(("storage", GlobalRef("torch", "FloatStorage"), "0", "cpu", 4))
    args = tuple(storage if a == () or a == "storage" else a for a in args)
    with pytest.raises(ValueError):
        _slow_tensor_v2(args)
    assert isinstance(pickle_vm.rebuild(GlobalRef("torch._utils", "_rebuild_tensor_v2"), args), Opaque)


def test_storage_classes_resolved_once_give_the_same_storage() -> None:
    for name, dtype in (("FloatStorage", "float32"), ("BFloat16Storage", "bfloat16"), ("float8_e4m3fn", "float8_e4m3fn"),
                        ("UntypedStorage", None), ("NotAStorage", None)):
        refs = [pickle_vm.storage_from_pid(("storage", GlobalRef("torch", name), "k", "cpu", 3)) for _ in range(2)]
        assert [(r.dtype, r.storage_type, r.key, r.location, r.numel) for r in refs] == [
            (dtype, f"torch.{name}", "k", "cpu", 3)] * 2
    assert pickle_vm.storage_from_pid(("storage", "FloatStorage", 1, "cpu", 3)).storage_type == "FloatStorage"
    assert pickle_vm.storage_from_pid(("storage", GlobalRef("torch", "FloatStorage"), "k", "cpu", -1)) is None
