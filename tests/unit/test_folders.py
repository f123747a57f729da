"""User pretraining folders: recursive listing, cached file list, clear errors."""

from __future__ import annotations

import pytest
from PIL import Image

from iqa_bench.data import folders
from iqa_bench.data.folders import folder_images, kadis700_images
from iqa_bench.errors import UserError


def _tree(root):
    (root / "a" / "b c").mkdir(parents=True)
    for rel in ["x.JPG", "a/y.png", "a/b c/z ü.webp", "a/notes.txt", "a/b c/w.tiff"]:
        p = root / rel
        if p.suffix == ".txt":
            p.write_text("not an image")
        else:
            Image.new("RGB", (20, 20), (10, 20, 30)).save(p)
    return root


def test_lists_images_recursively_and_caches_the_list(tmp_path, monkeypatch):
    root = _tree(tmp_path / "imgs")
    got = folder_images(root, tmp_path / "cache")
    assert [p.relative_to(root).as_posix() for p in got] == [
        "a/b c/w.tiff",
        "a/b c/z ü.webp",
        "a/y.png",
        "x.JPG",
    ]
    # a file added to a sub-folder leaves the folder's mtime as it was (one added to the folder itself triggers a
    # rescan: tests/integration/test_faults_files.py)
    (root / "a" / "late.png").write_bytes((root / "a" / "y.png").read_bytes())
    monkeypatch.setattr(folders, "scan_images", lambda *a: pytest.fail("the cached list must be reused"))
    assert folder_images(root, tmp_path / "cache") == got  # cached: the new file is not seen...
    monkeypatch.undo()
    assert len(folder_images(root, tmp_path / "cache", rescan=True)) == 5  # ...until rescan


def test_extensions_filter(tmp_path):
    root = _tree(tmp_path / "imgs")
    assert [p.name for p in folder_images(root, tmp_path / "c", extensions=[".png"])] == ["y.png"]


def test_missing_empty_and_unset_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="data.pretrain.path: folder not found"):
        folder_images(tmp_path / "nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds 0 image"):
        folder_images(tmp_path / "empty", tmp_path)
    with pytest.raises(UserError, match="set it to the folder"):
        folder_images("???", tmp_path)


def test_kadis700_layout(tmp_path):
    with pytest.raises(UserError, match="ref_imgs"):
        kadis700_images(tmp_path / "kadis700k", tmp_path / "cache")
    ref = tmp_path / "kadis700k" / "ref_imgs"
    ref.mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (32, 24)).save(ref / f"img-{i}.png")
    Image.new("RGB", (32, 24)).save(ref / "ignored.jpg")
    assert len(kadis700_images(tmp_path / "kadis700k", tmp_path / "cache")) == 3
