"""The deployment files stay true: ``Dockerfile``, ``.dockerignore`` and docs/deploy.md.

What can be proven without a container engine is proven here: the image's command parses
with ``realtalk serve``'s own parser and loads the agents it copies; every path it copies
exists and survives ``.dockerignore``; its ``pip install`` resolves from the package index
(a fresh virtual environment, ``--dry-run``); its health check and the Kubernetes probes
answer 200 on a running server, the autoscaler's metric is one that server exports, and a
serving process never loads PortAudio. The manifests are the fenced ``yaml`` blocks of
docs/deploy.md marked ``tested by`` this module: each has the fields Kubernetes requires
and the pieces fit (labels, ports, names, the drain inside the grace period, timeouts
longer than a session).

Building the image needs a Docker engine. The project's machines have the ``docker``
client but no daemon: there :func:`test_the_image_builds_and_becomes_healthy` is skipped,
with that reason, even under ``CI=true``. That dependency is the machine's, not the
project's; everything else here fails under CI when it cannot run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DOC = ROOT / "docs" / "deploy.md"
WAIT_S = 60.0  # the longest any step here waits for a server


# --- the Dockerfile ------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case: FROM, COPY, RUN...
    args: str  # the rest, continuation lines joined
    line: int


def instructions(text: str) -> list[Instruction]:
    """A Dockerfile's instructions, comments dropped and ``\\`` continuations joined."""
    found: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        words = (pending + line).split(None, 1)
        found.append(Instruction(words[0].upper(), words[1] if len(words) > 1 else "", start))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


DOCKER = instructions(DOCKERFILE.read_text())


def only(name: str) -> Instruction:
    matches = [i for i in DOCKER if i.name == name]
    assert len(matches) == 1, f"Dockerfile: expected one {name}, found {len(matches)}"
    return matches[0]


def exec_form(text: str) -> list[str]:
    """The JSON array of an exec-form ``CMD`` (shell form would run through /bin/sh, which
    does not pass SIGTERM on to the server)."""
    words = json.loads(text)
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), text
    return words


def copies() -> list[tuple[list[str], PurePosixPath]]:
    """Each ``COPY``: its sources (relative to the build context) and its destination in
    the image (absolute: relative destinations resolved against the ``WORKDIR``)."""
    workdir = PurePosixPath("/")
    found = []
    for step in DOCKER:
        if step.name == "WORKDIR":
            workdir = workdir / step.args.strip()
        elif step.name == "COPY":
            words = [w for w in shlex.split(step.args) if not w.startswith("--")]
            *sources, dest = words
            found.append((sources, workdir / dest))
    return found


def image_path_source(path: str) -> Path:
    """The file or directory of this repository that lands at ``path`` in the image."""
    target = PurePosixPath(path)
    for sources, dest in copies():
        for source in sources:
            # ``COPY dir ./dir`` and ``COPY file ./`` (a destination ending in /: into it)
            landing = dest if len(sources) == 1 and not str(dest).endswith("/") else dest / source
            if target == landing or landing in target.parents:
                return ROOT / source / target.relative_to(landing)
    raise AssertionError(f"nothing in the Dockerfile copies {path}")


# --- .dockerignore ------------------------------------------------------------------------


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """``.dockerignore`` as (negated, pattern) rules, in order (the last match wins).

    Docker's syntax: Go's ``filepath.Match`` per path element plus ``**`` for any number
    of elements; a pattern excludes what it matches and everything below it.
    """
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        for part in re.split(r"(\*\*/?|\*|\?)", pattern):
            if part in ("**", "**/"):
                regex += "(?:.*/)?" if part == "**/" else ".*"
            elif part == "*":
                regex += "[^/]*"
            elif part == "?":
                regex += "[^/]"
            else:
                regex += re.escape(part)
        rules.append((negated, re.compile(regex + "(?:/.*)?")))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    result = False
    for negated, pattern in rules:
        if pattern.fullmatch(path):
            result = not negated
    return result


def tracked(source: str) -> list[str]:
    """The files git tracks under ``source`` (the build context a clean checkout has)."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--", source], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return out.split()


# --- docs/deploy.md -----------------------------------------------------------------------


def doc_blocks(info: str) -> list[str]:
    """The page's fenced blocks of an info string that are marked as tested by this module."""
    text = DOC.read_text()
    found = re.findall(r"^<!-- tested by: ([^>]*) -->\n```(\w*)\n(.*?)^```$", text,
                       flags=re.MULTILINE | re.DOTALL)
    return [body for marker, kind, body in found if kind == info and "tests/test_deploy.py" in marker]


def manifests() -> dict[str, dict[str, Any]]:
    """The page's Kubernetes objects by kind (each kind once)."""
    objects: dict[str, dict[str, Any]] = {}
    for block in doc_blocks("yaml"):
        for document in yaml.safe_load_all(block):
            if isinstance(document, dict) and "kind" in document:
                assert document["kind"] not in objects, f"two {document['kind']} objects"
                objects[document["kind"]] = document
    return objects


def adapter_rules() -> list[dict[str, Any]]:
    """The prometheus-adapter rules of the page (the Helm values block)."""
    for block in doc_blocks("yaml"):
        values = yaml.safe_load(block)
        if "rules" in values:
            return list(values["rules"]["custom"])
    raise AssertionError("docs/deploy.md: no prometheus-adapter rules block")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [one] = deployment["spec"]["template"]["spec"]["containers"]
    return dict(one)


def serve_args(argv: list[str]) -> argparse.Namespace:
    """``realtalk serve ...`` parsed by the serve command's own argument parser."""
    from realtalk.cli.serve import add_arguments

    assert argv[:2] == ["realtalk", "serve"], argv
    parser = argparse.ArgumentParser(prog="realtalk serve", exit_on_error=False)
    add_arguments(parser)
    return parser.parse_args(argv[2:])


def dig(data: Any, path: str) -> Any:
    """``data`` at a dotted path (``spec.template.spec``); fails the test naming it."""
    for key in path.split("."):
        assert isinstance(data, dict) and key in data, f"missing {path}"
        data = data[key]
    return data


# --- a running server ---------------------------------------------------------------------


@dataclass
class Server:
    port: int
    imports: Path  # the process's -X importtime log (PYTHONPROFILEIMPORTTIME)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``realtalk serve agents --emulator`` in a process of its own, on a free port, with one
    session per client address (what the X-Forwarded-For test counts)."""
    pytest.importorskip("uvicorn", reason="the serve extra is part of the test extra")
    logs = tmp_path_factory.mktemp("serve")
    imports = logs / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REALTALK_", "OPENAI_"))}
    env.update(PYTHONPROFILEIMPORTTIME="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "realtalk.cli", "serve", str(ROOT / "agents"), "--emulator",
               "--host", "127.0.0.1", "--port", "0", "--max-per-client", "1", "--drain-s", "5"]
    with open(imports, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                   cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue(maxsize=1000)
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        for line in iter(stdout.readline, ""):
            lines.put(line)
        lines.put("")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        try:
            line = lines.get(timeout=WAIT_S)
        except queue.Empty:
            line = ""
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert found, f"realtalk serve did not start: {line!r}\n{imports.read_text()[-2000:]}"
        yield Server(int(found[1]), imports)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        stdout.close()


async def open_caller(port: int, forwarded_for: str, agent: str = "concierge") -> tuple[Any, dict[str, Any]]:
    """A ``realtalk.v1`` WebSocket as if through a proxy for ``forwarded_for``, and its
    ``ready`` or ``refused`` message."""
    from websockets.asyncio.client import connect

    ws = await connect(f"ws://127.0.0.1:{port}/ws?agent={agent}", subprotocols=["realtalk.v1"],  # type: ignore[list-item]
                       additional_headers={"X-Forwarded-For": forwarded_for}, open_timeout=WAIT_S)
    async def first() -> dict[str, Any]:  # session events may come before it
        while True:
            message = await ws.recv()
            data = json.loads(message) if isinstance(message, str) else {}
            if data.get("type") in ("ready", "refused"):
                return dict(data)

    return ws, await asyncio.wait_for(first(), WAIT_S)


# --- the Dockerfile's command, copies and install -----------------------------------------


def test_dockerfile_command_parses_with_the_serve_parser() -> None:
    from realtalk.cli.serve import make_config
    from realtalk.serve.hub import SessionHub

    argv = exec_form(only("CMD").args)
    args = serve_args(argv)
    config = make_config(args, environ={})  # checked as the command checks it
    assert (config.host, config.port, config.log_format) == ("0.0.0.0", 8080, "json")
    assert only("EXPOSE").args.split() == [str(config.port)]
    # The agents directory it names is the one the image copies, and it loads.
    agents = image_path_source(str(config.agents))
    assert agents == ROOT / "agents"
    hub = SessionHub(replace(config, agents=agents))
    assert {"concierge", "billing"} <= set(hub.agents) and hub.default_agent in hub.agents


def test_dockerfile_copies_exist_and_survive_dockerignore() -> None:
    rules = ignore_rules()
    sources = [source for sources, _ in copies() for source in sources]
    assert {"pyproject.toml", "README.md", "core", "agents"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        files = tracked(source)
        assert files, f"Dockerfile copies {source}, which git does not track"
        lost = [f for f in files if ignored(f, rules) and not re.match(r"plugins/[^/]+/tests/", f)]
        assert lost == [], f".dockerignore drops what the Dockerfile copies: {lost[:5]}"
    assert ignored("plugins/realtalk-clock/tests/test_realtalk_clock.py", rules)  # not installed
    # and it does keep the rest of the repository out of the build context
    assert ignored(".git/HEAD", rules) and ignored(".venv/bin/python", rules)
    assert ignored("core/realtalk/__pycache__/x.pyc", rules) and ignored("tests/test_deploy.py", rules)


def test_dockerfile_runs_unprivileged_and_stops_with_sigterm() -> None:
    users = [i for i in DOCKER if i.name == "USER"]
    assert users and users[-1].args.strip() not in ("root", "0", "0:0")
    assert DOCKER.index(users[-1]) > max(DOCKER.index(i) for i in DOCKER if i.name == "RUN"), \
        "the last USER comes after every RUN"
    assert only("STOPSIGNAL").args.strip() == "SIGTERM"
    assert only("FROM").args.split()[0] == "python:3.11-slim"
    # No PortAudio: nothing installs it (the serving process never loads it: tested below).
    assert not any("portaudio" in i.args for i in DOCKER if i.name == "RUN")


def test_dockerfile_pip_install_resolves(tmp_path: Path, venvkit: Any) -> None:
    """The ``RUN pip install`` line, in a build context laid out as the ``COPY`` lines lay
    it out (``.dockerignore`` applied), resolves from the package index (``--dry-run``)."""
    [run] = [i for i in DOCKER if i.name == "RUN" and "pip install" in i.args]
    words = shlex.split(run.args)
    assert words[:2] == ["pip", "install"] and "&&" not in words, run.args
    rules = ignore_rules()
    image = tmp_path / "image"
    for sources, dest in copies():
        for source in sources:
            landing = dest if len(sources) == 1 else dest / source
            for file in tracked(source):
                if not ignored(file, rules):
                    target = image / landing.relative_to("/") / Path(file).relative_to(source)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / file, target)
    workdir = PurePosixPath("/")
    for step in DOCKER[: DOCKER.index(run)]:
        if step.name == "WORKDIR":
            workdir = workdir / step.args.strip()
    venv = tmp_path / "venv"
    venvkit.create(venv, pip=True, timeout=120)
    report = tmp_path / "report.json"
    venvkit.index_step(
        "resolve the Dockerfile's pip install",
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet",
         "--report", str(report), *words[2:]],
        timeout=900, cwd=image / workdir.relative_to("/"), env=venvkit.environment(),
    )
    names = {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
             for item in json.loads(report.read_text())["install"]}
    assert {"realtalk", "realtalk-clock", "starlette", "uvicorn", "prometheus-client"} <= names


def test_the_image_builds_and_becomes_healthy(tmp_path: Path) -> None:
    """With a Docker engine: build the image, run it, wait for its HEALTHCHECK to say
    healthy, stop it with SIGTERM (it drains and exits 0).

    Skipped, even under CI, where no Docker engine runs: the project's machines have the
    client but no daemon. That is the machine's limit, not a missing project dependency.
    """
    docker = shutil.which("docker")
    info = subprocess.run([docker or "docker", "info"], capture_output=True, text=True, timeout=60,
                          check=False) if docker else None
    if info is None or info.returncode != 0:
        detail = "no docker client" if info is None else (info.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"no Docker engine on this machine ({detail}); the image is built only where a"
                    " daemon runs (a limit of the machine, not of the project: docs/deploy.md)")
    assert docker is not None
    tag = f"realtalk-test:{uuid.uuid4().hex[:12]}"
    name = tag.replace(":", "-")
    subprocess.run([docker, "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    try:
        subprocess.run([docker, "run", "-d", "--name", name, "-e", "REALTALK_SERVE_TOKEN=deploy-test",
                        tag, "realtalk", "serve", "/app/agents", "--emulator", "--host", "0.0.0.0",
                        "--port", "8080", "--log-format", "json"], check=True, timeout=120)
        status = ""
        for _ in range(120):  # the health check runs every 15 s after a 20 s start period
            status = subprocess.run([docker, "inspect", "--format", "{{.State.Health.Status}}", name],
                                    capture_output=True, text=True, timeout=30, check=True).stdout.strip()
            if status in ("healthy", "unhealthy"):
                break
            time.sleep(1.0)  # a bounded poll of docker inspect: Docker has no wait for health
        assert status == "healthy"
        subprocess.run([docker, "stop", "-t", "60", name], check=True, timeout=120)
        code = subprocess.run([docker, "inspect", "--format", "{{.State.ExitCode}}", name],
                              capture_output=True, text=True, timeout=30, check=True).stdout.strip()
        assert code == "0"
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, timeout=120, check=False)
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120, check=False)


# --- the running server: health check, probes, metric, PortAudio --------------------------


def test_probe_paths_and_metric_exist_on_a_running_server(server: Server) -> None:
    deployment = manifests()["Deployment"]
    spec = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        get = dig(spec, f"{probe}.httpGet")
        assert ports[get["port"]] == 8080
        assert server.get(get["path"])[0] == 200, probe
    assert (dig(spec, "readinessProbe.httpGet.path"), dig(spec, "livenessProbe.httpGet.path")) == \
        ("/readyz", "/healthz")
    # The Dockerfile's HEALTHCHECK command, run as it is against this server's port.
    check = only("HEALTHCHECK").args
    assert "--interval" in check and " CMD " in f" {check}"
    argv = exec_form(check.split(" CMD ", 1)[1])
    assert "http://127.0.0.1:8080/healthz" in " ".join(argv)
    argv = [sys.executable if argv[0] == "python" else argv[0],
            *(a.replace(":8080/", f":{server.port}/") for a in argv[1:])]
    assert subprocess.run(argv, timeout=30, check=False).returncode == 0
    # Prometheus scrapes the path the pod's annotations name.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    status, text = server.get(annotations["prometheus.io/path"])
    assert status == 200 and re.search(r"^realtalk_active_sessions\{kind=\"browser\"\} 0", text, re.MULTILINE)


async def test_forwarded_for_counts_callers_behind_a_proxy(server: Server) -> None:
    """As docs/deploy.md says: the server trusts X-Forwarded-For from FORWARDED_ALLOW_IPS
    (default: loopback), so ``--max-per-client`` counts the callers behind a proxy, not
    the proxy. Here at most one session per address: two addresses get one each."""
    first, ready = await open_caller(server.port, "203.0.113.7")
    try:
        assert ready["type"] == "ready"
        second, ready2 = await open_caller(server.port, "198.51.100.9")
        try:
            assert ready2["type"] == "ready"
            third, refused = await open_caller(server.port, "203.0.113.7")
            async with third:
                assert (refused["type"], refused["code"], refused["status"]) == \
                    ("refused", "client_capacity", 429)
                await asyncio.wait_for(third.wait_closed(), WAIT_S)
                assert third.close_code == 4429
        finally:
            await second.close()
    finally:
        await first.close()


async def test_serving_never_loads_portaudio(server: Server) -> None:
    """A session through the running server (a typed turn, spoken replies), and the
    process's import log has no ``sounddevice``: the image needs no libportaudio2."""
    ws, ready = await open_caller(server.port, "192.0.2.44")
    async with ws:
        assert ready["type"] == "ready"
        await ws.send(json.dumps({"type": "text", "text": "What time is it in Tokyo?"}))
        kinds: list[str] = []
        audio = 0
        while "user.text" not in kinds or kinds[-1] != "turn.done":  # (after the greeting's)
            message = await asyncio.wait_for(ws.recv(), WAIT_S)
            if isinstance(message, bytes):
                audio += len(message)
            else:
                data = json.loads(message)
                kinds.append(data["event"]["type"] if data["type"] == "event" else data["type"])
        await ws.send(json.dumps({"type": "bye"}))
    assert "assistant.done" in kinds and audio > 0, " ".join(kinds)
    imported = server.imports.read_text()
    assert "realtalk.serve.app" in imported and "websockets" in imported  # the log is complete
    assert "sounddevice" not in imported and "_sounddevice" not in imported


# --- the manifests ------------------------------------------------------------------------

REQUIRED = {  # beyond apiVersion, kind and metadata.name
    "Deployment": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                   "spec.template.spec.containers"],
    "Service": ["spec.selector", "spec.ports"],
    "Ingress": ["spec.rules"],
    "HorizontalPodAutoscaler": ["spec.scaleTargetRef.apiVersion", "spec.scaleTargetRef.kind",
                                "spec.scaleTargetRef.name", "spec.maxReplicas", "spec.metrics"],
}
API_VERSIONS = {"Deployment": "apps/v1", "Service": "v1", "Ingress": "networking.k8s.io/v1",
                "HorizontalPodAutoscaler": "autoscaling/v2"}


def test_kubernetes_objects_have_the_required_fields() -> None:
    objects = manifests()
    assert set(objects) == set(REQUIRED)
    for kind, obj in objects.items():
        assert obj["apiVersion"] == API_VERSIONS[kind], kind
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", dig(obj, "metadata.name")), kind
        for path in REQUIRED[kind]:
            assert dig(obj, path), f"{kind}: empty {path}"
    deployment, service = objects["Deployment"], objects["Service"]
    ingress, hpa = objects["Ingress"], objects["HorizontalPodAutoscaler"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items(), "the Deployment's selector must match its pods"
    assert service["spec"]["selector"].items() <= labels.items(), "the Service selects no pod"
    for one in deployment["spec"]["template"]["spec"]["containers"]:
        assert one["name"] and one["image"] and not one["image"].endswith(":latest")
        for port in one["ports"]:
            assert isinstance(port["containerPort"], int)
    names = {p["name"] for p in container(deployment)["ports"]}
    for port in service["spec"]["ports"]:
        assert isinstance(port["port"], int) and port["targetPort"] in names
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in dig(rule, "http.paths"):
            assert path["pathType"] in ("Prefix", "Exact", "ImplementationSpecific")
            backend = dig(path, "backend.service")
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"].get("name") in service_ports or isinstance(backend["port"].get("number"), int)
    assert ingress["spec"]["tls"], "TLS at the ingress: Twilio connects only to wss://"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == \
        (deployment["apiVersion"], "Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"].get("minReplicas", 1) <= hpa["spec"]["maxReplicas"]


def test_deployment_runs_the_image_command_with_a_drain_that_fits() -> None:
    from realtalk.cli.serve import SHUTDOWN_GRACE_S, make_config

    deployment = manifests()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    spec = container(deployment)
    image_command = exec_form(only("CMD").args)
    assert spec["args"][: len(image_command)] == image_command, "the image's command, then options"
    assert "command" not in spec  # args replace the image's CMD; there is no ENTRYPOINT
    config = make_config(serve_args(spec["args"]), environ={})
    assert config.workers == 1, "one process per pod: the autoscaler counts sessions per pod"
    assert {p["containerPort"] for p in spec["ports"]} == {config.port}
    # SIGTERM comes after the preStop pause; then the drain, then closing what is left.
    pause = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > float(pause[1]) + config.drain_s + SHUTDOWN_GRACE_S, (grace, pause, config.drain_s)
    # Runs as the image's user; the secrets come from a Secret, never from the manifest.
    assert pod["securityContext"]["runAsUser"] == int(only("USER").args.strip())
    assert spec["envFrom"][0]["secretRef"]["name"]
    literal = {e["name"]: e.get("value") for e in spec.get("env", [])}
    assert not {"OPENAI_API_KEY", "REALTALK_SERVE_TOKEN"} & set(literal)
    # The autoscaler's target leaves room under the per-process cap.
    hpa = manifests()["HorizontalPodAutoscaler"]
    [metric] = hpa["spec"]["metrics"]
    assert float(metric["pods"]["target"]["averageValue"]) < config.max_sessions


def test_load_balancer_timeouts_exceed_the_longest_session() -> None:
    deployment, ingress = manifests()["Deployment"], manifests()["Ingress"]
    longest = make_longest(deployment)
    annotations = ingress["metadata"]["annotations"]
    for key in ("proxy-read-timeout", "proxy-send-timeout"):
        assert float(annotations[f"nginx.ingress.kubernetes.io/{key}"]) > longest, key
    [nginx] = doc_blocks("nginx")
    for key in ("proxy_read_timeout", "proxy_send_timeout"):
        found = re.search(rf"^\s*{key}\s+(\d+)s?;", nginx, re.MULTILINE)
        assert found and float(found[1]) > longest, key
    for needed in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                   'proxy_set_header Connection "upgrade";', "proxy_set_header Host $host;",
                   "proxy_set_header X-Forwarded-For"):
        assert needed in nginx, needed


def make_longest(deployment: dict[str, Any]) -> float:
    """The Deployment's ``--max-session-s``: the longest a caller's WebSocket lives."""
    from realtalk.cli.serve import make_config

    return float(make_config(serve_args(container(deployment)["args"]), environ={}).max_session_s)


def test_autoscaler_metric_is_the_one_the_server_exports(server: Server) -> None:
    hpa = manifests()["HorizontalPodAutoscaler"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
    name = metric["pods"]["metric"]["name"]
    assert name == "realtalk_active_sessions"
    [rule] = adapter_rules()
    assert rule["name"]["as"] == name
    assert rule["seriesQuery"].split("{", 1)[0] == name and f"sum({name}{{" in rule["metricsQuery"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    status, text = server.get("/metrics")
    assert status == 200
    assert f"# TYPE {name} gauge" in text


def test_the_page_marks_every_manifest_as_tested_here() -> None:
    """Every yaml and nginx block of the page is one these tests read (no untested manifest)."""
    text = DOC.read_text()
    blocks = re.findall(r"^(.*)\n```(yaml|nginx)\n", text, flags=re.MULTILINE)
    assert len(blocks) == len(doc_blocks("yaml")) + len(doc_blocks("nginx")) == 6
    for marker, _ in blocks:
        names = re.findall(r"tests/test_deploy\.py::(\w+)", marker)
        assert names and all(callable(globals().get(n)) for n in names), marker
