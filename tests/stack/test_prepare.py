"""Which stores a job may use, create, rebuild or replace (batchfit/stack/prepare.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import xarray as xr

from batchfit.errors import StoreError
from batchfit.stack.prepare import build_folder, decide, prepare, remove_ours, state
from batchfit.stack.store import FINGERPRINT_ATTR, manifest, markers

from .conftest import tree_hash

IDENT = {"data": {"dims": ["y", "energy"], "shape": [3, 4], "dtype": "<f8"},
         "coords": {}, "sample": "abc"}


def _record(fingerprint="f1", sample="abc") -> dict:
    return {"fingerprint": fingerprint, "input": {**IDENT, "sample": sample},
            "variables": ["status"]}


def _create(fingerprint="f1"):
    def create(folder, chunks=None):
        ds = xr.Dataset({"status": ("y", np.full(3, 5, np.int8)), "a": ("y", np.zeros(3))},
                        coords={"y": np.arange(3)}, attrs={FINGERPRINT_ATTR: fingerprint})
        ds.to_zarr(str(folder), mode="w", zarr_format=3, consolidated=False)
    return create


@pytest.fixture
def made(tmp_path):
    out = tmp_path / "res.zarr"
    assert prepare(out, _record(), False, _create()) == "create"
    return out


def _user_files(out) -> None:
    (out / "notes.txt").write_text("my notes")
    (out / "mine").mkdir()
    (out / "mine" / "data.bin").write_bytes(b"\x01\x02")


def test_created_store_is_complete_and_lists_what_batchfit_wrote(made):
    assert state(made) == "complete"
    record = manifest(made)
    assert record["fingerprint"] == "f1" and record["input"] == IDENT
    assert sorted(record["entries"]) == sorted(["zarr.json", "status", "a", "y", ".batchfit"])
    assert not build_folder(made).exists()
    assert sorted(os.listdir(markers(made))) == ["created"]


def test_same_config_and_input_resume_untouched(made):
    before = tree_hash(made)
    assert prepare(made, _record(), False, _create()) == "resume"
    assert tree_hash(made) == before


@pytest.mark.parametrize("record, match", [
    (_record(fingerprint="f2"), r"made by a different config \(fingerprint f1\.\.\. vs f2"),
    (_record(sample="xyz"), r"made from a different input: the values of the input data "),
])
def test_other_config_or_input_refused_unless_overwrite(made, record, match):
    before = tree_hash(made)
    with pytest.raises(StoreError, match=match + r".*Use --overwrite"):
        prepare(made, record, False, _create(record["fingerprint"]))
    assert tree_hash(made) == before
    assert prepare(made, record, True, _create(record["fingerprint"])) == "replace"
    assert manifest(made)["fingerprint"] == record["fingerprint"]


def test_overwrite_deletes_only_what_batchfit_wrote(made):
    _user_files(made)
    assert prepare(made, _record("f2"), True, _create("f2")) == "replace"
    assert (made / "notes.txt").read_text() == "my notes"
    assert (made / "mine" / "data.bin").read_bytes() == b"\x01\x02"
    assert state(made) == "complete" and manifest(made)["fingerprint"] == "f2"
    assert json.loads((made / "zarr.json").read_text())["attributes"][FINGERPRINT_ATTR] == "f2"
    remove_ours(made)  # the marker stays while the user's files are there: 'partial'
    assert sorted(os.listdir(made)) == [".batchfit", "mine", "notes.txt"]
    assert os.listdir(markers(made)) == ["creating"] and state(made) == "partial"


@pytest.mark.filterwarnings("ignore:Object at .batchfit is not recognized")
def test_copy_with_batchfit_attributes_is_never_deleted(made, tmp_path):
    copy = tmp_path / "copy.zarr"
    ds = xr.open_zarr(made, consolidated=False).load()
    ds.assign(extra=ds.a + 1).to_zarr(str(copy), zarr_format=3, consolidated=False)
    assert state(copy) == "copy"
    before = tree_hash(copy)
    for overwrite in (False, True):
        with pytest.raises(StoreError, match=r"without its \.batchfit markers \(a copy\?\)"):
            prepare(copy, _record(), overwrite, _create())
    assert tree_hash(copy) == before


def test_foreign_folder_is_never_touched(tmp_path):
    out = tmp_path / "res.zarr"
    out.mkdir()
    (out / "thesis.tex").write_text("...")
    with pytest.raises(StoreError, match="is not a batchfit store.*even with --overwrite"):
        prepare(out, _record(), True, _create())
    assert os.listdir(out) == ["thesis.tex"]


def test_interrupted_removal_is_rebuilt_by_a_plain_rerun(made):
    _user_files(made)
    os.replace(markers(made) / "created", markers(made) / "creating")  # killed while removing
    (made / "a" / "zarr.json").unlink()
    assert state(made) == "partial"
    assert decide(made, _record("f9"), overwrite=False) == "rebuild"
    assert prepare(made, _record("f9"), False, _create("f9")) == "rebuild"
    assert state(made) == "complete" and manifest(made)["fingerprint"] == "f9"
    assert (made / "notes.txt").read_text() == "my notes"


def test_leftover_build_folder_is_removed(tmp_path):
    out = tmp_path / "res.zarr"
    _create()(build_folder(out))  # a run killed before its rename
    assert prepare(out, _record(), False, _create()) == "create"
    assert sorted(os.listdir(tmp_path)) == ["res.zarr"]


def test_store_of_an_older_version(made):
    (markers(made) / "created").write_text("f1")  # the fingerprint text only
    _user_files(made)
    with pytest.raises(StoreError, match="does not record its input"):
        prepare(made, _record(), False, _create())
    assert prepare(made, _record(), True, _create()) == "replace"
    assert (made / "notes.txt").exists() and (made / "mine" / "data.bin").exists()
    assert json.loads((markers(made) / "created").read_text())["format"] == 2


def _plain_create(fingerprint: str):
    """A store-like layout written with plain files (a forked child must not use zarr)."""
    def create(folder, chunks=None):
        for name, text in (("zarr.json", fingerprint), ("a/zarr.json", "{}"),
                           ("a/c/0", "data"), ("status/zarr.json", "{}")):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
    return create


def _replace_in_child(out, kill_at: int) -> int:
    from .fault_driver import KILLED, SURVIVED, Counter, install

    pid = os.fork()
    if pid == 0:
        try:
            counter = Counter(kill_at)
            install(counter)
            counter.armed = True
            prepare(out, _record("f2"), True, _plain_create("f2"))
            os._exit(SURVIVED)
        finally:
            os._exit(2)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    assert code in (KILLED, SURVIVED), code
    return code


def test_kill_at_each_write_of_overwrite_then_same_command_again(tmp_path):
    """--overwrite of a store whose folder holds user files, killed at each write in turn."""
    from .fault_driver import SURVIVED

    def fresh(folder):
        out = folder / "res.zarr"
        prepare(out, _record("f1"), False, _plain_create("f1"))
        _user_files(out)
        return out

    clean = fresh(tmp_path / "clean")
    prepare(clean, _record("f2"), True, _plain_create("f2"))
    expected = tree_hash(clean)
    n = 0
    while True:
        n += 1
        out = fresh(tmp_path / str(n))
        if _replace_in_child(out, n) == SURVIVED:
            break
        prepare(out, _record("f2"), True, _plain_create("f2"))  # the same command again
        assert tree_hash(out) == expected, n
        assert sorted(os.listdir(tmp_path / str(n))) == ["res.zarr"], n
    assert tree_hash(out) == expected and n > 10


# ------------------------------------------------------------------ the layout


@pytest.mark.parametrize("damage", ["a/zarr.json", "zarr.json", "y/c/0"])
@pytest.mark.parametrize("how", ["delete", "change"])
def test_a_damaged_layout_file_is_restored_on_resume(made, damage, how):
    """Metadata and coordinate files are recorded at creation and put back exactly."""
    before = tree_hash(made)
    target = made / damage
    if how == "delete":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:-2] + b"!}")
    assert prepare(made, _record(), False, _create()) == "resume"
    assert tree_hash(made) == before
    assert not build_folder(made).exists()


def test_a_layout_file_that_cannot_be_rebuilt_exactly_is_refused(made):
    (made / "zarr.json").unlink()  # the root's attributes hold the fingerprint
    with pytest.raises(StoreError, match=r"zarr.json is missing since the store was created "
                                         r"and cannot be rebuilt exactly.*--overwrite"):
        prepare(made, _record(), False, _create("another attribute"))
    assert not (made / "zarr.json").exists() and not build_folder(made).exists()


def test_the_created_record_lists_the_layout_files(made):
    layout = manifest(made)["layout"]
    assert {"zarr.json", "a/zarr.json", "status/zarr.json", "y/zarr.json"} <= set(layout)
    assert not any(name.startswith(".batchfit") for name in layout)
    assert all(size == (made / n).stat().st_size for n, (size, _) in layout.items())
