"""Whether this CPU's INT8 kernels compute exactly.

ONNX Runtime's and OpenVINO's x86 INT8 convolutions and GEMMs multiply uint8 activations by
int8 weights. With VNNI (AVX512-VNNI, AVX-VNNI) or AMX each product is accumulated in int32,
exactly. Without it (AVX2-only CPUs, e.g. most AMD EPYC before Zen 4) they use
``VPMADDUBSW``, which adds two products into a saturating int16 first: a pair over 32767
(255 * 127 * 2 = 64770 is possible) is clipped, so the output differs from the exact INT8
arithmetic of the graph (OpenVINO calls it the "saturation issue"; ONNX Runtime's quantization
docs advise 7-bit weights). Verification reports this instead of calling the runtime wrong.
"""
import platform
from functools import lru_cache

#: /proc/cpuinfo flags of the x86 instructions that accumulate u8 x s8 products in int32.
EXACT_INT8_FLAGS = ('avx512_vnni', 'avx_vnni', 'amx_int8')


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('flags'):
                    return frozenset(line.partition(':')[2].split())
    except OSError:
        pass
    return frozenset()


def int8_kernels_saturate() -> bool:
    """True on an x86 CPU without VNNI / AMX, where the runtimes' INT8 kernels may clip pairs of
    products to int16 (see the module text); False elsewhere (ARM's dot products are exact)."""
    if platform.machine().lower() not in ('x86_64', 'amd64', 'i686', 'x86'):
        return False
    return not any(flag in cpu_flags() for flag in EXACT_INT8_FLAGS)


def saturation_note() -> str:
    """One line for reports on CPUs whose INT8 kernels saturate; empty otherwise."""
    if not int8_kernels_saturate():
        return ''
    return ('this CPU has no VNNI (AVX512-VNNI / AVX-VNNI / AMX): ONNX Runtime\'s and '
            'OpenVINO\'s INT8 kernels add pairs of uint8 x int8 products in saturating int16, '
            'so their outputs differ from the exact INT8 arithmetic of the graph; compare them '
            'on a VNNI CPU, or with the runtime\'s optimisations off')
