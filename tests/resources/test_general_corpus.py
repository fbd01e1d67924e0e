"""The general corpus: local files and folders, or an S3 prefix, read in name order, with errors that name
what to fix."""

from pathlib import Path
from typing import Any

import pytest
from dagster_aws.s3 import S3Resource

from manga_distill_assets.resources.general_corpus import (
    CORPUS_VARIABLE,
    LocalGeneralCorpus,
    S3GeneralCorpus,
    general_corpus_from_env,
)
from manga_distill_assets.resources.s3_calls import S3StorageError


def test_a_folder_gives_its_text_files_at_any_depth_in_name_order(tmp_path: Path):
    (tmp_path / "b.txt").write_text("second\n")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "c.txt").write_text("third\nfourth\n")
    (tmp_path / "a.txt").write_text("first\n")
    (tmp_path / "notes.md").write_text("not text for the corpus\n")
    read = LocalGeneralCorpus(paths=[str(tmp_path)]).read()
    assert [(Path(name).name, lines) for name, lines in read] == [
        ("a.txt", ["first"]),
        ("b.txt", ["second"]),
        ("c.txt", ["third", "fourth"]),
    ]


def test_files_are_read_in_the_order_given(tmp_path: Path):
    (tmp_path / "x.txt").write_text("x\n")
    (tmp_path / "y.txt").write_text("y\n")
    read = LocalGeneralCorpus(paths=[str(tmp_path / "y.txt"), str(tmp_path / "x.txt")]).read()
    assert [lines for _, lines in read] == [["y"], ["x"]]


def test_a_missing_path_names_it_and_the_variable(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'nowhere.txt'}.*{CORPUS_VARIABLE}"):
        LocalGeneralCorpus(paths=[str(tmp_path / "nowhere.txt")]).read()


def test_a_folder_without_text_files_is_refused(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"hold no \.txt files"):
        LocalGeneralCorpus(paths=[str(tmp_path)]).read()


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt is not UTF-8"):
        LocalGeneralCorpus(paths=[str(tmp_path)]).read()


def test_the_variable_takes_an_s3_uri_or_local_paths_separated_by_commas():
    assert isinstance(general_corpus_from_env(None), LocalGeneralCorpus)
    assert general_corpus_from_env("/a.txt, /b").paths == ["/a.txt", "/b"]
    on_s3 = general_corpus_from_env("s3://corpora/general/wiki")
    assert (on_s3.bucket, on_s3.prefix) == ("corpora", "general/wiki")


@pytest.fixture
def corpora(s3_client: Any) -> Any:
    s3_client.create_bucket(Bucket="corpora")
    return s3_client


def test_an_s3_prefix_gives_its_text_objects_in_key_order(s3_endpoint: str, corpora: Any):
    corpora.put_object(Bucket="corpora", Key="general/b.txt", Body=b"second\n")
    corpora.put_object(Bucket="corpora", Key="general/a.txt", Body=b"first\n")
    corpora.put_object(Bucket="corpora", Key="general/_SUCCESS", Body=b"")
    corpora.put_object(Bucket="corpora", Key="other/c.txt", Body=b"elsewhere\n")
    source = S3GeneralCorpus(bucket="corpora", prefix="general", s3=S3Resource(endpoint_url=s3_endpoint))
    assert source.read() == [
        ("s3://corpora/general/a.txt", ["first"]),
        ("s3://corpora/general/b.txt", ["second"]),
    ]


def test_an_empty_s3_prefix_is_refused_naming_it(s3_endpoint: str, corpora: Any):
    source = S3GeneralCorpus(bucket="corpora", prefix="general", s3=S3Resource(endpoint_url=s3_endpoint))
    with pytest.raises(FileNotFoundError, match=r"s3://corpora/general/ holds no \.txt objects"):
        source.read()


def test_a_missing_bucket_is_named(s3_endpoint: str):
    source = S3GeneralCorpus(bucket="no-such-bucket", s3=S3Resource(endpoint_url=s3_endpoint))
    with pytest.raises(S3StorageError, match="'no-such-bucket' does not exist"):
        source.read()
