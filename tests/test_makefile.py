"""The Makefile's install choices, checked without a network: dry runs, and a stand-in .venv whose
``python`` imports a fake torch and records, instead of running, every ``pip`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def make(*args: str) -> subprocess.CompletedProcess:
    """``make ARGS`` in the repository, free of what a calling make passes down (``make test TORCH=cpu``
    puts ``TORCH=cpu`` in ``MAKEFLAGS``) and of a ``TORCH`` in the environment."""
    inherited = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "TORCH", "VENV", "PYTHON")
    env = {key: value for key, value in os.environ.items() if key not in inherited}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def test_dry_run_cpu_install_takes_torch_from_the_cpu_index(tmp_path):
    venv = tmp_path / "venv"
    cpu = make("-n", "install", "TORCH=cpu", f"VENV={venv}")
    assert cpu.returncode == 0, cpu.stderr
    assert f'{venv}/bin/python -m pip install {CPU_INDEX} "torch==2.14.1" "torchvision==0.29.1"' in cpu.stdout
    assert f"touch {venv}/.installed-cpu" in cpu.stdout

    default = make("-n", "install", f"VENV={venv}")
    assert default.returncode == 0, default.stderr
    assert f'{venv}/bin/python -m pip install "torch==2.14.1" "torchvision==0.29.1"' in default.stdout
    assert "download.pytorch.org" not in default.stdout
    assert f"touch {venv}/.installed\n" in default.stdout


def test_an_unknown_torch_choice_is_one_clear_error():
    result = make("-n", "install", "TORCH=gpu")
    assert result.returncode == 2
    assert "TORCH=gpu is not an option" in result.stderr
    assert "TORCH=cpu" in result.stderr


def stand_in_venv(root: Path, cuda: str | None) -> tuple[Path, Path]:
    """A .venv whose python sees a fake torch (built for ``cuda``, or CPU-only) and logs pip calls."""
    venv, fake, log = root / "venv", root / "site", root / "pip.log"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = stand-in\n")
    for package in ("torch", "torchvision"):
        (fake / package).mkdir(parents=True)
    suffix = "cpu" if cuda is None else "cu130"
    (fake / "torch" / "__init__.py").write_text(
        f"__version__ = '2.14.1+{suffix}'\nclass version:\n    cuda = {cuda!r}\n"
    )
    (fake / "torchvision" / "__init__.py").write_text("")
    python = venv / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" >> "{log}"; exit 0; fi\n'
        f'PYTHONPATH="{fake}" exec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    return venv, log


def test_cpu_install_refuses_a_cuda_torch_already_in_the_venv(tmp_path):
    venv, log = stand_in_venv(tmp_path, cuda="13.0")
    result = make("install", "TORCH=cpu", f"VENV={venv}")
    assert result.returncode != 0
    assert (
        f"error: {venv} already holds torch 2.14.1+cu130, built for CUDA; TORCH=cpu does not replace it: "
        f"remove {venv} (rm -rf {venv}) and run the same make command again"
    ) in result.stderr
    assert not log.exists()  # nothing installed over it
    assert not (venv / ".installed-cpu").exists()
    assert (venv / "bin" / "python").exists()  # and nothing deleted


def test_cpu_install_keeps_a_cpu_torch_and_installs_the_course(tmp_path):
    venv, log = stand_in_venv(tmp_path, cuda=None)
    result = make("install", "TORCH=cpu", f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == ["-m pip install -e .[course,dev]"]
    assert (venv / ".installed-cpu").exists()
