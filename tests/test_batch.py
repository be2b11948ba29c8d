"""``support-agent batch`` on one Ray instance for the session: archives of spoken recordings (some
corrupt) and messages, compared row by row with the single-item commands; a worker killed mid-run; a
run killed and resumed. Listing, grouping and the output store are tested without Ray."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agent.types import AgentError
from channels import archive, audio, email, rows
from channels.results import Results
from conftest import CARD_REQUEST, CLI, cli_environment, one_line_error, run_cli
from test_mailbox import ANNA, NESTED, QUOTED, mail, write_mbox

SENTENCES = ["How do I change my address?", "I was charged twice for my coffee.", "Please close my account.",
             "Where can I see my statement?", "My transfer is still pending.", "My card has not arrived yet.",
             "I want to cancel a transfer.", "Can I get a refund for this payment?"]
MESSAGES = ["My card still has not arrived, it has been two weeks.", "How do I top up by bank transfer?",
            "I think someone stole my card details, there are payments I did not make!",
            "what is the weather like on mars"]
TINY = ["--set", "asr_model=tiny.en"]


@pytest.fixture(scope="session")
def ray_address():
    """One Ray instance for the session, which every batch command here joins with --address."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _system_config={"worker_niceness": 0})  # as support-agent batch starts its own (channels/batch.py)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def recordings(piper, tmp_path_factory):
    """Short spoken clips, a 40 s recording, and files that are not usable audio."""
    folder = tmp_path_factory.mktemp("recordings")
    spoken = {s: audio.resample(piper.synthesize(s), piper.sample_rate, audio.SAMPLE_RATE) for s in SENTENCES}
    for i, s in enumerate(SENTENCES):
        audio.write_wav(folder / f"clip{i}.wav", spoken[s], audio.SAMPLE_RATE)
    pause = np.zeros(audio.SAMPLE_RATE // 2, np.float32)
    audio.encode(folder / "long.mp3", np.concatenate([np.concatenate([spoken[s], pause]) for s in SENTENCES * 2]),
                 audio.SAMPLE_RATE)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.ogg").write_text("not audio\n" * 50)
    audio.write_wav(folder / "header_only.wav", np.zeros(0, np.float32), audio.SAMPLE_RATE)
    (folder / ".hidden.wav").write_bytes(b"left out: hidden")
    return folder


def batch(address, *args, env=None, timeout=600):
    return run_cli(*TINY, "batch", *args, "--address", address, env=env, timeout=timeout)


def read_rows(out) -> list[dict]:
    return pq.read_table(out).to_pylist()  # the folder, as a reader of the results opens it


def same_fields(expected: dict, row: dict, ignore=("seconds", "timings")) -> list[str]:
    """The fields of a command's output that the batch row does not repeat exactly."""
    return [k for k in expected if k not in ignore and expected[k] != row.get(k)]


def cli_lines(proc) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


# Against the single-item commands -------------------------------------------------------------------------

def test_a_recording_archive_gives_the_transcripts_of_the_command(ray_address, recordings, tmp_path, cli_env):
    out, jsonl = tmp_path / "out", tmp_path / "rows.jsonl"
    proc = batch(ray_address, "transcribe", str(recordings), "--out", str(out), "--jsonl", str(jsonl), env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["items"] == summary["processed"] == 12 and summary["failures"] == 3
    assert summary["items_per_s"] > 0 and summary["audio_hours_per_s"] > 0
    assert "batch transcribe: 12 items, 12 processed (0 already done), 3 failed" in proc.stderr.decode()

    files = sorted(str(p) for p in recordings.iterdir() if not p.name.startswith("."))
    command = run_cli(*TINY, "transcribe", *files, env=cli_env)
    expected = cli_lines(command)
    got = read_rows(out)
    assert [r["source"] for r in got] == files  # every item once, in input order
    for e, r in zip(expected, got):
        assert not same_fields(e, r), (e["file"], same_fields(e, r))
        assert (r["error"] is None) == ("error" not in e)
    errors = {r["source"].rsplit("/", 1)[1]: r["error"] for r in got if r["error"]}
    assert set(errors) == {"empty.wav", "notes.ogg", "header_only.wav"} and "empty file" in errors["empty.wav"]
    assert [json.loads(line)["source"] for line in jsonl.read_text().splitlines()] == files
    texts = {r["source"].rsplit("/", 1)[1]: r["text"] for r in got}
    assert all(texts[f"clip{i}.wav"] for i in range(len(SENTENCES))) and len(texts["long.mp3"].split()) > 50


def test_message_archives_give_what_classify_and_reply_print(ray_address, tmp_path, cli_env):
    folder = tmp_path / "in"
    folder.mkdir()
    with open(folder / "chat.csv", "w") as f:
        f.write("id,text\n1,\"" + MESSAGES[0] + "\"\n2,\n3," + MESSAGES[1] + "\n")
    (folder / "chat.jsonl").write_text("".join(json.dumps({"text": m}) + "\n" for m in MESSAGES[2:]))
    pq.write_table(pa.table({"text": [CARD_REQUEST]}), folder / "more.parquet")
    write_mbox(folder / "support.mbox", [mail("John Doe <john@example.com>", "Card", QUOTED, "<c1@example.com>"),
                                         ANNA, NESTED])
    out = tmp_path / "classified"
    proc = batch(ray_address, "classify", str(folder), "--out", str(out), env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    got = {r["source"].rsplit("/", 1)[1]: r for r in read_rows(out)}
    assert set(got) == {"chat.csv:1", "chat.csv:2", "chat.csv:3", "chat.jsonl:1", "chat.jsonl:2", "more.parquet:1",
                        "support.mbox:1", "support.mbox:2", "support.mbox:3"}
    assert got["chat.csv:2"]["error"] == "no text in this message"
    assert "broken MIME structure" in got["support.mbox:3"]["error"]
    # The messages as classify takes them: emails read as the email channel reads them.
    order = ["chat.csv:1", "chat.csv:3", "chat.jsonl:1", "chat.jsonl:2", "more.parquet:1", "support.mbox:1",
             "support.mbox:2"]
    texts = [got[s]["text"] for s in order]
    assert texts[-1] == email.to_message(email.parse(ANNA)).text
    expected = cli_lines(run_cli("classify", *texts, env=cli_env))
    for source, e in zip(order, expected):
        assert got[source]["error"] is None and not same_fields(e, got[source]), source

    replies = tmp_path / "replies"
    proc = batch(ray_address, "reply", str(folder / "chat.jsonl"), str(folder / "support.mbox"), "--out", str(replies),
                 env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    got = {r["source"].rsplit("/", 1)[1]: r for r in read_rows(replies)}
    # reply's own "source" (the drafter) is "reply_source" in a row, whose "source" is where the item came from.
    text_reply = cli_lines(run_cli("reply", MESSAGES[2], env=cli_env))[0]
    email_reply = cli_lines(run_cli("reply", "-", stdin=ANNA, env=cli_env))[0]
    for expected, row in ((text_reply, got["chat.jsonl:1"]), (email_reply, got["support.mbox:2"])):
        expected["reply_source"] = expected.pop("source")
        assert not same_fields(expected, row) and row["reply_source"] == "composer"
    assert got["support.mbox:2"]["channel"] == "email" and got["support.mbox:3"]["error"]


def test_a_call_archive_gives_what_call_prints(ray_address, spoken_request, tmp_path, cli_env):
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "request.wav").write_bytes(spoken_request.read_bytes())
    (calls / "broken.mp3").write_bytes(b"ID3" + bytes(500))
    out = tmp_path / "out"
    proc = batch(ray_address, "call", str(calls), "--out", str(out), "--speak", str(tmp_path / "spoken"), env=cli_env)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    got = {r["source"].rsplit("/", 1)[1]: r for r in read_rows(out)}
    assert got["broken.mp3"]["error"] and got["request.wav"]["error"] is None
    command = cli_lines(run_cli(*TINY, "call", str(calls / "request.wav"), "--out", str(tmp_path / "r.wav"), env=cli_env))
    assert not same_fields(command[0], got["request.wav"], ignore=("timings", "audio"))
    spoken = audio.decode(got["request.wav"]["audio"])
    assert got["request.wav"]["audio"] == str(tmp_path / "spoken" / f"{got['request.wav']['key']}.wav")
    assert spoken.size > 16000


# Failures mid-run ------------------------------------------------------------------------------------------

def worker_pids() -> set[int]:
    """The batch workers' processes, among this test session's own descendants (Ray names them)."""
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)
            if "MapWorker(MapBatches(Worker))" in " ".join(_cmdline(p))}


def _cmdline(process) -> list[str]:
    try:
        return process.cmdline()
    except Exception:  # gone meanwhile
        return []


def start_batch(address, *args, env):
    return subprocess.Popen([*CLI, *TINY, "batch", *args, "--address", address], env=cli_environment(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(condition, proc, timeout=300):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_a_worker_killed_mid_run_is_restarted_and_nothing_is_lost(ray_address, recordings, tmp_path, cli_env):
    """Each clip in its own window (--no-pack), so the run has many units; one worker is killed while
    the run goes on. Ray restarts it and gives its unit again: every item once, none failed."""
    out = tmp_path / "out"
    clips = sorted(str(p) for p in recordings.glob("clip*.wav")) + [str(recordings / "long.mp3")]
    proc = start_batch(ray_address, "transcribe", *clips, *clips[:2], "--no-pack", "--out", str(out), env=cli_env)
    wait_for(lambda: len(worker_pids()) == 2 and any(out.glob(".parts/part-*")), proc)
    victim = sorted(worker_pids())[0]
    os.kill(victim, signal.SIGKILL)
    running_when_killed = proc.poll() is None
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert running_when_killed and victim not in worker_pids()
    got = read_rows(out)
    assert sorted(r["source"] for r in got) == clips and all(r["error"] is None and r["text"] for r in got)
    assert json.loads(stdout)["processed"] == len(clips)


def test_a_run_killed_at_a_random_point_resumes_without_repeating_work(ray_address, recordings, tmp_path, cli_env):
    out = tmp_path / "out"
    # The 40 s recording keeps the run going past the random kill: short clips alone could all be done by then.
    clips = sorted(str(p) for p in recordings.glob("clip*.wav")) + [str(recordings / "long.mp3")]
    args = ["transcribe", *clips, "--no-pack", "--out", str(out)]
    proc = start_batch(ray_address, *args, env=cli_env)
    wait_for(lambda: any(out.glob(".parts/part-*")), proc)
    time.sleep(random.uniform(0, 2))
    proc.send_signal(signal.SIGKILL)  # the driver: no chance to finish anything
    proc.wait()
    before = [r for part in out.glob(".parts/part-*.parquet") for r in pq.read_table(part).to_pylist()]
    assert before and not (out / "results.parquet").exists()

    again = batch(ray_address, *args, env=cli_env)
    assert "already holds the results" in one_line_error(again)
    resumed = batch(ray_address, *args, "--resume", env=cli_env)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    summary = json.loads(resumed.stdout)
    assert summary["already_done"] == len(before) and summary["processed"] == len(clips) - len(before)
    got = read_rows(out)
    assert [r["source"] for r in got] == clips and all(r["error"] is None for r in got)
    kept = {r["source"]: r for r in got}
    assert all(kept[r["source"]]["seconds"] == r["seconds"] for r in before)  # written once, not redone
    assert not list(out.glob(".parts/*"))
    finished = batch(ray_address, *args, "--resume", env=cli_env)
    assert json.loads(finished.stdout)["processed"] == 0 and read_rows(out) == got


# Bad input --------------------------------------------------------------------------------------------------

def test_unusable_inputs_are_one_line_errors(tmp_path):
    missing = run_cli("batch", "classify", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"))
    assert "nothing: no such file or folder" in one_line_error(missing)
    (tmp_path / "m.csv").write_text("name\nx\n")
    assert "a manifest of recordings needs a 'path' column" in one_line_error(
        run_cli("batch", "transcribe", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o")))
    assert "no file matches" in one_line_error(
        run_cli("batch", "transcribe", str(tmp_path / "*.wav"), "--out", str(tmp_path / "o")))
    assert "--cpus-per-worker 1 or more" in one_line_error(
        run_cli("batch", "classify", "x", "--out", str(tmp_path / "o"), "--cpus-per-worker", "0"))


# Without Ray --------------------------------------------------------------------------------------------------

def test_groups_are_runs_of_short_clips_and_each_longer_recording_alone(monkeypatch):
    monkeypatch.setattr(rows, "GROUP", 3)
    items = [("a", True), ("b", True), ("L", False), ("c", True), ("d", True), ("e", True), ("f", True), ("M", False)]
    assert [[i for i, _ in g] for g in rows.groups(items)] == [["a", "b"], ["L"], ["c", "d", "e"], ["f"], ["M"]]


def test_manifests_and_mail_are_listed_with_their_sources(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.wav").write_bytes(b"a")
    (tmp_path / "list.jsonl").write_text('{"path": "sub/a.wav"}\n{"path": "/elsewhere/b.wav"}\n')
    pq.write_table(pa.table({"path": ["sub/a.wav"]}), tmp_path / "list.parquet")
    found = archive.recordings([str(tmp_path / "list.jsonl"), str(tmp_path / "list.parquet")])
    assert [i.source for i in found] == [str(tmp_path / "sub" / "a.wav"), "/elsewhere/b.wav", str(tmp_path / "sub" / "a.wav")]
    assert found[0].key == found[2].key != found[1].key
    (tmp_path / "lines.txt").write_text("first message\n\n second one \n")
    write_mbox(tmp_path / "box", [ANNA, mail("P <p@example.org>", "PIN", "How do I change my PIN?", "<p@x>")])
    messages = archive.messages([str(tmp_path / "lines.txt"), str(tmp_path / "box")])
    assert [m.source.rsplit("/", 1)[1] for m in messages] == ["lines.txt:1", "lines.txt:3", "box:1", "box:2"]
    assert messages[2].text.startswith("From: \"Smith, Anna\"")
    with pytest.raises(AgentError, match="needs a 'text' or a 'path' column"):
        (tmp_path / "bad.csv").write_text("body\nhello\n")
        archive.messages([str(tmp_path / "bad.csv")])


def test_results_keep_each_item_once_in_input_order(tmp_path):
    store = Results(tmp_path, resume=False)
    store.add([{"source": "b", "key": "2", "error": None, "text": "bee", "score": 1}])
    store.flush()
    store.add([{"source": "a", "key": "1", "error": "broken"}, {"source": "c", "key": "old", "error": None}])
    (tmp_path / ".parts" / ".part-x.parquet.tmp").write_bytes(b"half a file")  # a killed run's
    store.flush()
    again = Results(tmp_path, resume=True)
    assert again.done == {("b", "2"), ("a", "1"), ("c", "old")}
    assert not list((tmp_path / ".parts").glob("*.tmp"))
    again.add([{"source": "b", "key": "2", "error": None, "text": "bee", "score": 1.5}])  # a crash's repeat
    path = again.finish({"a": "1", "b": "2", "c": "new"})
    got = pq.read_table(path).to_pylist()
    assert [(r["source"], r["error"], r["score"]) for r in got] == [("a", "broken", None), ("b", None, 1.0)]
    assert not list((tmp_path / ".parts").iterdir()) and pq.read_table(tmp_path).num_rows == 2
