"""The README's curl examples, run as written against the service."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import docker

from ..conftest import Api

ROOT = Path(__file__).resolve().parents[2]


def curl_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it with curl", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_curl_examples_work_as_written(
    api: Api, tmp_path: Path, clean_docker: docker.DockerClient
) -> None:
    script = curl_block().replace("http://127.0.0.1:8000", api.url)
    (tmp_path / ".env").write_text(f"AGENT_API_KEY={api.keys.admin}\n")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo-image.sh", tmp_path / "scripts" / "demo-image.sh")
    had_image = bool(clean_docker.images.list(name="hive/busybox"))
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        if not had_image:
            clean_docker.images.remove("hive/busybox:latest", force=True)
    output = result.stdout
    assert '"name":"researcher"' in output
    assert '"secret_names":["OPENAI_API_KEY"]' in output
    assert "sk-demo" not in output
    assert "sk-rotated" not in output
    assert '"restarted":false' in output  # the resize
    assert '"changes":["env.LOG_LEVEL","secrets.OPENAI_API_KEY"]' in output
    assert '"cpu_percent"' in output
    assert output.count("researching") >= 3  # logs, tail and follow
    assert '"status":"stopped"' in output
    assert re.search(r"[}\n]204\n", output)
    assert re.search(r'\{"status":"ok"[^}]*\}\{"status":"ready","watch":"live"\}', output)
    assert "agent_api_requests_total" in output
    assert "problem" not in output
