"""Build script for the optional C kernel; metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pytest_llmprec.compare._kernel",
            sources=["pytest_llmprec/compare/_kernel.c"],
            depends=["pytest_llmprec/compare/_kernel_avx512.h", "pytest_llmprec/compare/_kernel_logits.h",
                     "pytest_llmprec/compare/_kernel_scan.h"],
            extra_compile_args=[
                "-O3",
                "-fopenmp-simd",
                "-fno-math-errno",
                "-fno-trapping-math",
                "-ffp-contract=fast",
                "-std=c11",
            ],
            optional=True,
        )
    ]
)
