"""Billed SMS segments: mainland 70/67 per character, international GSM-7 160/153 or UCS-2 70/67."""

from __future__ import annotations

import pytest

from plugins.sms.segments import count_segments, gsm7_length, signed_text, ucs2_length


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 1), (1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (160, 3), (201, 3), (202, 4), (500, 8)],
)
def test_mainland_counts_every_character_as_one_70_then_67_per_part(length, segments):
    assert count_segments("中" * length) == segments
    assert count_segments("a" * length) == segments  # Latin counts the same on the mainland


def test_mainland_example_of_the_doc_160_characters_are_three_parts():
    assert count_segments("x" * 160, domestic=True) == 3  # 67 + 67 + 26


def test_mainland_count_includes_the_signature_in_brackets():
    text = signed_text("阿里云", "a" * 65)
    assert text == "【阿里云】" + "a" * 65 and len(text) == 70
    assert count_segments(text) == 1
    assert count_segments(signed_text("阿里云", "a" * 66)) == 2


@pytest.mark.parametrize(
    ("text", "segments"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("@£$¥" * 40, 1)],
)
def test_international_gsm7_is_160_then_153_per_part(text, segments):
    assert count_segments(text, domestic=False) == segments


def test_international_extension_characters_count_two():
    assert gsm7_length("€[]") == 6
    assert count_segments("€" * 80, domestic=False) == 1
    assert count_segments("€" * 81, domestic=False) == 2  # 162 septets


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_international_non_gsm_text_is_ucs2_70_then_67(length, segments):
    assert count_segments("ê" * length, domestic=False) == segments  # ê is not in GSM 03.38


def test_one_non_gsm_character_switches_the_whole_text_to_ucs2():
    assert count_segments("a" * 100, domestic=False) == 1
    assert count_segments("a" * 99 + "中", domestic=False) == 2


def test_emoji_takes_two_ucs2_units():
    assert ucs2_length("😀") == 2
    assert count_segments("😀" * 35, domestic=False) == 1
    assert count_segments("😀" * 36, domestic=False) == 2
