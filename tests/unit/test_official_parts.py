"""Official split parts of KonIQ-10k (`set` column of the metadata file) and FLIVE (PaQ-2-PiQ's lists), read
from generated copies of the official files."""

from __future__ import annotations

import pytest
from test_registry import make_flive, make_koniq

from iqa_bench.data.datasets.flive import FLIVE
from iqa_bench.data.datasets.koniq10k import KonIQ10k
from iqa_bench.errors import UserError

SETS = "koniq10k_distributions_sets.csv"


def test_koniq_split_file_gives_parts(tmp_path):
    make_koniq(tmp_path)
    assert KonIQ10k(tmp_path).parts is None  # no split file: no official parts (random splits)
    (tmp_path / SETS).write_text(
        "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set\n"
        "10004473376.jpg,1,2,3,4,5,15,40,0.6,training\n"
        "10007357496.jpg,1,2,3,4,5,15,50,0.6,validation\n"
        "10028915243.jpg,1,2,3,4,5,15,60,0.6,test\n"
    )
    ds = KonIQ10k(tmp_path, split_file=SETS)
    assert dict(zip(ds.labels, ds.parts)) == {
        "1024x768/10004473376.jpg": "train",
        "1024x768/10007357496.jpg": "val",
        "1024x768/10028915243.jpg": "test",
        "1024x768/10046199375.jpg": None,  # not listed: outside the split
    }
    (tmp_path / SETS).write_text("image_name,set\n10004473376.jpg,holdout\n")
    with pytest.raises(
        UserError, match=r"koniq10k_distributions_sets\.csv line 2: set 'holdout' is not one of"
    ):
        KonIQ10k(tmp_path, split_file=SETS)
    with pytest.raises(UserError, match=r"official split file not found: .*nope\.csv"):
        KonIQ10k(tmp_path, split_file="nope.csv")


def test_flive_official_lists_give_parts(tmp_path):
    make_flive(tmp_path)
    assert FLIVE(tmp_path).parts is None  # auto, and no list files
    with pytest.raises(UserError, match=r"official split file not found: .*labels640\.csv"):
        FLIVE(tmp_path, official_split=True)
    (tmp_path / "labels640.csv").write_text("name_image,mos_image\nvoc_emotic_ava/AVA__1234.jpg,40\n")
    (tmp_path / "labels=640_padded.csv").write_text(
        "name_image,mos_image,is_valid\n"
        "motion0044.jpg,30,True\n"  # matched by file name
        "voc_emotic_ava/EMOTIC__abc.jpg,30,False\n"
        "voc_emotic_ava/AVA__1234.jpg,40,True\n"  # a test image stays test
    )
    ds = FLIVE(tmp_path, exclude_folders=["EE371R"])  # official_split=auto: the lists exist
    assert dict(zip(ds.labels, ds.parts)) == {
        "voc_emotic_ava/AVA__1234.jpg": "test",
        "voc_emotic_ava/VOC2012__2008_000001.jpg": "train",
        "voc_emotic_ava/EMOTIC__abc.jpg": "train",
        "blur_dataset/motion0044.jpg": "val",
    }
    (tmp_path / "labels640.csv").write_text("name_image,mos_image\nvoc_emotic_ava/AVA__9999.jpg,40\n")
    with pytest.raises(
        UserError, match=r"labels640\.csv line 2: 'voc_emotic_ava/AVA__9999\.jpg' matches no image"
    ):
        FLIVE(tmp_path, official_split=True)
