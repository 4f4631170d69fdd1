"""Voice control through a real daemon on a private bus: espeak-ng speech replayed as the microphone.

"New line." said alone is announced as a command (SegmentCommand just before its SegmentRefined); the same
words inside a sentence stay text; "Delete that." targets the segment before it; replacements change the
refined text; "Stop listening." stops the daemon itself; listenctl lists the phrases and edits the vocabulary.
"""

from __future__ import annotations

import asyncio
import json
import time

from dbus_next import MessageType

from listend.commands import normalise
from listend.vocabulary import MAX_WORDS
from tests.support.audio import concat, silence, speak
from tests.support.bus import BusClient, ctl, daemon_env
from tests.support.processes import BIN
from tests.support.waiting import wait_until

CONFIG = """
[replacements]
"my email" = "me@example.org"

[commands]
disabled = ["colon"]
"""


def test_commands_replacements_and_stop_listening_on_the_bus(start_daemon, private_bus, tmp_path, audio_dir, spawn):
    gap = silence(audio_dir / "command-gap.wav", 1.6)
    parts = [
        speak(audio_dir / "c-email.wav", "Please send the quarterly report to my email."),
        speak(audio_dir / "c-newline.wav", "New line."),
        speak(audio_dir / "c-products.wav", "We will launch a new line of products next year."),
        speak(audio_dir / "c-scratch.wav", "Delete that.", speed=130),
        speak(audio_dir / "c-stop.wav", "Stop listening."),
        speak(audio_dir / "c-after.wav", "The weather today is sunny with a light breeze."),
    ]
    interleaved = [silence(audio_dir / "command-lead.wav", 0.5)]
    for part in parts:
        interleaved += [part, gap]
    wav = concat(audio_dir / "commands.wav", *interleaved)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    state = tmp_path / "state"
    (state / "listend" / "history").mkdir(parents=True)
    (state / "listend" / "history" / time.strftime("%Y-%m-%d.jsonl")).write_text(
        json.dumps({"id": 1, "start": time.time() - 60, "end": time.time() - 59, "text": "Said before."}) + "\n"
    )
    env = daemon_env(private_bus, state)
    start_daemon("--config", str(config), "--source", str(wav), env=env)
    # A follower prints what comes as it comes: subscribed once it printed the segment said before.
    spawn([str(BIN / "listenctl"), "transcript", "--follow", "--last", "1"], env=env, log="follower")
    follower = tmp_path / "follower.log"
    wait_until(lambda: "Said before." in follower.read_text(), 60, "the follower to subscribe")

    async def scenario():
        async with BusClient(private_bus.address) as c:
            await c.call("Start")
            # "Stop listening." stops the daemon: idle comes before the file ends.
            await c.wait_for(
                lambda: (
                    c.states()[-1:] == ["idle"]
                    and any(m.body[1] == "stop_listening" for m in c.named("SegmentCommand"))
                ),
                timeout=240,
            )
            await asyncio.sleep(1.0)  # anything still sent after idle would show here
            return c.signals, (await c.call("GetCommands", "tu", [0, 0])).body[0]

    signals, history_commands = asyncio.run(scenario())
    members = [(m.member, m.body) for m in signals if m.member in ("SegmentCommand", "SegmentRefined")]
    refined = {body[0]: body[3] for member, body in members if member == "SegmentRefined"}
    commands = {body[0]: (body[1], body[2], body[3]) for member, body in members if member == "SegmentCommand"}
    shown = "\n".join(f"{i}: {refined[i]!r} {commands.get(i, '')}" for i in sorted(refined))

    # Every command comes immediately before the SegmentRefined of its id, whose text is the words as said.
    for index, (member, body) in enumerate(members):
        if member == "SegmentCommand":
            assert members[index + 1] == ("SegmentRefined", members[index + 1][1]), shown
            assert members[index + 1][1][0] == body[0] and members[index + 1][1][3] == body[3], shown

    by_text = {normalise(text): i for i, text in refined.items()}
    email = next((i for i, text in refined.items() if "quarterly" in text.lower()), 0)
    products = next((i for i, text in refined.items() if "launch" in text.lower()), 0)
    assert email and products, shown
    assert "me@example.org" in refined[email] and "my email" not in refined[email].lower(), shown
    assert email not in commands, shown
    assert commands.get(by_text.get("new line", -1), ("",))[0] == "new_line", shown
    assert products not in commands, shown  # "a new line of products" is text
    scratch = by_text.get("delete that", -1)
    assert commands.get(scratch, ("", 0))[:2] == ("scratch_that", products), shown  # skips no text, acts on it
    assert not any("weather" in text.lower() for text in refined.values()), shown  # it stopped listening
    assert [tuple(row) for row in history_commands] == [(i, a, t) for i, (a, t, _) in sorted(commands.items())]

    # listenctl shows commands as commands, and copies the session as meant.
    transcript = ctl(env, "transcript")
    assert transcript.returncode == 0, transcript.stderr
    assert "\t[new line]" in transcript.stdout and f"\t[scratch that] #{products}" in transcript.stdout
    as_json = [json.loads(line) for line in ctl(env, "transcript", "--json").stdout.splitlines()]
    assert {r["id"]: r.get("command", "") for r in as_json}[scratch] == "scratch_that"

    wait_until(lambda: "[stop listening]" in follower.read_text(), 60, "the follower to print the last command")
    followed = [line.split("\t", 2)[::2] for line in follower.read_text().splitlines()]
    assert [str(products), refined[products]] in followed, followed  # text inside a sentence stays text
    assert [str(by_text["new line"]), "[new line]"] in followed, followed
    assert [str(scratch), f"[scratch that] #{products}"] in followed, followed
    assert [str(email), refined[email]] in followed, followed

    listed = ctl(env, "commands")
    assert listed.returncode == 0, listed.stderr
    assert "new line\t[new line]" in listed.stdout and "scratch that\t[scratch that]" in listed.stdout
    assert "\t[colon]" not in listed.stdout and "off: colon" in listed.stdout
    table = json.loads(ctl(env, "commands", "--json").stdout)
    assert table["phrases"]["scratch_that"] == ["scratch that", "delete that"] and table["off"] == ["colon"]


def test_vocabulary_is_listed_added_and_removed_over_the_bus(start_daemon, private_bus, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[vocabulary]\nwords = ["Anneliese"]\n')
    state = tmp_path / "state"
    env = daemon_env(private_bus, state)
    start_daemon("--config", str(config), env=env)

    assert ctl(env, "vocabulary", "list").stdout.splitlines() == ["Anneliese"]
    added = ctl(env, "vocabulary", "add", "Kubernetes", "Okonkwo Adaeze")
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == ["Anneliese", "Kubernetes", "Okonkwo Adaeze"]
    kept = json.loads((state / "listend" / "vocabulary.json").read_text())
    assert kept == {"words": ["Kubernetes", "Okonkwo Adaeze"]}  # the config file is never written
    assert config.read_text() == '[vocabulary]\nwords = ["Anneliese"]\n'
    for bad, says in [("", "empty"), ("x" * 65, "at most 64"), ("anneliese", "in the config")]:
        result = ctl(env, "vocabulary", "add" if bad != "anneliese" else "remove", bad)
        assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr, result
    assert ctl(env, "vocabulary", "remove", "kubernetes").stdout.splitlines() == ["Anneliese", "Okonkwo Adaeze"]
    missing = ctl(env, "vocabulary", "remove", "Kubernetes")
    assert missing.returncode == 2 and "not in the vocabulary" in missing.stderr
    usage = ctl(env, "vocabulary", "add")
    assert usage.returncode == 2 and "one or more WORD" in usage.stderr

    async def over_the_bus():
        async with BusClient(private_bus.address) as c:
            for bad in ("", " \t ", "y" * 65, "a\x01b"):
                reply = await c.call("AddVocabulary", "s", [bad])
                assert reply.error_name == "io.github.listend.Error.InvalidArgs", (bad, reply.body)
            for i in range(MAX_WORDS - 2):  # two are there: the config's word and one added
                reply = await c.call("AddVocabulary", "s", [f"Name{i}"])
                assert reply.message_type == MessageType.METHOD_RETURN, reply.body
            full = await c.call("AddVocabulary", "s", ["OneTooMany"])
            assert full.error_name == "io.github.listend.Error.InvalidArgs" and "full" in full.body[0]
            assert len(await c.prop("Vocabulary")) == MAX_WORDS
            changed = [m.body[1] for m in c.named("PropertiesChanged") if "Vocabulary" in m.body[1]]
            assert len(changed) == MAX_WORDS - 2 and changed[-1]["Vocabulary"].value[-1] == f"Name{MAX_WORDS - 3}"

    asyncio.run(over_the_bus())


def test_a_profile_s_own_vocabulary_takes_over_at_a_switch(start_daemon, private_bus, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[vocabulary]\nwords = ["Anneliese"]\n[lightweight.vocabulary]\nwords = ["Xiaoyu"]\n')
    env = daemon_env(private_bus, tmp_path / "state")
    start_daemon("--config", str(config), env=env)
    assert ctl(env, "vocabulary", "add", "Okonkwo").stdout.splitlines() == ["Anneliese", "Okonkwo"]
    switched = ctl(env, "profile", "lightweight", timeout=180)
    assert switched.returncode == 0, switched.stderr
    # The profile's words replace the config's; the words added at run time stay.
    assert ctl(env, "vocabulary", "list").stdout.splitlines() == ["Xiaoyu", "Okonkwo"]
