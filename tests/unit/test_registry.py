"""Dataset registry: tiny fake copies of every official layout (score files in their real formats), counts, score
direction, reference grouping, exclusions, lazy decoding, every bad-input message, and the Hydra configs."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from iqa_bench.data.datasets.base import FileEvalSet
from iqa_bench.data.datasets.clive import CLIVE
from iqa_bench.data.datasets.csiq import CSIQ
from iqa_bench.data.datasets.csv_folder import CsvFolder
from iqa_bench.data.datasets.flive import FLIVE
from iqa_bench.data.datasets.kadid10k import KADID10k
from iqa_bench.data.datasets.koniq10k import KonIQ10k
from iqa_bench.data.datasets.live import FOLDERS as LIVE_FOLDERS
from iqa_bench.data.datasets.live import LiveIQA
from iqa_bench.data.datasets.pipal import PIPAL
from iqa_bench.data.datasets.spaq import SPAQ
from iqa_bench.data.datasets.tid2013 import TID2013
from iqa_bench.data.datasets.xlsx import read_xlsx, sheet_names
from iqa_bench.data.eval_sets import EvalSet
from iqa_bench.data.registry import DATASETS, dataset_names, get_dataset
from iqa_bench.errors import ConfigError, UserError
from iqa_bench.utils.resolvers import CONF_DIR

# ------------------------------------------------------------------------------------------------------------
# fake files
# ------------------------------------------------------------------------------------------------------------


def img(path: Path, h: int = 20, w: int = 24, seed: int = 0) -> Path:
    """A small random RGB image; format from the suffix (.png/.bmp/.jpg/.JPG/.BMP)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    fmt = {".png": "PNG", ".bmp": "BMP", ".jpg": "JPEG", ".jpeg": "JPEG"}[path.suffix.lower()]
    Image.fromarray(arr).save(path, format=fmt)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    """A real .xlsx written by openpyxl: one sheet per entry, rows as given (None = empty cell, so empty leading
    columns/rows are real gaps)."""
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r, row in enumerate(rows, 1):
            for c, v in enumerate(row, 1):
                if v is not None:
                    ws.cell(row=r, column=c, value=v)
    wb.save(path)
    return path


def cell_array(names: list[str], shape: tuple[int, int]) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    for i, n in enumerate(names):
        arr.flat[i] = n
    return arr


# -- one builder per official layout: returns (expected count, {relative path: expected score}) ----------------


def make_live(root: Path, realigned: bool = True) -> dict[str, float]:
    """982 entries; all but 3 per folder are reference copies (orgs = 1), so 15 distorted images on disk."""
    n = sum(c for _, c in LIVE_FOLDERS)
    dmos = np.linspace(10.0, 80.0, n)
    orgs = np.ones(n)
    refnames, expected, i = [], {}, 0
    for folder, count in LIVE_FOLDERS:
        for k in range(1, count + 1):
            refnames.append(["bikes.bmp", "house.bmp", "woman.bmp"][k % 3])
            if k <= 3:
                orgs[i] = 0
                img(root / folder / f"img{k}.bmp", seed=i)
                expected[f"{folder}/img{k}.bmp"] = 100.0 - dmos[i]
            i += 1
    img(root / "refimgs" / "bikes.bmp")
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": cell_array(refnames, (1, n))})
    if realigned:
        scipy.io.savemat(
            root / "dmos_realigned.mat",
            {"dmos_new": dmos[None], "dmos_std": np.ones((1, n)), "orgs": orgs[None]},
        )
    else:
        scipy.io.savemat(root / "dmos.mat", {"dmos": dmos[None], "orgs": orgs[None]})
    return expected


CSIQ_ROWS = [  # image, dst_idx, dst_type, dst_lev, dmos_std, dmos, file
    (1600, 1, "noise", 1, 0.01, 0.06, "dst_imgs/AWGN/1600.AWGN.1.png"),
    (1600, 1, "noise", 2, 0.02, 0.21, "dst_imgs/AWGN/1600.AWGN.2.png"),
    (1600, 3, "jpeg 2000", 1, 0.02, 0.10, "dst_imgs/jpeg2000/1600.jpeg2000.1.png"),
    ("woman", 2, "jpeg", 3, 0.03, 0.45, "dst_imgs/jpeg/woman.JPEG.3.png"),
    ("woman", 4, "blur", 5, 0.04, 0.90, "dst_imgs/blur/woman.BLUR.5.png"),
    ("woman", 6, "contrast", 2, 0.03, 0.30, "dst_imgs/contrast/woman.contrast.2.png"),
    ("aerial_city", 5, "fnoise", 4, 0.02, 0.55, "dst_imgs/fnoise/aerial_city.fnoise.4.png"),
]


def make_csiq(root: Path) -> dict[str, float]:
    rows: list[list] = [
        [],
        [None, "CSIQ DMOS"],
        [None, "image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"],
    ]
    expected = {}
    for k, (image, idx, typ, lev, std, dmos, file) in enumerate(CSIQ_ROWS):
        rows.append([None, image, idx, typ, lev, std, dmos])
        img(root / file, seed=k)
        expected[file] = 1.0 - dmos
    img(root / "src_imgs" / "1600.png")
    write_xlsx(root / "csiq.DMOS.xlsx", {"all_by_distortion": [["nothing here"]], "all_by_image": rows})
    return expected


def make_tid2013(root: Path) -> dict[str, float]:
    lines, expected, k = [], {}, 0
    for ref in (1, 2, 25):
        for typ in (1, 24):
            for lev in (1, 5):
                name = f"i{ref:02d}_{typ:02d}_{lev}.bmp"
                on_disk = (
                    name.upper() if ref == 2 else name
                )  # case differs from the list, as in the real archive
                mos = 7.0 - lev - 0.01 * typ
                lines.append(f"{mos:.5f} {name}")
                img(root / "distorted_images" / on_disk, seed=k)
                expected[f"distorted_images/{name}"] = mos
                k += 1
    img(root / "reference_images" / "I01.BMP")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    (root / "mos_std.txt").write_text("\n".join("0.1" for _ in lines) + "\n")
    return expected


def make_kadid(root: Path) -> dict[str, float]:
    lines, expected = ["dist_img,ref_img,dmos,var"], {}
    for ref in (1, 2, 81):
        img(root / "images" / f"I{ref:02d}.png", seed=ref)
        for lev in (1, 3, 5):
            name = f"I{ref:02d}_01_{lev:02d}.png"
            score = 5.0 - 0.8 * lev
            lines.append(f"{name},I{ref:02d}.png,{score},0.5")
            img(root / "images" / name, seed=ref * 10 + lev)
            expected[f"images/{name}"] = score
    (root / "dmos.csv").write_text("\n".join(lines) + "\n")
    return expected


def make_koniq(root: Path, image_dir: str = "1024x768") -> dict[str, float]:
    lines = ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"]
    expected = {}
    for k, iid in enumerate((10004473376, 10007357496, 10028915243, 10046199375)):
        mos = 1.5 + k * 0.8
        lines.append(f"{iid}.jpg,1,2,3,4,5,15,{mos},0.6,{mos * 20}")
        img(root / image_dir / f"{iid}.jpg", h=24, w=32, seed=k)
        expected[f"{image_dir}/{iid}.jpg"] = mos
    (root / "koniq10k_scores_and_distributions.csv").write_text("\n".join(lines) + "\n")
    return expected


def make_clive(root: Path) -> dict[str, float]:
    train = [f"t{i}.bmp" for i in range(1, 8)]
    test = ["10.bmp", "1000.JPG", "3.bmp", "1164.JPG", "500.bmp"]
    mos = np.array([50.0] * 7 + [12.5, 80.0, 45.0, 92.4, 3.4])
    for k, n in enumerate(train):
        img(root / "Images" / "trainingImages" / n, seed=k)
    for k, n in enumerate(test):
        img(root / "Images" / n, seed=10 + k)
    (root / "Data").mkdir(parents=True)
    scipy.io.savemat(
        root / "Data" / "AllImages_release.mat", {"AllImages_release": cell_array(train + test, (12, 1))}
    )
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos[None]})
    scipy.io.savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.ones((1, 12))})
    return {f"Images/{n}": float(m) for n, m in zip(test, mos[7:])}


def make_flive(root: Path) -> dict[str, float]:
    names = [
        "voc_emotic_ava/AVA__1234.jpg",
        "voc_emotic_ava/VOC2012__2008_000001.jpg",
        "voc_emotic_ava/EMOTIC__abc.jpg",
        "blur_dataset/motion0044.jpg",
        "EE371R/jw_0001.jpg",
    ]
    lines, expected = ["name,mos"], {}
    for k, n in enumerate(names):
        m = 20.0 + 15 * k
        lines.append(f"{n},{m}")
        img(root / n, seed=k)
        expected[n] = m
    (root / "labels_image.csv").write_text("\n".join(lines) + "\n")
    (root / "labels_patch.csv").write_text("name,mos\n")
    return expected


def make_spaq(root: Path) -> dict[str, float]:
    rows: list[list] = [
        ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
    ]
    expected = {}
    for k in range(1, 6):
        name = f"{k:05d}.jpg"
        rows.append([name, 10 + 17 * k, 50, 50, 50, 50, 50])
        img(root / "TestImage" / name, h=30, w=40, seed=k)
        expected[f"TestImage/{name}"] = float(10 + 17 * k)
    write_xlsx(root / "Annotations" / "MOS and Image attribute scores.xlsx", {"Sheet1": rows})
    return expected


def make_pipal(root: Path) -> dict[str, float]:
    expected = {}
    (root / "Train_Label").mkdir(parents=True)
    for ref in ("A0001", "A0248"):
        img(root / "Train_Ref" / f"{ref}.bmp")
        lines = []
        for k in range(4):
            name = f"{ref}_0{k}_0{k}.bmp"
            score = 1000.0 + 150 * k + (5 if ref == "A0248" else 0)
            lines.append(f"{name}, {score}" if k % 2 else f"{name},{score}")  # some copies have a space
            rel = f"Distortion_{k % 2 + 1}/{name}"
            img(root / rel, seed=k)
            expected[rel] = score
        (root / "Train_Label" / f"{ref}.txt").write_text("\n".join(lines) + "\n")
    return expected


def make_csv(root: Path, with_ref: bool = True) -> dict[str, float]:
    lines, expected = ["path,mos,ref" if with_ref else "path,mos"], {}
    for k in range(6):
        rel = f"sub{k % 2}/im{k}.png"
        img(root / rel, seed=k)
        lines.append(f"{rel},{k * 1.5}" + (f",scene{k // 2}" if with_ref else ""))
        expected[rel] = k * 1.5
    (root / "scores.csv").write_text("\n".join(lines) + "\n")
    return expected


# name -> (builder, folder under data.root used by conf/data/eval/<name>.yaml, class)
LAYOUTS = {
    "live": (make_live, "databaserelease2", LiveIQA),
    "csiq": (make_csiq, "CSIQ", CSIQ),
    "tid2013": (make_tid2013, "tid2013", TID2013),
    "kadid10k": (make_kadid, "kadid10k", KADID10k),
    "koniq10k": (make_koniq, "koniq10k", KonIQ10k),
    "clive": (make_clive, "ChallengeDB_release", CLIVE),
    "flive": (make_flive, "FLIVE_Database/database", FLIVE),
    "spaq": (make_spaq, "SPAQ", SPAQ),
    "pipal": (make_pipal, "PIPAL", PIPAL),
    "csv": (make_csv, "custom", CsvFolder),
}
REF_COUNTS = {"live": 3, "csiq": 3, "tid2013": 3, "kadid10k": 3, "pipal": 2, "csv": 3}


# ------------------------------------------------------------------------------------------------------------
# every dataset: counts, direction, refs, lazy uint8 items
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_dataset_reads_its_official_layout(tmp_path, name):
    build, _, cls = LAYOUTS[name]
    expected = build(tmp_path)
    ds = cls(tmp_path)
    assert isinstance(ds, EvalSet) and get_dataset(name) is cls and ds.name == name
    assert len(ds) == len(expected) == len(ds.labels)
    got = {label.lower(): s for label, s in zip(ds.labels, ds.scores)}  # labels: paths as found on disk
    assert got.keys() == {k.lower() for k in expected}
    for k, v in expected.items():
        assert got[k.lower()] == pytest.approx(v), k
    assert ds.scores.dtype == np.float64
    if name in REF_COUNTS:
        assert ds.refs is not None and ds.refs.dtype == np.int64 and ds.refs.shape == (len(ds),)
        assert len(np.unique(ds.refs)) == REF_COUNTS[name]
    else:
        assert ds.refs is None
    x = ds[len(ds) - 1]
    assert x.dtype == torch.uint8 and x.ndim == 3 and x.shape[0] == 3
    if name != "spaq":  # spaq resizes to short side 512 by default
        assert min(x.shape[1:]) == 20 or name in ("koniq10k",) and min(x.shape[1:]) == 24
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_registry_is_the_config_group_and_rejects_unknown(tmp_path, monkeypatch):
    configs = {p.stem for p in (CONF_DIR / "data" / "eval").glob("*.yaml")}
    assert set(DATASETS) == configs == set(dataset_names())
    assert set(LAYOUTS) | {"builtin_synthetic"} <= configs  # every real dataset has a fake layout here
    assert get_dataset("KADID10K") is KADID10k
    with pytest.raises(ConfigError, match="unknown dataset 'nope'.*kadid10k"):
        get_dataset("nope")
    # a new yaml in the group is a new dataset, with no second table to edit
    import iqa_bench.data.registry as registry

    group = tmp_path / "eval"
    group.mkdir()
    (group / "mine.yaml").write_text("_target_: iqa_bench.data.datasets.csv_folder.CsvFolder\nroot: x\n")
    (group / "broken.yaml").write_text("_target_: iqa_bench.eval.splits.make_splits\n")
    monkeypatch.setattr(registry, "EVAL_GROUP", group)
    registry._target.cache_clear()
    try:
        assert registry.dataset_names() == ["broken", "mine"] and get_dataset("mine") is CsvFolder
        with pytest.raises(ConfigError, match=r"broken\.yaml: _target_ .* is not an EvalSet"):
            get_dataset("broken")
    finally:
        registry._target.cache_clear()


def test_scores_higher_is_better_for_dmos_datasets(tmp_path):
    """LIVE and CSIQ store DMOS (lower = better): the least distorted image must get the highest score."""
    make_live(tmp_path / "live")
    live = LiveIQA(tmp_path / "live")
    # dmos grows with the entry index in make_live, so the first jp2k image is the best one
    assert live.labels[int(np.argmax(live.scores))] == "jp2k/img1.bmp"
    make_csiq(tmp_path / "csiq")
    csiq = CSIQ(tmp_path / "csiq")
    assert csiq.labels[int(np.argmax(csiq.scores))] == "dst_imgs/AWGN/1600.AWGN.1.png"  # dmos 0.06
    assert csiq.labels[int(np.argmin(csiq.scores))] == "dst_imgs/blur/woman.BLUR.5.png"  # dmos 0.90
    make_csv(tmp_path / "c", with_ref=False)
    pos, neg = CsvFolder(tmp_path / "c"), CsvFolder(tmp_path / "c", higher_better=False)
    np.testing.assert_allclose(neg.scores, -pos.scores)


def test_refs_group_by_reference(tmp_path):
    make_tid2013(tmp_path)
    ds = TID2013(tmp_path)
    ref_of = {label: int(r) for label, r in zip(ds.labels, ds.refs)}
    groups: dict[int, set[str]] = {}
    for label, r in ref_of.items():
        groups.setdefault(r, set()).add(label.split("/")[1][:3].lower())
    assert sorted(len(g) for g in groups.values()) == [1, 1, 1]  # one reference name per group
    assert all(np.count_nonzero(ds.refs == r) == 4 for r in np.unique(ds.refs))
    make_kadid(tmp_path / "k")
    kad = KADID10k(tmp_path / "k")
    assert {lab[7:10] for lab, r in zip(kad.labels, kad.refs) if r == kad.refs[0]} == {"I01"}


def test_live_drops_reference_copies_and_reads_original_scores(tmp_path):
    expected = make_live(tmp_path, realigned=False)
    with pytest.raises(UserError, match=r"dmos_realigned\.mat.*scores: original"):
        LiveIQA(tmp_path)
    ds = LiveIQA(tmp_path, scores="original")
    assert len(ds) == 15 == len(expected)  # 967 orgs==1 entries excluded
    assert all(lab.rsplit("img", 1)[1] in ("1.bmp", "2.bmp", "3.bmp") for lab in ds.labels)
    with pytest.raises(ConfigError, match=r"data\.eval\.live\.scores"):
        LiveIQA(tmp_path, scores="bogus")


def test_clive_excludes_the_seven_training_images(tmp_path):
    make_clive(tmp_path)
    ds = CLIVE(tmp_path)
    assert len(ds) == 5 and not any("trainingImages" in lab for lab in ds.labels)
    full = CLIVE(tmp_path, exclude_training=False)
    assert len(full) == 12 and sum("trainingImages/t" in lab for lab in full.labels) == 7


def test_clive_accepts_doubly_nested_zip(tmp_path):
    make_clive(tmp_path / "ChallengeDB_release")
    assert len(CLIVE(tmp_path)) == 5


def test_flive_exclude_folders_and_koniq_options(tmp_path):
    make_flive(tmp_path / "f")
    assert len(FLIVE(tmp_path / "f", exclude_folders=["EE371R"])) == 4
    make_koniq(tmp_path / "k", image_dir="512x384")
    ds = KonIQ10k(tmp_path / "k", image_dir="512x384", score_column="MOS_zscore")
    assert ds.scores.max() == pytest.approx((1.5 + 3 * 0.8) * 20)
    with pytest.raises(UserError, match=r"1024x768"):  # default folder absent
        KonIQ10k(tmp_path / "k")
    with pytest.raises(ConfigError, match="score_column"):
        KonIQ10k(tmp_path / "k", score_column="SD")


def test_short_side_resizes_lazily(tmp_path):
    make_spaq(tmp_path)
    ds = SPAQ(tmp_path, short_side=64)
    assert tuple(ds[0].shape) == (3, 64, 85)
    assert tuple(SPAQ(tmp_path, short_side=None)[0].shape) == (3, 30, 40)


def test_xlsx_reader(tmp_path):
    p = write_xlsx(tmp_path / "a.xlsx", {"one": [[1, "x"]], "two": [[], [None, "a", 2.5], ["b"]]})
    assert sheet_names(p) == ["one", "two"]
    assert read_xlsx(p) == [(1, ["1", "x"])]
    assert read_xlsx(p, "two") == [(2, [None, "a", "2.5"]), (3, ["b"])]
    with pytest.raises(UserError, match=r"no sheet 'three'.*\['one', 'two'\]"):
        read_xlsx(p, "three")
    (tmp_path / "b.xlsx").write_text("not a zip")
    with pytest.raises(UserError, match=r"b\.xlsx: not a readable \.xlsx"):
        read_xlsx(tmp_path / "b.xlsx")


def test_xlsx_reader_cell_kinds(tmp_path):
    """Rich-text strings, formulas (their cached value), error cells, a whole number stored by a float writer and a
    wrong <dimension>."""
    from openpyxl import Workbook, load_workbook
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont

    wb = Workbook()
    ws = wb.active
    ws.title = "Data"
    ws["A1"] = CellRichText([TextBlock(InlineFont(b=True), "Image "), "name"])
    ws["B1"] = "MOS"
    ws["A2"], ws["B2"], ws["C2"], ws["D2"] = "00001.jpg", 42.5, "#N/A", 1600.0
    ws["E2"] = "=B2*2"
    wb.save(tmp_path / "w.xlsx")
    # openpyxl writes no cached formula value: give E2 one (as Excel would) and a wrong <dimension> ref
    with zipfile.ZipFile(tmp_path / "w.xlsx") as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    xml = xml.replace("<f>B2*2</f><v></v>", "<f>B2*2</f><v>85</v>").replace(
        "<f>B2*2</f><v />", "<f>B2*2</f><v>85</v>"
    )
    assert "<v>85</v>" in xml
    xml = xml.replace('<dimension ref="A1:E2"/>', '<dimension ref="A1"/>')
    parts["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(tmp_path / "w.xlsx", "w") as zf:
        for n, data in parts.items():
            zf.writestr(n, data)
    assert load_workbook(tmp_path / "w.xlsx").sheetnames == ["Data"]
    assert read_xlsx(tmp_path / "w.xlsx", " data") == [
        (1, ["Image name", "MOS"]),
        (2, ["00001.jpg", "42.5", None, "1600", "85"]),
    ]


# ------------------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_wrong_root_names_path_and_layout(tmp_path, name):
    _, _, cls = LAYOUTS[name]
    with pytest.raises(
        UserError, match=rf"dataset folder not found: .*nowhere; expected .*{cls.LAYOUT[:12]}"
    ):
        cls(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"not found: .*empty.*; expected "):
        cls(tmp_path / "empty")


def test_missing_score_file_names_it(tmp_path):
    make_kadid(tmp_path)
    (tmp_path / "dmos.csv").unlink()
    with pytest.raises(UserError, match=r"score file not found: .*dmos\.csv; expected KADID-10k"):
        KADID10k(tmp_path)


def _csv(root: Path, text: str, n_images: int = 4) -> Path:
    for k in range(n_images):
        img(root / f"im{k}.png", seed=k)
    (root / "scores.csv").write_text(text)
    return root


@pytest.mark.parametrize(
    "text,match",
    [
        ("path,mos\nim0.png,1\nim1.png,nan\n", r"scores\.csv line 3: score is nan"),
        ("path,mos\nim0.png,1\nim1.png,\n", r"scores\.csv line 3: missing score"),
        ("path,mos\nim0.png,1\nim1.png,abc\n", r"scores\.csv line 3: score 'abc' is not a number"),
        (
            "path,mos\nim0.png,1\nim1.png,2\nim0.png,3\n",
            r"duplicate image 'im0\.png': scores\.csv line 2 and .*line 4",
        ),
        ("file,score\nim0.png,1\n", r"scores\.csv line 1: missing column\(s\) \['path', 'mos'\]; header is"),
        ("path,mos,ref\nim0.png,1,a\nim1.png,2,\n", r"line 3: empty 'ref'"),
        ("path,mos\n,1\n", r"line 2: empty 'path'"),
        ("", r"scores\.csv: empty file"),
    ],
)
def test_bad_csv_rows_name_file_and_row(tmp_path, text, match):
    _csv(tmp_path, text)
    with pytest.raises(UserError, match=match):
        CsvFolder(tmp_path)


def test_bad_rows_in_other_formats(tmp_path):
    make_tid2013(tmp_path / "t")
    with (tmp_path / "t" / "mos_with_names.txt").open("a") as fh:
        fh.write("oops\n")
    with pytest.raises(UserError, match=r"mos_with_names\.txt line 13: expected '<mos> <image name>'"):
        TID2013(tmp_path / "t")
    make_koniq(tmp_path / "k")
    p = tmp_path / "k" / "koniq10k_scores_and_distributions.csv"
    p.write_text(p.read_text().replace(",1.5,", ",NaN,"))
    with pytest.raises(UserError, match=r"koniq10k_scores_and_distributions\.csv line 2: score is nan"):
        KonIQ10k(tmp_path / "k")
    root = tmp_path / "c"
    make_csiq(root)
    rows = [[None, "image", "dst_type", "dst_lev", "dmos"], [None, "1600", "sharpen", 1, 0.2]]
    write_xlsx(root / "csiq.DMOS.xlsx", {"all_by_image": rows})
    with pytest.raises(
        UserError, match=r"csiq\.DMOS\.xlsx sheet 'all_by_image' row 2: unknown dst_type 'sharpen'"
    ):
        CSIQ(root)
    write_xlsx(root / "csiq.DMOS.xlsx", {"all_by_image": [["image", "dmos"]]})
    with pytest.raises(UserError, match=r"row 1: missing column\(s\) \['dst_type', 'dst_lev'\]"):
        CSIQ(root)
    with pytest.raises(UserError, match=r"no sheet 'by_type'"):
        CSIQ(root, sheet="by_type")
    make_pipal(tmp_path / "p")
    (tmp_path / "p" / "Train_Label" / "A0001.txt").write_text("A0001_00_00.bmp 1500\n")
    with pytest.raises(UserError, match=r"Train_Label/A0001\.txt line 1: expected 'name,score'"):
        PIPAL(tmp_path / "p")
    make_spaq(tmp_path / "s")
    write_xlsx(
        tmp_path / "s" / "Annotations" / "MOS and Image attribute scores.xlsx",
        {"Sheet1": [["Image name", "MOS"], ["00001.jpg", 50], ["00002.jpg", None, 3]]},
    )
    with pytest.raises(UserError, match=r"MOS and Image attribute scores\.xlsx row 3: missing score"):
        SPAQ(tmp_path / "s")


def test_bad_mat_files(tmp_path):
    make_clive(tmp_path)
    scipy.io.savemat(tmp_path / "Data" / "AllMOS_release.mat", {"mos": np.ones((1, 12))})
    with pytest.raises(
        UserError, match=r"AllMOS_release\.mat: variable 'AllMOS_release' not found \(has \['mos'\]\)"
    ):
        CLIVE(tmp_path)
    scipy.io.savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": np.ones((1, 11))})
    with pytest.raises(UserError, match=r"AllMOS_release has 11 entries but AllImages_release 12"):
        CLIVE(tmp_path)
    mos = np.ones((1, 12))
    mos[0, 9] = np.nan
    scipy.io.savemat(tmp_path / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos})
    with pytest.raises(UserError, match=r"AllMOS_release\.mat entry 10 \(3\.bmp\): score is nan"):
        CLIVE(tmp_path)
    (tmp_path / "Data" / "AllMOS_release.mat").write_text("garbage")
    with pytest.raises(UserError, match=r"AllMOS_release\.mat: cannot read \.mat file"):
        CLIVE(tmp_path)
    make_live(tmp_path / "l")
    scipy.io.savemat(
        tmp_path / "l" / "dmos_realigned.mat", {"dmos_new": np.ones((1, 5)), "orgs": np.zeros((1, 5))}
    )
    with pytest.raises(UserError, match=r"variable 'dmos_new' has 5 entries, expected 982"):
        LiveIQA(tmp_path / "l")


def _touch_csv(root: Path, n: int, missing: int) -> None:
    """n listed images, the first `missing` absent; files are empty (check_images: none only looks at names)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["path,mos"]
    for k in range(n):
        lines.append(f"im{k}.png,{k}")
        if k >= missing:
            (root / f"im{k}.png").touch()
    (root / "scores.csv").write_text("\n".join(lines) + "\n")


def test_missing_images_below_one_percent_are_skipped_with_a_warning(tmp_path, caplog):
    _touch_csv(tmp_path, 300, 2)
    with caplog.at_level(logging.WARNING):
        ds = CsvFolder(tmp_path, check_images="none")
    assert len(ds) == 298 and "im0.png" not in ds.labels
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "2 listed image(s) missing" in msg and "im0.png, im1.png" in msg and "2 of 300" in msg


def test_missing_images_at_or_above_one_percent_fail(tmp_path):
    _touch_csv(tmp_path, 300, 3)
    with pytest.raises(
        UserError, match=r"3 listed image\(s\) missing .*3/300 = 1\.0% .*max_missing_frac=0\.01"
    ):
        CsvFolder(tmp_path, check_images="none")
    assert len(CsvFolder(tmp_path, check_images="none", max_missing_frac=0.02)) == 297
    make_kadid(tmp_path / "k")
    (tmp_path / "k" / "images" / "I02_01_03.png").unlink()
    with pytest.raises(UserError, match=r"kadid10k: 1 listed image\(s\) missing .*I02_01_03\.png.*1/9"):
        KADID10k(tmp_path / "k")
    make_pipal(tmp_path / "p")
    (tmp_path / "p" / "Distortion_2" / "A0248_01_01.bmp").unlink()
    with pytest.raises(
        UserError, match=r"pipal: 1 listed image\(s\) missing .*Distortion_\*/A0248_01_01\.bmp"
    ):
        PIPAL(tmp_path / "p")


def test_unreadable_images_caught_by_header_check(tmp_path, caplog):
    _csv(tmp_path, "path,mos\n" + "".join(f"im{k}.png,{k}\n" for k in range(4)))
    (tmp_path / "im1.png").write_text("not an image")
    with pytest.raises(UserError, match=r"1 unreadable image\(s\) \(.*im1\.png: cannot read image header"):
        CsvFolder(tmp_path)
    img(tmp_path / "im2.png", h=8, w=8)
    with pytest.raises(UserError, match=r"2 unreadable .*im2\.png: image is 8x8, smaller than 16"):
        CsvFolder(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = CsvFolder(tmp_path, max_missing_frac=0.9)
    assert ds.labels == ["im0.png", "im3.png"]
    assert "2 unreadable image(s)" in caplog.text


def test_truncated_image_becomes_a_placeholder_not_a_crash(tmp_path, caplog):
    _csv(tmp_path, "path,mos\n" + "".join(f"im{k}.png,{k}\n" for k in range(3)))
    data = (tmp_path / "im1.png").read_bytes()
    (tmp_path / "im1.png").write_bytes(data[: len(data) // 2])  # valid header, truncated pixels
    ds = CsvFolder(tmp_path)  # the header check passes
    assert len(ds) == 3
    with caplog.at_level(logging.WARNING):
        x = ds[1]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 20, 24) and int(x.float().std()) == 0
    assert ds.placeholder_items == [1] and "im1.png" in caplog.text and "placeholder" in caplog.text
    assert ds[0].float().std() > 0
    # check_images=full decodes every image up front and drops it instead
    with pytest.raises(UserError, match=r"1 unreadable image\(s\) \(.*im1\.png: cannot decode"):
        CsvFolder(tmp_path, check_images="full")
    nochk = CsvFolder(tmp_path, check_images="none")
    assert tuple(nochk[1].shape) == (3, 256, 256)


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"check_images": "some"}, "check_images"),
        ({"max_missing_frac": 1.5}, "max_missing_frac"),
        ({"short_side": 4}, "short_side"),
    ],
)
def test_bad_common_options_name_the_key(tmp_path, kwargs, key):
    with pytest.raises(ConfigError, match=rf"data\.eval\.csv\.{key}"):
        CsvFolder(tmp_path, **kwargs)


def test_items_are_decoded_lazily(tmp_path, monkeypatch):
    make_csv(tmp_path)
    ds = CsvFolder(tmp_path)
    calls = []
    import iqa_bench.data.datasets.base as base

    real = base.decode_image
    monkeypatch.setattr(base, "decode_image", lambda p: calls.append(p) or real(p))
    assert not calls
    ds[3]
    assert len(calls) == 1 and calls[0].endswith("im3.png")
    assert isinstance(ds, FileEvalSet) and not hasattr(ds, "images")


# ------------------------------------------------------------------------------------------------------------
# Hydra configs
# ------------------------------------------------------------------------------------------------------------


def test_each_dataset_config_instantiates_against_a_fake_root(compose_cfg, tmp_path):
    from iqa_bench.runs import build_eval_sets

    data_root = tmp_path / "iqa_data"
    expected = {}
    for name, (build, folder, _) in LAYOUTS.items():
        (data_root / folder).mkdir(parents=True)
        expected[name] = len(build(data_root / folder))
    cfg = compose_cfg([f"data/eval=[{','.join(sorted(LAYOUTS))}]", f"data.root={data_root}"])
    assert sorted(cfg.data.eval) == sorted(LAYOUTS)
    for name in LAYOUTS:
        node = cfg.data.eval[name]
        assert node.root.startswith(str(data_root)) and node.name == name
        assert {"check_images", "max_missing_frac", "short_side"} <= set(node)
    sets = build_eval_sets(cfg)
    for name, ds in sets.items():
        assert isinstance(ds, LAYOUTS[name][2]) and len(ds) == expected[name], name
        assert ds[0].dtype == torch.uint8


def test_csv_config_with_its_own_root(compose_cfg, tmp_path):
    from iqa_bench.runs import build_eval_sets

    make_csv(tmp_path / "mine", with_ref=False)
    cfg = compose_cfg(["data/eval=[csv]", f"data.eval.csv.root={tmp_path / 'mine'}"])
    sets = build_eval_sets(cfg)
    assert list(sets) == ["csv"] and len(sets["csv"]) == 6 and sets["csv"].refs is None
    cfg = compose_cfg(["data/eval=[csv]", f"data.root={tmp_path / 'absent'}"])
    with pytest.raises(UserError, match=r"csv: dataset folder not found: .*absent/custom"):
        build_eval_sets(cfg)
