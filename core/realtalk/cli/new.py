"""``realtalk new plugin NAME`` and ``realtalk new agent NAME``: a project to start from.

The files are written from the templates in ``realtalk/templates/`` (package data), with
``{{placeholders}}`` replaced. A plugin is a distribution ``realtalk-NAME`` whose wheel
carries every file of its package (hatchling builds it), with a typed tool
(``@realtalk.tool``) and tests that use the testing kit and pass as generated; an agent is ``NAME.yaml`` with the emulator script
``NAME.scenario.yaml`` beside it. Nothing that exists is ever overwritten: every path is
checked before the first file is written, and each file is opened with ``x``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from .. import __version__
from ..exceptions import RealtalkError

__all__ = ["add_arguments", "agent_name", "new_command", "plugin_name", "write_agent", "write_plugin"]

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
_MAX_PLUGIN_NAME = 50  # the tool NAME_greet stays within the 64 characters of a tool name
_MAX_AGENT_NAME = 52  # as the agent schema: transfer_to_NAME is a tool name


@dataclass(frozen=True)
class PluginName:
    """The names of a new plugin: ``realtalk-NAME``, ``realtalk_NAME``, ``NAME_greet``."""

    name: str
    dist: str
    module: str
    tool: str


def plugin_name(text: str) -> PluginName:
    """The plugin's names from NAME (``weather``, ``my-tools``; a ``realtalk-`` prefix is
    dropped); an argparse type: a NAME that cannot become a distribution and a module name
    is an ``ArgumentTypeError``."""
    name = text.removeprefix("realtalk-").removeprefix("realtalk_")
    if not _NAME.fullmatch(name) or len(name) > _MAX_PLUGIN_NAME:
        raise argparse.ArgumentTypeError(
            f"plugin name {text!r} is not valid: use 1-{_MAX_PLUGIN_NAME} ASCII letters, digits,"
            " '-' or '_', starting and ending with a letter or digit (the package is"
            " realtalk_NAME, a Python identifier, with '-' mapped to '_')")
    module = "realtalk_" + name.replace("-", "_")
    assert module.isidentifier()
    return PluginName(name=name, dist="realtalk-" + name, module=module,
                      tool=name.replace("-", "_").lower() + "_greet")


def agent_name(text: str) -> str:
    """An agent's name (it becomes the tool name ``transfer_to_NAME``); an argparse type."""
    if not _NAME.fullmatch(text) or len(text) > _MAX_AGENT_NAME:
        raise argparse.ArgumentTypeError(
            f"agent name {text!r} is not valid: use 1-{_MAX_AGENT_NAME} ASCII letters, digits,"
            " '-' or '_', starting and ending with a letter or digit")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``plugin NAME`` and ``agent NAME``, each with ``--dir``, to ``parser``."""
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    plugin = kinds.add_parser("plugin", help="a plugin distribution realtalk-NAME/ with a tool and tests")
    plugin.add_argument("name", type=plugin_name, metavar="NAME",
                        help="the plugin's name: the distribution is realtalk-NAME, the package realtalk_NAME")
    agent = kinds.add_parser("agent", help="an agent NAME.yaml and its emulator script NAME.scenario.yaml")
    agent.add_argument("name", type=agent_name, metavar="NAME", help="the agent's name")
    for kind in (plugin, agent):
        kind.add_argument("--dir", type=Path, default=Path("."), metavar="PATH",
                          help="where to create it (default: the current directory)")


def new_command(args: argparse.Namespace) -> int:
    """``realtalk new``: write the files, list them, say what to do next."""
    if args.kind == "plugin":
        created = write_plugin(args.name, args.dir)
        root = args.dir / args.name.dist
        target = _shown(root, pip=True)
        next_steps = [f"realtalk install -e {target}   # or: pip install -e {target}",
                      "realtalk plugins",
                      f"cd {_shown(root)} && python -m pytest"]
    else:
        created = write_agent(args.name, args.dir)
        agent_file = _shown(args.dir / f"{args.name}.yaml")
        next_steps = [f"realtalk check {agent_file}",
                      f'realtalk run {agent_file} --emulator --text "Hello"']
    for path in created:
        print(f"created {_shown(path)}")
    print("next:")
    for step in next_steps:
        print(f"  {step}")
    sys.stdout.flush()
    return 0


def _shown(path: Path, *, pip: bool = False) -> str:
    """``path`` as a shell argument; for pip ``./NAME`` rather than ``NAME``, which pip would
    take for a distribution on the index."""
    text = f"./{path}" if pip and not path.is_absolute() and len(path.parts) == 1 else str(path)
    return "'" + text.replace("'", "'\\''") + "'" if re.search(r"[^\w@%+=:,./-]", text) else text


# --- writing -----------------------------------------------------------------------------

_PLUGIN_FILES = {  # template (under templates/plugin/) -> file in the distribution
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "package/__init__.py.tmpl": "{module}/__init__.py",
    "package/tools.py.tmpl": "{module}/tools.py",
    "tests/test_plugin.py.tmpl": "tests/test_{module}.py",
}


def write_plugin(name: PluginName, directory: Path) -> list[Path]:
    """Write the distribution ``directory/realtalk-NAME/``; returns the files written.

    Raises:
        RealtalkError: ``directory/realtalk-NAME`` exists (nothing is written), or a file
            cannot be written.
    """
    root = directory / name.dist
    if root.exists() or root.is_symlink():
        raise RealtalkError(f"{root} already exists; nothing was written (choose another NAME or --dir)")
    values = {"dist": name.dist, "module": name.module, "tool": name.tool, "name": name.name,
              "realtalk_version": __version__}
    contents = {root / target.format(module=name.module): _render(f"plugin/{template}", values)
                for template, target in _PLUGIN_FILES.items()}
    return _write_new(contents)


def write_agent(name: str, directory: Path) -> list[Path]:
    """Write ``directory/NAME.yaml`` and ``directory/NAME.scenario.yaml``; returns them.

    Raises:
        RealtalkError: either file exists (neither is written), or one cannot be written.
    """
    values = {"name": name}
    return _write_new({
        directory / f"{name}.yaml": _render("agent/agent.yaml.tmpl", values),
        directory / f"{name}.scenario.yaml": _render("agent/scenario.yaml.tmpl", values),
    })


def _render(template: str, values: dict[str, str]) -> str:
    resource = files("realtalk").joinpath("templates")
    for part in template.split("/"):
        resource = resource.joinpath(part)
    text = resource.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    assert "{{" not in text, f"templates/{template}: a placeholder is left"
    return text


def _write_new(contents: dict[Path, str]) -> list[Path]:
    """Write each file, refusing before the first write if any of them exists."""
    for path in contents:
        if path.exists() or path.is_symlink():
            raise RealtalkError(f"{path} already exists; nothing was written (choose another NAME or --dir)")
    written: list[Path] = []
    for path, text in contents.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x", encoding="utf-8") as file:  # never over a file made meanwhile
                file.write(text)
        except FileExistsError:
            raise RealtalkError(f"{path} already exists; stopped after writing {len(written)} file(s)") from None
        written.append(path)
    return written
