"""Call-result pushes (VoiceReport, RobotCallReportAiccs, VoiceReportAiccs) become receipts."""

from __future__ import annotations

import datetime as dt

from plugins.outbound.results import receipts_from


def voice_report(**fields: str) -> dict:
    report = {
        "status_code": "200000",
        "smart_status_code": "ANSWERED",
        "callee": "13900000000",
        "duration": "49",
        "end_time": "2023-03-13 14:43:11",
        "call_id": "116012354148^10281378",
        "out_id": "ALICOM_SMART_SAAS^134523^2222222",
        "status_msg": "执行完成",
    }
    report.update(fields)
    return report


def test_answered_robot_task_is_delivered_under_its_task_id_at_beijing_time():
    [receipt] = receipts_from([voice_report()])
    assert receipt.provider_id == "134523" and receipt.delivered and receipt.reason is None
    assert receipt.code == "200000"
    assert receipt.at == dt.datetime(2023, 3, 13, 6, 43, 11, tzinfo=dt.UTC)
    assert receipt.detail["report"]["callee"] == "13900000000"


def test_unanswered_calls_are_undelivered_with_the_meaning_of_the_status():
    busy, off = receipts_from(
        [
            voice_report(status_code="200002", smart_status_code="USER_BUSY", duration="0"),
            voice_report(status_code="200010", smart_status_code="", duration="0"),
        ]
    )
    assert not busy.delivered and busy.code == "200002" and busy.reason == "busy (USER_BUSY)"
    assert not off.delivered and off.reason == "powered off"


def test_ended_call_counts_as_answered_only_with_a_duration():
    talked, silent = receipts_from(
        [
            voice_report(status_code="200100", smart_status_code="", duration="12"),
            voice_report(status_code="200100", smart_status_code="", duration="0"),
        ]
    )
    assert talked.delivered and not silent.delivered


def test_progress_reports_and_foreign_reports_are_skipped():
    assert (
        receipts_from(
            [
                voice_report(status_code="200201", smart_status_code=""),  # ringing
                voice_report(out_id="msg-42", call_id=""),  # a notification call's report
                {"unrelated": True},
            ]
        )
        == []
    )


def test_aiccs_robot_call_report_is_matched_by_call_id():
    report = {
        "callId": "1264306001^113219835001",
        "data": {
            "output": {"tags": "tag1"},
            "info": {"duration": 9, "calledNo": "15000000000", "code": 200000, "endTime": 0},
        },
        "robotId": "1000003001",
        "type": "finish",
    }
    unanswered = {**report, "callId": "1^2", "data": {"info": {"code": 200003, "duration": 0}}}
    answered, missed = receipts_from([report, unanswered])
    assert answered.provider_id == "1264306001^113219835001" and answered.delivered
    assert answered.at == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert missed.provider_id == "1^2" and not missed.delivered
    assert missed.reason == "rang, not answered"


def test_aiccs_voice_report_is_matched_by_call_id():
    [receipt] = receipts_from(
        [
            {
                "status_code": "200003",
                "callee": "13000000000",
                "duration": "0",
                "call_id": "122628733198^10942206",
                "out_id": "123456",
                "end_time": "2021-04-28 10:03:40",
            }
        ]
    )
    assert receipt.provider_id == "122628733198^10942206" and not receipt.delivered
