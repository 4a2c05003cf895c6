"""Links from each asset to the code that declares it, shown on the asset's page in the UI.

An asset built by a factory is declared by data, not by its own function: a source table by its
entry in its `catalog.yaml`, a sync by its entry in `syncs.yaml`, a model by its SQL file (which
dagster-dbt links itself). So each asset links to that entry, and to the Python that builds it.
In a git checkout whose `origin` is on GitHub or GitLab the links point at the commit on that
site; elsewhere they open the local file (the UI's "open in editor").
"""

import re
import subprocess
import warnings
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg

PACKAGE_DIR = Path(__file__).resolve().parent
REPOSITORY_ROOT = PACKAGE_DIR.parent
# git@github.com:org/repo.git, https://github.com/org/repo(.git), ssh://git@gitlab.com/org/repo
_REMOTE = re.compile(r"^(?:https://(?:[^@/]+@)?|ssh://git@|git@)(github\.com|gitlab\.com)[:/](.+?)(?:\.git)?/?$")
_ENTRY = re.compile(r"^\s*-\s+name:\s*['\"]?([A-Za-z0-9_]+)['\"]?\s*$")


@cache
def entry_lines(path: Path) -> dict[str, int]:
    """Line number of each `- name: x` list entry of a YAML file (catalogs and syncs.yaml)."""
    lines: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if match := _ENTRY.match(line):
            lines.setdefault(match.group(1), number)
    return lines


def entry_reference(path: Path, name: str) -> dg.LocalFileCodeReference:
    """The line declaring `name` in `path` (the file's top when it has no such entry)."""
    return dg.LocalFileCodeReference(
        file_path=str(path), line_number=entry_lines(path).get(name, 1), label=f"{path.name}: {name}"
    )


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPOSITORY_ROOT), *args], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _web_url(remote: str) -> tuple[str, str] | None:
    """(https URL, platform) of a GitHub or GitLab remote, in SSH or HTTPS form."""
    match = _REMOTE.match(remote)
    if not match:
        return None
    host, path = match.groups()
    return f"https://{host}/{path}", host.split(".")[0]


@cache
def git_location() -> tuple[str, str, str] | None:
    """(web URL, commit, platform) of this checkout, or None: the links then stay local files."""
    remote = _git("remote", "get-url", "origin")
    site = _web_url(remote) if remote else None
    commit = _git("rev-parse", "HEAD") if site else None
    return (site[0], commit, site[1]) if site and commit else None


def _declaration(spec: dg.AssetSpec, sync_files: dict[str, Path]) -> dg.LocalFileCodeReference | None:
    prefix, name = spec.key.path[0], spec.key.path[-1]
    if (PACKAGE_DIR / "sources" / prefix / "catalog.yaml").is_file():
        return entry_reference(PACKAGE_DIR / "sources" / prefix / "catalog.yaml", name)
    if prefix in sync_files:
        return entry_reference(sync_files[prefix], name)
    return None


def _linker(sync_files: dict[str, Path]) -> Callable[[dg.AssetSpec], dg.AssetSpec]:
    location = git_location()

    def link(spec: dg.AssetSpec) -> dg.AssetSpec:
        existing = spec.metadata.get("dagster/code_references")
        references = list(existing.code_references) if existing else []
        declaration = _declaration(spec, sync_files)
        if declaration and all(getattr(r, "file_path", None) != declaration.file_path for r in references):
            references.insert(0, declaration)
        if not references:
            return spec
        spec = spec.merge_attributes(
            metadata={"dagster/code_references": dg.CodeReferencesMetadataValue(code_references=references)}
        )
        if location is None:
            return spec
        url, commit, platform = location
        (spec,) = dg.link_code_references_to_git(
            [spec],
            git_url=url,
            git_branch=commit,
            file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=REPOSITORY_ROOT, file_anchor_path_in_repository=""
            ),
            platform=platform,
        )
        return spec

    return link


def with_python_links(assets: list[Any]) -> list[Any]:
    """`assets` with a reference to the Python function that builds them (the factory's, for
    factory-built assets)."""
    with warnings.catch_warnings():  # code references are a beta API in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return list(dg.with_source_code_references(assets))


def link_assets_to_code(defs: dg.Definitions, sync_files: dict[str, Path]) -> dg.Definitions:
    """Every asset of `defs` linked to its declaration (catalog entry, sync entry in the file of
    `sync_files[key prefix]`, SQL model) beside its Python, on the git host when there is one."""
    with warnings.catch_warnings():  # preview and beta APIs in Dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        return defs.map_resolved_asset_specs(func=_linker(sync_files))
