"""The int8 products of one generated character in seqmodels/native's C kernel: the shipped LSTM's against the
shipped minGRU's, same kernel, same machine (random weights of their shapes: the time does not depend on the values).

    python bench/int8_products.py

Why: the minGRU's C step is faster than the LSTM's fbgemm step (bench/compare_char_models.py), and this says how
much of that is the kernel rather than the model. Both read about 3.1 MB of int8 weights a character; the LSTM in 4
products, the minGRU in 33. Needs a C compiler (``cc`` or ``$CC``). Last line: JSON, the kernel (2 AVX-512 VNNI,
1 AVX2, 0 plain C) and each model's products in microseconds per character, best of 3 turns each.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        sys.exit("error: no C compiler (cc, or set $CC)")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "int8_products"
        subprocess.run([compiler, "-O3", "-march=native", "-ffast-math", str(HERE / "int8_products.c"), "-o", str(exe),
                        "-lm"], check=True)
        print(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
