"""Every shell and JavaScript example in README.md and docs/*.md runs, as written, against a
real server.

Shell blocks (```sh, ```bash, ```shell, ```console) of one file run in order in one bash with
``set -euo pipefail``, so a block may use what an earlier one of the same file captured. The
environment holds what the README's first session tells a reader to set: ``API`` (this test's
server), and for the pages under docs/ also ``TOKEN`` and ``TENANT`` (the README's own first
block sets those two itself). JavaScript blocks (```js, ```javascript) run in headless Chromium
on a page of the server's origin, as a reader pastes them into the developer console.

A block that cannot run here says so, with a reason, in a marker right before its fence:

    <!-- example: skip — starts a production server -->

An unmarked block that fails, a marker without a reason, and a marker that marks no block all
fail this module.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.database import scratch_database
from tests.support.server import ROOT, ServerProcess

SHELL = frozenset({"sh", "bash", "shell", "console"})
JAVASCRIPT = frozenset({"js", "javascript"})
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
MARKER = re.compile(r"^\s*<!--\s*example:(?P<body>.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\s*[\u2014\u2013:-]\s*(?P<reason>\S.*?)\s*$")  # em or en dash, colon, hyphen
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# What the JavaScript examples of a file print to the console once they have done their work.
CONSOLE_SHOWS = {"README.md": ("accepted", "completed")}


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


class MarkerError(ValueError):
    pass


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def examples(path: Path) -> list[Example]:
    """The fenced shell and JavaScript blocks of a Markdown file, with their skip markers."""
    lines = path.read_text().splitlines()
    found: list[Example] = []
    pending: tuple[int, str | None] | None = None  # a marker's line and reason, awaiting its fence
    index = 0
    while index < len(lines):
        line = lines[index]
        if marker := MARKER.match(line):
            skip = SKIP.match(marker.group("body"))
            if skip is None:
                raise MarkerError(
                    f"{path.name}:{index + 1}: a marker reads '<!-- example: skip — <reason> -->', "
                    f"got {line.strip()!r}"
                )
            pending = (index + 1, skip.group("reason"))
        elif opening := FENCE.match(line):
            fence, lang = opening.group("fence"), opening.group("lang").lower()
            end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith(fence)), len(lines))
            body = lines[index + 1 : end]
            if lang in SHELL | JAVASCRIPT:
                if lang == "console":  # prompts are commands, the rest is output
                    body = [b[2:] for b in body if b.startswith("$ ")]
                reason = pending[1] if pending else None
                found.append(Example(path, index + 1, lang, "\n".join(body) + "\n", reason))
            elif pending:
                raise MarkerError(f"{path.name}:{pending[0]}: marks a ```{lang} block, which never runs")
            pending = None
            index = end
        elif line.strip() and pending:
            raise MarkerError(f"{path.name}:{pending[0]}: the marker must come right before a fence")
        index += 1
    if pending:
        raise MarkerError(f"{path.name}:{pending[0]}: the marker marks no block")
    return found


def runnable(path: Path, langs: frozenset[str]) -> list[Example]:
    return [e for e in examples(path) if e.lang in langs and e.skip_reason is None]


def files_with(langs: frozenset[str]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in documents() if runnable(p, langs)]


# ---- the documents themselves ----------------------------------------------------------------


def test_every_example_runs_or_says_why_not() -> None:
    every = [e for path in documents() for e in examples(path)]  # raises on a bad marker
    skipped = [e for e in every if e.skip_reason is not None]
    assert all(len(e.skip_reason or "") >= 10 for e in skipped), [e.where for e in skipped]
    assert {e.lang for e in every if e.skip_reason is None} >= {"bash", "js"}
    readme = examples(ROOT / "README.md")
    assert any(e.lang == "js" and e.skip_reason is None for e in readme)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<!-- example: skip -->\n```bash\ntrue\n```\n", "a marker reads"),
        ("<!-- example: skip — -->\n```bash\ntrue\n```\n", "a marker reads"),
        ("<!-- example: skip — because -->\n\ntext\n```bash\ntrue\n```\n", "right before a fence"),
        ("<!-- example: skip — because -->\n```json\n{}\n```\n", "never runs"),
        ("<!-- example: skip — because -->\n", "marks no block"),
    ],
    ids=["no reason", "empty reason", "not before its fence", "before a block that never runs", "no block"],
)
def test_a_bad_marker_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(MarkerError, match=problem):
        examples(page)


def test_markers_and_fences_are_read_as_a_reader_sees_them(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- example: skip — runs for an hour -->\n\n```bash\nsleep 3600\n```\n"
        "```console\n$ echo hi\nhi\n```\n```json\n{}\n```\n```js\nconsole.log(1)\n```\n"
    )
    found = examples(page)
    assert [(e.lang, e.code, e.skip_reason) for e in found] == [
        ("bash", "sleep 3600\n", "runs for an hour"),
        ("console", "echo hi\n", None),
        ("js", "console.log(1)\n", None),
    ]


# ---- against a live server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_server(server_url: str, template_url: str) -> Iterator[ServerProcess]:
    """`scriptworks run` as the README starts it: development mode (no tokens configured), worker
    in-process, on a database of its own. Faster than the defaults only where the examples wait:
    the development handlers answer at once and failed commands are retried without backoff (the
    examples poll until the status they expect, so both settings only shorten the wait)."""
    with scratch_database(server_url, template=make_url(template_url).database) as url:
        server = ServerProcess(
            {
                "DATABASE_URL": url,
                "MIGRATE_ON_START": "false",
                "WORKER_ENABLED": "true",
                "WORKER_FAKE_DELAY_MS": "0",
                "WORKER_RETRY_BASE_SECONDS": "0",
                "WORKER_RETRY_MAX_SECONDS": "0",
                "LOG_LEVEL": "WARNING",
            },
            unset=("AUTH_TOKENS", "AUTH_JWT_SECRET", "AUTH_JWT_JWKS", "AUTH_DEV_MODE"),
        ).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.mark.parametrize("document", files_with(SHELL))
def test_shell_examples_run(document: str, docs_server: ServerProcess, tmp_path: Path) -> None:
    blocks = runnable(ROOT / document, SHELL)
    script = ["set -euo pipefail"]
    for block in blocks:
        script += [f"echo '>>> {block.where}' >&2", block.code]
    env = {
        name: value
        for name, value in docs_server.env.items()
        if name not in {"DATABASE_URL", "TOKEN", "TENANT", "API"}
    }
    env["API"] = docs_server.url
    if document != "README.md":  # the README's first block sets them itself
        env |= {"TOKEN": "dev-token", "TENANT": f"docs-{uuid.uuid4().hex[:8]}"}
    path = tmp_path / "examples.sh"
    path.write_text("\n".join(script))
    result = subprocess.run(
        ["bash", str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    failed_at = re.findall(r">>> (\S+)", result.stderr)
    assert result.returncode == 0, (
        f"the example at {failed_at[-1] if failed_at else document} failed "
        f"(exit {result.returncode}):\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-3000:]}"
    )
    assert len(failed_at) == len(blocks)


INSTRUMENT = """
window.__sources = [];
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(...args) { super(...args); window.__sources.push(this); }
};
"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; .ci/run installs it)")
@pytest.mark.parametrize("document", files_with(JAVASCRIPT))
async def test_javascript_examples_run_in_a_browser(document: str, docs_server: ServerProcess) -> None:
    from playwright.async_api import async_playwright

    shown = {label: asyncio.Event() for label in CONSOLE_SHOWS.get(document, ())}
    errors: list[str] = []

    def on_console(text: str) -> None:
        for label, event in shown.items():
            if text.startswith(label):
                event.set()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        try:
            page = await browser.new_page()
            page.on("console", lambda message: on_console(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.add_init_script(INSTRUMENT)
            await page.goto(f"{docs_server.url}/health")
            async with asyncio.timeout(30):
                blocks = runnable(ROOT / document, JAVASCRIPT)
                for block in blocks:
                    try:
                        await page.evaluate(f"async () => {{\n{block.code}\n}}")
                    except Exception as error:
                        raise AssertionError(f"the example at {block.where} failed: {error}") from None
                # Every stream an example opens is open (its ticket worked), and what it prints shows.
                await page.wait_for_function(
                    "window.__sources.every((s) => s.readyState !== 0)", timeout=10_000
                )
                states = await page.evaluate("window.__sources.map((s) => [s.url, s.readyState])")
                assert len(states) == sum(block.code.count("new EventSource(") for block in blocks)
                assert all(state == 1 for _, state in states), f"{document}: streams refused: {states}"
            for label, event in shown.items():
                try:
                    await asyncio.wait_for(event.wait(), timeout=15)
                except TimeoutError:
                    raise AssertionError(f"{document}: the console never showed {label!r}") from None
            await page.evaluate("window.__sources.forEach((s) => s.close())")
        finally:
            await browser.close()
    assert not errors, errors
