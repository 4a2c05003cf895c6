"""`harvest.user_projects` follows assignment changes that leave the user record untouched.

Harvest documents no `updated_at` bump of a user when one of their project assignments is
edited, added or archived, and the sandbox makes none: today's partition must find those
changes through `GET /user_assignments?updated_since=...` and re-read the users they name.
"""

from __future__ import annotations

import duckdb
import pytest

from crm_assets.sandbox import SandboxProcess
from crm_assets_tests.conftest import SANDBOX_LIFETIME_SECONDS, harvest_resources, materialize_harvest, today
from crm_assets_tests.harvest_truth import assert_table_matches, expected_rows, table_rows

FAMILY = ["users", "user_projects", "user_project_tasks"]


def _pick_changes(sb: SandboxProcess, day: str) -> dict[str, dict]:
    """Four assignments of four different users, none of them or their user changed today:
    one to edit, one to archive, one archived to restore, and a new user/project pair."""
    users = {u["id"]: u["updated_at"] for u in sb.harvest_records("users", ["id", "updated_at"])}
    with_tasks = {t["project"]["id"] for t in sb.harvest_records("project_tasks", ["project"])}
    assignments = sb.harvest_records("project_users")
    quiet = [a for a in assignments if a["updated_at"][:10] < day and users[a["user"]["id"]][:10] < day
             and a["project"]["id"] in with_tasks]
    taken: set[int] = set()

    def pick(active: bool) -> dict:
        found = next(a for a in quiet if a["is_active"] is active and a["user"]["id"] not in taken)
        taken.add(found["user"]["id"])
        return found

    edit, archive, restore = pick(True), pick(True), pick(False)
    pairs = {(a["user"]["id"], a["project"]["id"]) for a in assignments}
    new_user = next(u for u in sorted(users) if u not in taken and users[u][:10] < day)
    new_project = next(p for p in sorted(with_tasks) if (new_user, p) not in pairs)
    return {"edit": edit, "archive": archive, "restore": restore,
            "add": {"user": {"id": new_user}, "project": {"id": new_project}}}


@pytest.fixture(scope="module")
def assignments_changed(tmp_path_factory):
    with SandboxProcess(seed=13, scale=1.0, lifetime=SANDBOX_LIFETIME_SECONDS) as sb:
        path = str(tmp_path_factory.mktemp("user_projects") / "crm.duckdb")
        resources = harvest_resources(sb, path)
        day = today()
        materialize_harvest(resources, sb.env["HARVEST_START_DATE"], day, selection=FAMILY)
        users_before = sb.harvest_records("users")
        with duckdb.connect(path, read_only=True) as conn:
            before = {t: table_rows(conn, t)[1] for t in FAMILY}
        picked = _pick_changes(sb, day)
        sb.harvest_modify("project_users", ids=[picked["edit"]["id"]])
        sb.harvest_modify("project_users", ids=[picked["archive"]["id"]], set={"is_active": False})
        sb.harvest_modify("project_users", ids=[picked["restore"]["id"]], set={"is_active": True})
        added = sb.call("POST", "/_sandbox/harvest/modify", {
            "stream": "project_users",
            "add": [{"user_id": picked["add"]["user"]["id"], "project_id": picked["add"]["project"]["id"]}],
        })["added"]
        sb.reset_harvest_stats()
        result = materialize_harvest(resources, day, selection=FAMILY)
        requests = sb.harvest_stats()
        rerun = materialize_harvest(resources, day, selection=FAMILY)
        with duckdb.connect(path, read_only=True) as conn:
            after = {t: table_rows(conn, t)[1] for t in FAMILY}
        yield {
            "sandbox": sb, "path": path, "day": day, "picked": picked, "added": added,
            "users_before": users_before, "before": before, "after": after,
            "result": result, "requests": requests, "rerun": rerun,
        }


def _changed_users(picked: dict) -> set[int]:
    return {picked[k]["user"]["id"] for k in ("edit", "archive", "restore", "add")}


def test_the_sandbox_leaves_the_user_record_alone(assignments_changed):
    c = assignments_changed
    assert c["sandbox"].harvest_records("users") == c["users_before"]
    truth = {(item["parent_id"], item["record"]["id"]) for item in c["sandbox"].harvest_records("user_projects")}
    picked = c["picked"]
    assert (picked["edit"]["user"]["id"], picked["edit"]["id"]) in truth
    assert (picked["archive"]["user"]["id"], picked["archive"]["id"]) not in truth
    assert (picked["restore"]["user"]["id"], picked["restore"]["id"]) in truth
    assert (picked["add"]["user"]["id"], c["added"][0]) in truth


@pytest.mark.parametrize("table", ["user_projects", "user_project_tasks"])
def test_todays_partition_brings_the_tables_to_the_api(assignments_changed, table):
    c = assignments_changed
    assert c["result"].success
    with duckdb.connect(c["path"], read_only=True) as conn:
        assert_table_matches(conn, table, expected_rows(c["sandbox"], table))
        assert_table_matches(conn, "users", expected_rows(c["sandbox"], "users"))


def test_only_the_changed_users_rows_change(assignments_changed):
    c, picked = assignments_changed, assignments_changed["picked"]

    def touched(table: str) -> set[int]:
        def rows(side: str) -> set[tuple]:
            return {tuple(sorted(r.items())) for r in c[side][table]}

        return {dict(row)["user_id"] for row in rows("before") ^ rows("after")}

    assert touched("user_projects") == _changed_users(picked)
    # an edited rate leaves the user's projects, hence their task pairs, as they were
    assert touched("user_project_tasks") == _changed_users(picked) - {picked["edit"]["user"]["id"]}
    assert c["after"]["users"] == c["before"]["users"]


def test_requests_grow_with_the_changed_users(assignments_changed):
    c = assignments_changed
    day, sb = c["day"], c["sandbox"]
    # The users the API says changed today, or whose assignments did (the seed may have some).
    changed_today = {u["id"] for u in sb.harvest_records("users", ["id", "updated_at"]) if u["updated_at"][:10] == day}
    changed_today |= {a["user"]["id"] for a in sb.harvest_records("project_users", ["user", "updated_at"])
                      if a["updated_at"][:10] == day}
    assert _changed_users(c["picked"]) <= changed_today
    assert c["requests"]["by_route"] == {
        "/users": 2,  # the day's changes, and one one-record page for the row-count check
        "/user_assignments": 1,  # the day's assignment changes, archived ones included
        "/users/{id}/project_assignments": len(changed_today),
    }
    assert c["requests"]["requests"] == 3 + len(changed_today) <= 3 + 8


def test_a_rerun_writes_nothing(assignments_changed):
    rerun = assignments_changed["rerun"]
    written = {
        e.asset_key.path[-1]: e.step_materialization_data.materialization.metadata["run_rows_written"].value
        for e in rerun.get_asset_materialization_events()
    }
    assert written == {"users": 0, "user_projects": 0, "user_project_tasks": 0}


def test_a_sandbox_edit_changes_only_the_records_it_names(sandbox):
    """No undocumented side effects: a payment, a message, a deleted assignment or an edited user
    leave the invoice, the estimate, the user and the user's assignments as they were."""
    streams = ("invoices", "estimates", "users", "project_users")
    before = {s: {r["id"]: r for r in sandbox.harvest_records(s)} for s in streams}
    payment = sandbox.harvest_records("invoice_payments")[0]
    message = sandbox.harvest_records("estimate_messages")[0]
    sandbox.harvest_modify("invoice_payments", ids=[payment["record"]["id"]])
    sandbox.harvest_modify("estimate_messages", ids=[message["record"]["id"]])
    gone = next(a for a in before["project_users"].values() if a["is_active"])
    sandbox.harvest_delete("project_users", [gone["id"]])
    (edited_user,) = sandbox.harvest_modify("users", ids=[gone["user"]["id"]])
    after = {s: {r["id"]: r for r in sandbox.harvest_records(s)} for s in streams}
    assert after["invoices"] == before["invoices"]
    assert after["estimates"] == before["estimates"]
    assert after["project_users"] == {i: a for i, a in before["project_users"].items() if i != gone["id"]}
    assert {i: u for i, u in after["users"].items() if i != edited_user} == {
        i: u for i, u in before["users"].items() if i != edited_user
    }
    assert after["users"][edited_user]["updated_at"] > before["users"][edited_user]["updated_at"]
