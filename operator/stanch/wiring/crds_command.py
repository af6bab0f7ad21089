"""``stanch crds [--check] [--out DIR]``: write the generated CRDs and CRD reference, or check for drift."""

from __future__ import annotations

import difflib
import pathlib
import sys

from stanch.core.crdgen import admission_manifest, generated_files, reference_markdown

ADMISSION_FILE = "identity-admission.yaml"
OWNED_SUFFIX = ".stanch.dev.yaml"
"""CRD files this command owns: one that is no longer generated is reported (check) or removed (write).
Other files in the directory are left alone."""


def _expected(out_dir: pathlib.Path, docs_path: pathlib.Path | None) -> dict[pathlib.Path, str]:
    files = {out_dir / name: text for name, text in generated_files().items()}
    if docs_path is not None:
        files[docs_path] = reference_markdown()
        # Beside the docs, like them: the admission policy is generated from the same source as the
        # operator's check that it is in force.
        files[docs_path.parent.parent / "manifests" / ADMISSION_FILE] = admission_manifest()
    return files


def _extra(out_dir: pathlib.Path, expected: dict[pathlib.Path, str]) -> list[pathlib.Path]:
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.glob(f"*{OWNED_SUFFIX}") if p not in expected)


def _read(path: pathlib.Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def crds_command(out_dir: pathlib.Path, check: bool, *, docs_path: pathlib.Path | None = None) -> int:
    """Write ``out_dir/*.yaml`` (+ ``docs/crd-reference.md`` beside ``out_dir``), or with ``check`` write
    nothing, print a unified diff of stale, missing and extra files, and return 1 if there is any.

    ``docs_path`` defaults to ``out_dir/../docs/crd-reference.md``.
    """
    if docs_path is None:
        docs_path = out_dir.parent / "docs" / "crd-reference.md"
    expected = _expected(out_dir, docs_path)
    extra = _extra(out_dir, expected)
    if check:
        drift = False
        for path, text in expected.items():
            current = _read(path)
            if current != text:
                drift = True
                before = (current or "").splitlines(keepends=True)
                label = f"a/{path}" if current is not None else "/dev/null"
                sys.stdout.writelines(
                    difflib.unified_diff(before, text.splitlines(keepends=True), label, f"b/{path}")
                )
        for path in extra:
            drift = True
            sys.stdout.writelines(
                difflib.unified_diff(
                    path.read_text(encoding="utf-8").splitlines(keepends=True), [], f"a/{path}", "/dev/null"
                )
            )
        if drift:
            print(
                f"stanch crds: {out_dir} is stale; run `stanch crds` and commit the result", file=sys.stderr
            )
        return 1 if drift else 0
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if _read(path) != text:
            path.write_text(text, encoding="utf-8")
    for path in extra:
        path.unlink()
    return 0
