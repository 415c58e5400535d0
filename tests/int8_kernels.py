"""How close an INT8 runtime's output must stay to the exact arithmetic of its graph on this
CPU (deployment.cpu_int8): the bound a test asks for where the kernels are exact (VNNI), and
``SATURATING_COSINE`` where they add pairs of products in saturating int16 (AVX2-only CPUs;
0.996-0.999 measured on DemoNet and SceneSeg on an AMD EPYC without VNNI)."""
from deployment.cpu_int8 import cpu_flags, int8_kernels_saturate

SATURATING_COSINE = 0.99


def runtime_cosine(exact_bound: float, saturating_bound: float = SATURATING_COSINE) -> float:
    """``exact_bound`` on a CPU with exact INT8 kernels, ``saturating_bound`` otherwise."""
    return saturating_bound if int8_kernels_saturate() else exact_bound


def openvino_int8_deconvolution() -> bool:
    """OpenVINO's CPU plugin has INT8 deconvolution kernels only from AVX-512 on; on an AVX2
    CPU it runs a quantized ConvTranspose in f32 (and its precision report says so)."""
    return 'avx512f' in cpu_flags()


def openvino_runs_int8(row: dict) -> bool:
    """Whether OpenVINO should run a precision-report row in INT8 on this CPU: every quantized
    layer, except a deconvolution without AVX-512."""
    return row['quantized'] and (openvino_int8_deconvolution()
                                 or row['layer_type'] != 'Deconvolution')


def f32_deconvolution_finding(finding: str) -> bool:
    """A precision-check finding this CPU explains: a quantized ConvTranspose in f32 on AVX2."""
    return ('[float-layer] quantized ConvTranspose runs in f32' in finding
            and not openvino_int8_deconvolution())
