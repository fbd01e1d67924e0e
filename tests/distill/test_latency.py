from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from manga_distill_assets.distill import latency
from manga_distill_assets.distill.latency import measure_latency, measure_onnx_latency, torch_threads
from manga_distill_assets.distill.onnx_export import export_onnx, open_session
from tests.distill.tiny import TINY_TEXTS, tiny_teacher, tiny_tokenizer

FEW_RUNS = {"warmup": 2, "runs": 20, "throughput_batch": 8}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerFast:
    return tiny_tokenizer(tmp_path_factory.mktemp("latency"))


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_latency_reports_percentiles_throughput_and_settings(tokenizer) -> None:
    result = measure_latency(tiny_teacher(layers=1), tokenizer, TINY_TEXTS[:5], **FEW_RUNS)
    assert set(result) == {
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "mean_ms",
        "throughput_per_s",
        "threads",
        "runs",
        "throughput_batch",
    }
    assert (result["threads"], result["runs"], result["throughput_batch"]) == (1, 20, 8)
    assert result["throughput_per_s"] > 0


def test_latency_percentiles_are_positive_and_ordered(tokenizer) -> None:
    result = measure_latency(tiny_teacher(layers=1), tokenizer, TINY_TEXTS, **FEW_RUNS)
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]


def test_latency_runs_on_the_given_threads_and_restores_the_previous_count(
    tokenizer, restore_threads
) -> None:
    torch.set_num_threads(2)
    seen_threads: list[int] = []
    model = tiny_teacher(layers=1)
    model.register_forward_pre_hook(lambda *_: seen_threads.append(torch.get_num_threads()))
    result = measure_latency(model, tokenizer, TINY_TEXTS, threads=1, **FEW_RUNS)
    assert set(seen_threads) == {1}
    assert result["threads"] == 1
    assert torch.get_num_threads() == 2


def test_a_block_under_torch_threads_runs_on_them_and_the_count_comes_back_even_when_it_fails(
    restore_threads,
) -> None:
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="inside"), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_latency_runs_warmup_runs_and_throughput_batches(tokenizer) -> None:
    batch_sizes: list[int] = []
    model = tiny_teacher(layers=1)
    model.register_forward_pre_hook(
        lambda _, __, kwargs: batch_sizes.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    measure_latency(model, tokenizer, TINY_TEXTS[:3], warmup=4, runs=40, throughput_batch=8)
    # 4 warm-up + 40 timed single texts, then 1 warm-up + 40 // 20 timed batches of 8 (texts cycled)
    assert batch_sizes == [1] * 44 + [8] * 3


def test_latency_restores_training_mode(tokenizer) -> None:
    model = tiny_teacher(layers=1).train()
    measure_latency(model, tokenizer, TINY_TEXTS, **FEW_RUNS)
    assert model.training


@pytest.mark.parametrize(
    ("texts", "settings", "message"),
    [
        ([], {}, "at least one text"),
        (["hi"], {"threads": 0}, "threads must be at least 1, got 0"),
        (["hi"], {"runs": 0}, "runs must be at least 1"),
        (["hi"], {"throughput_batch": 0}, "throughput_batch must be at least 1"),
    ],
)
def test_latency_rejects_settings_it_cannot_measure(tokenizer, texts, settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        measure_latency(tiny_teacher(layers=1), tokenizer, texts, **settings)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory, tokenizer) -> Path:
    return export_onnx(tiny_teacher(layers=1), tokenizer, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_onnx_latency_reports_what_pytorch_latency_reports(tokenizer, onnx_path) -> None:
    expected = measure_latency(tiny_teacher(layers=1), tokenizer, TINY_TEXTS, **FEW_RUNS)
    result = measure_onnx_latency(onnx_path, tokenizer, TINY_TEXTS, **FEW_RUNS)
    assert set(result) == set(expected)
    assert (result["threads"], result["runs"], result["throughput_batch"]) == (1, 20, 8)
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]


def test_onnx_latency_opens_its_session_on_the_given_threads(tokenizer, onnx_path, monkeypatch) -> None:
    threads_seen: list[int] = []

    def recording_session(path: Path, threads: int = 1):
        threads_seen.append(threads)
        return open_session(path, threads=threads)

    monkeypatch.setattr(latency, "open_session", recording_session)
    result = measure_onnx_latency(onnx_path, tokenizer, TINY_TEXTS, threads=2, **FEW_RUNS)
    assert threads_seen == [2]
    assert result["threads"] == 2


def test_onnx_latency_runs_warmup_runs_and_throughput_batches(tokenizer, onnx_path, monkeypatch) -> None:
    batch_sizes: list[int] = []

    class RecordingSession:
        def __init__(self, session) -> None:
            self.session = session

        def get_inputs(self):
            return self.session.get_inputs()

        def run(self, outputs, feed):
            batch_sizes.append(len(feed["input_ids"]))
            return self.session.run(outputs, feed)

    monkeypatch.setattr(latency, "open_session", lambda path, threads: RecordingSession(open_session(path)))
    measure_onnx_latency(onnx_path, tokenizer, TINY_TEXTS[:3], warmup=4, runs=40, throughput_batch=8)
    # the same schedule as the PyTorch models: 4 warm-up + 40 timed single texts, 1 warm-up + 2 timed batches
    assert batch_sizes == [1] * 44 + [8] * 3


def test_onnx_latency_rejects_settings_it_cannot_measure(tokenizer, onnx_path) -> None:
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        measure_onnx_latency(onnx_path, tokenizer, TINY_TEXTS, threads=0)
