"""The one home of hashing: splitmix64, uid → uint64 and hash uniforms, pinned to literal values and a scalar
reference on Python ints."""

import numpy as np
import pyarrow as pa

from curation.hashing import MASK64, hash_uniforms, splitmix64, uid_to_u64


def reference_splitmix64(x: int) -> int:
    """splitmix64 finaliser on Python ints (the textbook definition, masked to 64 bits)."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def test_splitmix64_known_values():
    # SplitMix64 reference stream from state 0: the finaliser of 0x9E3779B97F4A7C15 * k for k = 1, 2
    got = splitmix64(np.array([0, 0x9E3779B97F4A7C15, 1, MASK64], dtype=np.uint64))
    assert got.dtype == np.uint64
    assert [hex(int(v)) for v in got] == [
        "0xe220a8397b1dcdaf",
        "0x6e789e6aa1b965f4",
        "0x910a2dec89025cc1",
        "0xe4d971771b652c20",
    ]


def test_splitmix64_matches_scalar_reference_keeps_shape_and_never_mutates():
    x = np.array([[0, 1, 2], [2**63, MASK64 - 1, 12345678901234567]], dtype=np.uint64)
    before = x.copy()
    got = splitmix64(x)
    assert got.shape == (2, 3) and got.dtype == np.uint64
    assert [int(v) for v in got.ravel()] == [reference_splitmix64(int(v)) for v in x.ravel()]
    assert np.array_equal(x, before)
    assert splitmix64(np.array([-1], dtype=np.int64))[0] == splitmix64(np.array([MASK64], dtype=np.uint64))[0]


def test_uid_to_u64_is_blake2b_little_endian_and_deterministic():
    uids = ["a", "hello", "ü", "0123456789abcdef0123"]
    got = uid_to_u64(uids)
    assert got.dtype == np.uint64
    assert [hex(int(v)) for v in got] == [
        "0x2f42665b399ef840",
        "0x7d34e501a8edb6a7",
        "0x372f39c1f59df155",
        "0xf1766f8f13277d8b",
    ]
    assert np.array_equal(uid_to_u64(pa.array(uids)), got)
    assert np.array_equal(uid_to_u64(pa.chunked_array([uids[:1], uids[1:]])), got)
    assert np.array_equal(uid_to_u64(np.array(uids)), got)
    assert uid_to_u64([]).dtype == np.uint64 and len(uid_to_u64([])) == 0


def test_hash_uniforms_are_the_top_53_bits():
    bits = np.array([0, (1 << 11) - 1, 1 << 11, MASK64, 1 << 63], dtype=np.uint64)
    got = hash_uniforms(bits)
    assert got.dtype == np.float64
    assert got.tolist() == [0.0, 0.0, 2.0**-53, 1.0 - 2.0**-53, 0.5]
    u = hash_uniforms(splitmix64(np.arange(100_000, dtype=np.uint64)))
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.005
