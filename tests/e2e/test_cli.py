"""The `reimagine` CLI as a user runs it: separate processes, real ports, exit codes and one-line errors."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "infra" / "reimagine_emulator" / "assets" / "sample.jpg"
CLI = [sys.executable, "-m", "reimagine_emulator.cli"]  # what the `reimagine` script runs


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "functions"), str(ROOT / "infra")])
    env["REIMAGINE_TEMPLATE"] = str(ROOT / "template.yaml")
    return env


def run(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_prints_a_caption_and_writes_the_result_and_the_email(tmp_path: Path):
    done = run("demo", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "each function in its own execution environments" in done.stderr.splitlines()[0]
    assert done.stdout.startswith("caption: ") and "not AI" in done.stdout
    # The template's default asks a new address to confirm: the demo presses the button for its user
    assert "AWAITING_CONFIRMATION" in done.stderr and "confirmed you@example.com for you" in done.stderr
    out = tmp_path / "out"
    with Image.open(out / "result.png") as result:
        assert result.format == "PNG" and result.size[0] > 0
    assert (out / "original.jpg").read_bytes() == SAMPLE.read_bytes()
    mail = (out / "email.eml").read_text()
    assert "To: you@example.com" in mail and "/results/" in mail
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in mail
    assert "Traceback" not in done.stderr


def test_demo_says_what_to_try_next(tmp_path: Path):
    done = run("demo", "--out", "out", cwd=tmp_path)
    # The last line points to the local stack and the page's address
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("next: run `reimagine local up` and open http://127.0.0.1:3000/")
    )


@pytest.fixture
def local_up(tmp_path: Path):
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "local", "up", "--port", str(port), "--outbox", str(tmp_path / "outbox")],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    api = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{api}/openapi.json", timeout=10).status_code == 200:
                break
        except requests.RequestException:  # refused while starting; slow on a busy machine
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the local stack did not come up within 60 s")
    yield api, tmp_path, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_styles_lists_the_choices_and_submit_takes_one(local_up):
    api, cwd, _ = local_up
    # Given the styles the API offers
    listed = run("styles", "--api", api, cwd=cwd)
    assert "ukiyo-e" in listed.stdout and "(default)" in listed.stdout
    # When a photo is sent in one of them, and the new address confirmed by its reader
    submitting = subprocess.Popen(
        [
            *CLI,
            "submit",
            str(SAMPLE),
            "--email",
            "you@example.com",
            "--style",
            "ukiyo-e",
            "--wait",
            "--json",
            "--api",
            api,
        ],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _press_the_confirmation_button(cwd / "outbox")
    stdout, stderr = submitting.communicate(timeout=120)
    # Then the request was painted in it
    assert submitting.returncode == 0, stderr
    assert json.loads(stdout)["style"] == {"id": "ukiyo-e", "name": "Ukiyo-e woodblock"}


def test_an_unknown_style_is_one_line_naming_the_choices(local_up):
    api, cwd, _ = local_up
    done = run("submit", str(SAMPLE), "--email", "you@example.com", "--style", "vaporwave", "--api", api, cwd=cwd)
    assert (done.returncode, done.stderr.strip().splitlines()[-1]) == (
        2,
        "reimagine: the API refused the request: there is no such style; choose one of: illustration, watercolour, "
        "oil-painting, ukiyo-e, pixel-art, pencil-sketch, clay-3d, comic-book",
    )


def _press_the_confirmation_button(outbox: Path, timeout: float = 60) -> None:
    """What the address's reader does: open the confirmation email and press the page's button (POST)."""
    deadline = time.monotonic() + timeout
    while not (mails := sorted(outbox.glob("*.eml"))):
        assert time.monotonic() < deadline, "no confirmation email reached the outbox"
        time.sleep(0.2)
    link = re.search(r"https?://\S+/confirm/\S+", mails[0].read_text())
    assert link is not None and requests.post(link[0], timeout=30).status_code == 200


def test_local_up_then_submit_wait_from_another_process(local_up):
    api, cwd, proc = local_up
    submitting = subprocess.Popen(
        [*CLI, "submit", str(SAMPLE), "--email", "you@example.com", "--wait", "--json", "--api", api],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A new address: submit --wait says to check the inbox and keeps waiting...
    assert submitting.stderr is not None
    progress = []
    while "AWAITING_CONFIRMATION" not in (line := submitting.stderr.readline()):
        assert line, "".join(progress)  # the process ended without saying so
        progress.append(line)
    assert "check your inbox at y***@e***.com and click the link" in line
    # ...until the address's reader presses the button
    _press_the_confirmation_button(cwd / "outbox")
    stdout, rest = submitting.communicate(timeout=120)
    stderr = "".join([*progress, line, rest])
    assert submitting.returncode == 0, stderr
    record = json.loads(stdout)  # --json: stdout holds the record and nothing else
    assert record["status"] == "COMPLETED" and record["caption"]
    image = requests.get(record["result"]["url"], timeout=30)
    assert Image.open(io.BytesIO(image.content)).format == "PNG"
    assert "PENDING_UPLOAD" in stderr  # progress went to stderr

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = run("outbox", "--json", "--dir", str(cwd / "outbox"), cwd=cwd)
        if len(json.loads(listed.stdout)) == 2:
            break
        time.sleep(0.2)
    messages = json.loads(listed.stdout)  # newest first: the result, then the confirmation
    assert [m["to"] for m in messages] == ["you@example.com"] * 2

    status = run("status", record["id"], "--api", api, cwd=cwd)
    assert status.returncode == 0 and "COMPLETED" in status.stdout

    proc.send_signal(signal.SIGTERM)  # a clean stop, as on Ctrl-C
    assert proc.wait(timeout=30) == 0


def test_a_taken_port_is_one_clear_line(local_up):
    api, cwd, _ = local_up
    port = api.rsplit(":", 1)[1]
    done = run("local", "up", "--port", port, cwd=cwd)
    assert done.returncode == 2
    assert done.stderr.strip() == f"reimagine: port {port} on 127.0.0.1 is already in use; choose another with --port"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.jpg", "no such file"),
        (lambda d: (d / "notes.png").write_text("hello") and d / "notes.png", "is not an image"),
    ],
)
def test_bad_files_are_one_clear_line(tmp_path: Path, make, expected):
    path = make(tmp_path)
    done = run("submit", str(path), "--email", "you@example.com", "--api", "http://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in done.stderr


def test_an_unreachable_api_is_one_clear_line(tmp_path: Path):
    port = _free_port()
    done = run("status", "3f1c2a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f", "--api", f"http://127.0.0.1:{port}", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"reimagine: cannot reach the API at http://127.0.0.1:{port} (is `reimagine local up` running?)"
    )


def test_local_up_refuses_an_unknown_parameter_override_in_one_line(tmp_path: Path):
    done = run("local", "up", "--port", str(_free_port()), "--parameter-overrides", "NoSuchParameter=1", cwd=tmp_path)
    assert (done.returncode, done.stderr.strip().splitlines()) == (
        2,
        ["reimagine: unknown parameters: NoSuchParameter"],
    )


def test_demo_in_process_runs_every_function_in_the_cli_process(tmp_path: Path):
    # When the demo runs with --in-process (every function in one process, as a debugger wants)
    done = run("demo", "--out", "out", "--in-process", cwd=tmp_path)
    # Then it says so and ends as the default demo does
    assert done.returncode == 0, done.stderr
    assert "every function in this process" in done.stderr.splitlines()[0]
    assert done.stdout.startswith("caption: ") and (tmp_path / "out" / "result.png").exists()
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["submit", "demo"])
def test_a_picture_with_too_many_pixels_is_one_clear_line(tmp_path: Path, command: str):
    # Given a 388-byte PNG whose header says 20000x20000 (Pillow refuses it as a decompression bomb)
    from tests.fixtures.images import bomb_png

    (tmp_path / "huge.png").write_bytes(bomb_png(20_000, 20_000))
    # When it is submitted, or run through the demo
    extra = ["--email", "you@example.com", "--api", "http://127.0.0.1:9"] if command == "submit" else []
    done = run(command, "huge.png", *extra, cwd=tmp_path)
    # Then the CLI says so in one line and exits 2, before any stack or API is involved
    assert (done.returncode, done.stderr.strip().splitlines()) == (
        2,
        ["reimagine: huge.png has far too many pixels to be accepted; send a smaller image"],
    )
