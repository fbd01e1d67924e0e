import pytest

from manga_distill_assets.distill.training.schedule import supervised_schedule


def test_a_large_set_trains_its_epoch_cap_and_validates_every_500_steps():
    schedule = supervised_schedule(num_texts=64_000, num_labels=10, batch_size=32, epochs_cap=3)

    assert schedule.steps_per_epoch == 2_000
    assert schedule.max_steps == 6_000
    assert schedule.evaluation_interval == 500
    assert schedule.warmup_steps == 500


def test_a_medium_set_validates_once_an_epoch_and_warms_up_over_a_tenth_of_the_cap():
    schedule = supervised_schedule(num_texts=2_400, num_labels=10, batch_size=32, epochs_cap=4)

    assert schedule.steps_per_epoch == 75
    assert schedule.max_steps == 300
    assert schedule.evaluation_interval == 75
    assert schedule.warmup_steps == 30


def test_many_labels_and_few_texts_raise_the_cap_to_twenty_steps_per_label():
    schedule = supervised_schedule(num_texts=770, num_labels=77, batch_size=32, epochs_cap=10)

    assert schedule.steps_per_epoch == 25
    assert schedule.max_steps == 77 * 20
    assert schedule.max_epochs == pytest.approx(61.6)


def test_a_tiny_set_validates_every_20_steps_rather_than_every_epoch():
    schedule = supervised_schedule(num_texts=100, num_labels=5, batch_size=32, epochs_cap=30)

    assert schedule.steps_per_epoch == 4
    assert schedule.max_steps == 120
    assert schedule.evaluation_interval == 20
    assert schedule.warmup_steps == 12


def test_the_least_steps_per_label_can_be_switched_off():
    schedule = supervised_schedule(770, 77, 32, epochs_cap=1, min_steps_per_label=0)

    assert schedule.max_steps == 25


def test_an_empty_training_set_is_refused():
    with pytest.raises(ValueError, match="0 texts"):
        supervised_schedule(num_texts=0, num_labels=5, batch_size=32, epochs_cap=30)
