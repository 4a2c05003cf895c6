"""Fixtures of the Salesforce sandbox tests: one sandbox process per module, a clean org per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crm_assets.sandbox import SandboxProcess


@pytest.fixture(scope="module")
def salesforce_sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(seed=3, scale=0.05, lifetime=900) as sb:
        yield sb


@pytest.fixture
def sfsb(salesforce_sandbox: SandboxProcess) -> SandboxProcess:
    """The module's sandbox with an empty org, no faults, an empty request log, batches done at once."""
    salesforce_sandbox.salesforce_reset()
    salesforce_sandbox.salesforce_settings(polls_before_done=0)
    return salesforce_sandbox
