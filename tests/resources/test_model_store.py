"""The model store keeps model folders by content, locally and on S3, and never hands back damaged files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from dagster_aws.s3 import S3Resource

from manga_distill_assets.resources.model_store import LocalModelStore, ModelRef, S3ModelStore
from manga_distill_assets.resources.model_store.manifest import folder_sha256
from manga_distill_assets.resources.s3_calls import S3StorageError
from tests.s3_server import object_keys

LABEL_MAP = {0: "order_status", 1: "recommendation"}
METRICS = {"accuracy": 0.921}
BUCKET = "models-bucket"
KEY_ID = "test-key-id-never-print-me"
SECRET = "test-secret-never-print-me"


def _files_of(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
    }


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """A stand-in for a save_pretrained folder, nested like a tokenizer sub-folder can be."""
    folder = tmp_path / "saved_model"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "config.json").write_text('{"num_labels": 2}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    (folder / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\nmanga\n")
    return folder


def _hand_sha256(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        data = files[path]
        digest.update(f"{path}\0{len(data)}\0{hashlib.sha256(data).hexdigest()}\n".encode())
    return digest.hexdigest()


# folder_sha256


def test_folder_sha256_hashes_sorted_relative_paths_sizes_and_file_hashes(model_folder: Path) -> None:
    expected = _hand_sha256(
        {
            "config.json": b'{"num_labels": 2}',
            "model.safetensors": bytes(range(256)) * 40,
            "tokenizer/vocab.txt": b"[PAD]\n[UNK]\nmanga\n",
        }
    )
    assert folder_sha256(model_folder) == expected


def test_folder_sha256_changes_when_one_byte_changes(model_folder: Path) -> None:
    before = folder_sha256(model_folder)
    weights = model_folder / "model.safetensors"
    weights.write_bytes(b"\x01" + weights.read_bytes()[1:])
    assert folder_sha256(model_folder) != before


def test_folder_sha256_changes_when_a_file_is_renamed(model_folder: Path) -> None:
    before = folder_sha256(model_folder)
    (model_folder / "config.json").rename(model_folder / "config2.json")
    assert folder_sha256(model_folder) != before


# ModelRef


def test_model_ref_survives_a_json_round_trip_with_label_ids_as_strings() -> None:
    ref = ModelRef.from_dict(
        {
            "uri": "file:///m",
            "sha256": "ab" * 32,
            "kind": "teacher",
            "label_map": LABEL_MAP,
            "metrics": METRICS,
        }
    )
    assert ref.label_map == {"0": "order_status", "1": "recommendation"}
    assert ModelRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref


def test_model_ref_from_a_dict_without_sha256_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="lacks sha256"):
        ModelRef.from_dict({"uri": "file:///m", "kind": "teacher"})


def test_model_ref_with_a_kind_that_could_leave_the_store_is_refused() -> None:
    with pytest.raises(ValueError, match="not a plain name"):
        ModelRef(uri="file:///m", sha256="ab" * 32, kind="../teacher")


def test_model_ref_with_a_malformed_sha256_is_refused() -> None:
    with pytest.raises(ValueError, match="not 64 hex digits"):
        ModelRef(uri="file:///m", sha256="abc", kind="teacher")


# LocalModelStore


def test_local_put_then_get_gives_back_the_same_files(tmp_path: Path, model_folder: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    assert _files_of(store.get(ref)) == _files_of(model_folder)


def test_local_put_returns_a_ref_addressed_by_content(tmp_path: Path, model_folder: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    address = folder_sha256(model_folder)
    expected_folder = tmp_path / "store" / "teacher" / address[:16]
    assert (ref.sha256, ref.kind, ref.uri) == (address, "teacher", expected_folder.as_uri())
    assert (ref.label_map, ref.metrics) == ({"0": "order_status", "1": "recommendation"}, METRICS)


def test_local_get_gives_a_folder_that_hashes_to_the_ref(tmp_path: Path, model_folder: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = store.put(model_folder, "student_stage1", LABEL_MAP, METRICS)
    assert folder_sha256(store.get(ref)) == ref.sha256


def test_local_put_of_stored_content_is_a_no_op_returning_the_same_ref(
    tmp_path: Path, model_folder: Path
) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    first = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    stored_weights = store.get(first) / "model.safetensors"
    inode_before = stored_weights.stat().st_ino
    second = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    assert second == first
    assert stored_weights.stat().st_ino == inode_before


def test_local_put_leaves_no_temporary_folders(tmp_path: Path, model_folder: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    names = sorted(path.name for path in (tmp_path / "store" / "teacher").iterdir())
    assert names == [ref.sha256[:16], f"{ref.sha256[:16]}.manifest.json"]


def test_local_get_accepts_the_ref_as_a_plain_dict(tmp_path: Path, model_folder: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    assert store.get(json.loads(json.dumps(ref.to_dict()))) == store.get(ref)


def test_local_get_of_a_ref_never_stored_says_to_rematerialise(tmp_path: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = ModelRef(uri="file:///elsewhere/teacher/0123", sha256="0123456789abcdef" * 4, kind="teacher")
    with pytest.raises(FileNotFoundError, match=r"teacher model 0123456789abcdef .*Re-materialise the asset"):
        store.get(ref)


def test_local_get_refuses_a_folder_whose_manifest_was_never_written(
    tmp_path: Path, model_folder: Path
) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    (tmp_path / "store" / "teacher" / f"{ref.sha256[:16]}.manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="never completely written"):
        store.get(ref)


def test_local_get_names_a_truncated_stored_file(tmp_path: Path, model_folder: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    weights = store.get(ref) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors is missing or not 10240 bytes"):
        store.get(ref)


def test_local_put_again_repairs_a_damaged_stored_copy(tmp_path: Path, model_folder: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    ref = store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    (store.get(ref) / "config.json").unlink()
    store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    assert _files_of(store.get(ref)) == _files_of(model_folder)


def test_local_put_refuses_a_kind_that_is_a_path(tmp_path: Path, model_folder: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    with pytest.raises(ValueError, match="not a plain name"):
        store.put(model_folder, "../../outside", LABEL_MAP, METRICS)
    assert not (tmp_path / "outside").exists()


def test_local_put_of_a_missing_folder_names_it(tmp_path: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        store.put(tmp_path / "nowhere", "teacher", LABEL_MAP, METRICS)


def test_local_put_of_an_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    store = LocalModelStore(root=str(tmp_path / "store"))
    with pytest.raises(ValueError, match="empty is empty"):
        store.put(tmp_path / "empty", "teacher", LABEL_MAP, METRICS)


# S3ModelStore


def _s3_store(endpoint: str, cache: Path, bucket: str = BUCKET) -> S3ModelStore:
    return S3ModelStore(
        bucket=bucket, prefix="models", s3=S3Resource(endpoint_url=endpoint), cache_dir=str(cache)
    )


@pytest.fixture
def s3_store(s3_endpoint: str, s3_client, tmp_path: Path) -> S3ModelStore:
    s3_client.create_bucket(Bucket=BUCKET)
    return _s3_store(s3_endpoint, tmp_path / "cache")


def _keys(client) -> list[str]:
    return object_keys(client, BUCKET)


def test_s3_put_uploads_every_file_and_a_manifest_beside_them(
    s3_store: S3ModelStore, s3_client, model_folder: Path
) -> None:
    ref = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    base = f"models/teacher/{ref.sha256[:16]}"
    assert ref.uri == f"s3://{BUCKET}/{base}/"
    assert _keys(s3_client) == sorted(
        [
            f"{base}.manifest.json",
            f"{base}/config.json",
            f"{base}/model.safetensors",
            f"{base}/tokenizer/vocab.txt",
        ]
    )


def test_s3_manifest_lists_each_file_with_size_and_sha256(
    s3_store: S3ModelStore, s3_client, model_folder: Path
) -> None:
    ref = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    key = f"models/teacher/{ref.sha256[:16]}.manifest.json"
    manifest = json.loads(s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    config_bytes = b'{"num_labels": 2}'
    assert manifest["sha256"] == ref.sha256
    assert {"path": "config.json", "size": 17, "sha256": hashlib.sha256(config_bytes).hexdigest()} in (
        manifest["files"]
    )


def test_s3_put_then_get_gives_back_the_same_files(s3_store: S3ModelStore, model_folder: Path) -> None:
    ref = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    fetched = s3_store.get(ref.to_dict())
    assert _files_of(fetched) == _files_of(model_folder)
    assert folder_sha256(fetched) == ref.sha256


def test_s3_put_of_stored_content_uploads_nothing(
    s3_store: S3ModelStore, s3_client, model_folder: Path
) -> None:
    first = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    config_key = f"models/teacher/{first.sha256[:16]}/config.json"
    s3_client.delete_object(Bucket=BUCKET, Key=config_key)
    assert s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS) == first
    assert config_key not in _keys(s3_client)


def test_s3_get_serves_a_second_call_from_the_local_cache(
    s3_store: S3ModelStore, s3_client, model_folder: Path
) -> None:
    ref = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    first = s3_store.get(ref)
    for key in _keys(s3_client):
        s3_client.delete_object(Bucket=BUCKET, Key=key)
    assert s3_store.get(ref) == first


def test_s3_get_names_the_key_of_a_truncated_file(
    s3_store: S3ModelStore, s3_client, model_folder: Path
) -> None:
    ref = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    key = f"models/teacher/{ref.sha256[:16]}/model.safetensors"
    s3_client.put_object(
        Bucket=BUCKET, Key=key, Body=(model_folder / "model.safetensors").read_bytes()[:1000]
    )
    with pytest.raises(ValueError, match=rf"s3://{BUCKET}/{key} is damaged: 1000 bytes"):
        s3_store.get(ref)


def test_s3_get_detects_a_corrupt_file_of_the_right_size(
    s3_store: S3ModelStore, s3_client, model_folder: Path
) -> None:
    ref = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    key = f"models/teacher/{ref.sha256[:16]}/config.json"
    s3_client.put_object(Bucket=BUCKET, Key=key, Body=b'{"num_labels": 9}')
    with pytest.raises(ValueError, match=rf"{key} is damaged"):
        s3_store.get(ref)


def test_s3_get_of_a_damaged_model_leaves_nothing_in_the_cache(
    s3_store: S3ModelStore, s3_client, model_folder: Path, tmp_path: Path
) -> None:
    ref = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    key = f"models/teacher/{ref.sha256[:16]}/model.safetensors"
    s3_client.put_object(Bucket=BUCKET, Key=key, Body=b"truncated")
    with pytest.raises(ValueError):
        s3_store.get(ref)
    assert list((tmp_path / "cache" / "teacher").iterdir()) == []


def test_s3_get_never_reads_a_model_whose_manifest_is_missing(
    s3_store: S3ModelStore, s3_client, model_folder: Path
) -> None:
    ref = s3_store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    s3_client.delete_object(Bucket=BUCKET, Key=f"models/teacher/{ref.sha256[:16]}.manifest.json")
    with pytest.raises(FileNotFoundError, match=r"manifest\.json does not exist.*Re-materialise"):
        s3_store.get(ref)


def test_s3_put_to_a_missing_bucket_names_the_bucket(
    s3_endpoint: str,
    model_folder: Path,
    tmp_path: Path,
) -> None:
    store = _s3_store(s3_endpoint, tmp_path / "cache", bucket="no-such-bucket")
    with pytest.raises(S3StorageError, match="bucket 'no-such-bucket' does not exist"):
        store.put(model_folder, "teacher", LABEL_MAP, METRICS)


def test_s3_access_denied_names_bucket_and_permission_but_not_the_secret(
    monkeypatch: pytest.MonkeyPatch, model_folder: Path, tmp_path: Path
) -> None:
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
    )
    stubber = Stubber(client)
    stubber.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    stubber.activate()
    monkeypatch.setattr(S3Resource, "get_client", lambda self: client)
    store = S3ModelStore(
        bucket=BUCKET,
        s3=S3Resource(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET),
        cache_dir=str(tmp_path / "cache"),
    )
    with pytest.raises(S3StorageError) as raised:
        store.put(model_folder, "teacher", LABEL_MAP, METRICS)
    message = str(raised.value)
    assert f"bucket '{BUCKET}'" in message and "s3:GetObject" in message
    assert SECRET not in message and KEY_ID not in message


def test_a_ref_with_the_labelled_sets_labels_in_order_is_accepted() -> None:
    ref = ModelRef(uri="file:///m", sha256="ab" * 32, kind="teacher", label_map={"1": "b", "0": "a"})
    ref.require_labels(["a", "b"], used_by="teacher_soft_labels")


def test_a_ref_with_renamed_labels_is_refused_naming_both_label_lists_and_the_fix() -> None:
    ref = ModelRef(uri="file:///m", sha256="ab" * 32, kind="teacher", label_map={"0": "a", "1": "b"})
    with pytest.raises(ValueError) as refused:
        ref.require_labels(["a", "c"], used_by="teacher_soft_labels")
    message = str(refused.value)
    assert "teacher_soft_labels cannot use the teacher model abababababababab" in message
    assert "['a', 'b'] in that order, but the labelled set has ['a', 'c']" in message
    assert "Re-materialise the teacher model on the current labelled set" in message


def test_a_ref_with_reordered_labels_is_refused() -> None:
    ref = ModelRef(uri="file:///m", sha256="ab" * 32, kind="teacher", label_map={"0": "b", "1": "a"})
    with pytest.raises(ValueError, match="in that order"):
        ref.require_labels(["a", "b"], used_by="eval_report")
