"""Every folder of the package is a regular package, so that a wheel carries it."""

from pathlib import Path

import cocoon


def test_every_package_folder_has_an_init():
    root = Path(cocoon.__file__).parent
    folders = [d for d in root.rglob("*") if d.is_dir() and d.name != "__pycache__"]
    assert folders
    assert [d for d in folders if not (d / "__init__.py").exists()] == []
