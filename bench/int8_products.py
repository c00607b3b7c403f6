"""The int8 products of one generated character in seqmodels/native's C kernel: the shipped LSTM's against the
shipped minGRU's, same kernel, same machine (random weights of their shapes: the time does not depend on the values).

    python bench/int8_products.py

Why: the minGRU's C step is faster than the LSTM's fbgemm step (bench/compare_char_models.py), and this says how
much of that is the kernel rather than the model. Both read about 3.1 MB of int8 weights a character; the LSTM in 4
products, the minGRU in 33. Needs a C compiler (``cc`` or ``$CC``). Last line: JSON, the kernel (2 AVX-512 VNNI,
1 AVX2, 0 plain C) and each model's products in microseconds per character, best of 3 turns each.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seqmodels.native import FLAGS, compiler  # noqa: E402


def main() -> None:
    cc = compiler()
    if not cc:
        sys.exit("error: no C compiler (cc, or set $CC)")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "int8_products"
        flags = [f for f in FLAGS if f != "-fPIC"]  # the library's flags, for a program
        subprocess.run([cc, *flags, str(HERE / "int8_products.c"), "-o", str(exe), "-lm"], check=True)
        print(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
