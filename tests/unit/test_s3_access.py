"""One table of S3 grants (platform/s3/access.py), two renderings: the identities SeaweedFS
enforces in the local stack (serve.py) and the IAM policy of each identity on AWS
(`make iam-policies`, committed under docs/s3-policies/). Both are parsed back here to
(identity, IAM action, bucket, prefix) and must grant exactly the same, nothing more."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "platform" / "s3"))  # serve.py imports its sibling, as in its image

import access  # noqa: E402
import serve  # noqa: E402

BUCKETS = ["ad-data", "ad-data-bench"]  # the data's and the bench's, as serve.py's main
# SeaweedFS's actions as IAM's, written out again on purpose: a change to access.IAM_ACTIONS
# (a wider grant on AWS) has to change this too
AS_IAM = {
    "Read": {"s3:GetObject"},
    "Write": {"s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"},
    "List": {"s3:ListBucket"},
    "Tagging": {"s3:PutObjectTagging", "s3:DeleteObjectTagging"},
}
SEAWEEDFS_ACTION = re.compile(r"(Read|Write|List|Tagging):([a-z0-9.-]+)(?:/([a-z/-]+/)\*)?")
OBJECTS = re.compile(r"arn:aws:s3:::([a-z0-9.-]+)/([a-z/-]*)\*")
BUCKET = re.compile(r"arn:aws:s3:::([a-z0-9.-]+)")

Grant = tuple[str, str, str, str]  # identity, IAM action, bucket, prefix ("": all of it)


def seaweedfs_grants(monkeypatch: pytest.MonkeyPatch) -> set[Grant]:
    """What serve.py's identities.json grants, each action as what it allows on AWS."""
    for name in access.GRANTS:
        prefix = access.environment_prefix(name)
        monkeypatch.setenv(f"{prefix}AWS_ACCESS_KEY_ID", f"key-of-{name}")
        monkeypatch.setenv(f"{prefix}AWS_SECRET_ACCESS_KEY", f"secret-of-{name}")
    found = set()
    for identity in serve.identities(BUCKETS):
        for action in identity["actions"]:
            parsed = SEAWEEDFS_ACTION.fullmatch(action)
            assert parsed, f"{identity['name']}: an action this test cannot read: {action}"
            kind, bucket, prefix = parsed.groups()
            found |= {(identity["name"], iam, bucket, prefix or "") for iam in AS_IAM[kind]}
    return found


def iam_grants(name: str, policy: dict) -> set[Grant]:
    """What an IAM policy grants, statement by statement; anything it cannot read fails."""
    assert policy["Version"] == "2012-10-17"
    found = set()
    for statement in policy["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        assert isinstance(actions, list) and actions, statement
        assert not any("*" in action or "?" in action for action in actions), statement
        on_objects = OBJECTS.fullmatch(statement["Resource"])
        if on_objects:
            assert "Condition" not in statement and "s3:ListBucket" not in actions
            bucket, prefix = on_objects.groups()
        else:
            on_bucket = BUCKET.fullmatch(statement["Resource"])
            assert on_bucket and actions == ["s3:ListBucket"], statement
            bucket = on_bucket.group(1)
            condition = statement.get("Condition", {"StringLike": {"s3:prefix": "*"}})
            assert list(condition) == ["StringLike"] and list(condition["StringLike"]) == [
                "s3:prefix"
            ]
            prefix = condition["StringLike"]["s3:prefix"].removesuffix("*")
        assert "*" not in prefix and "?" not in prefix, statement
        found |= {(name, action, bucket, prefix) for action in actions}
    return found


def test_seaweedfs_and_iam_grant_every_identity_the_same_actions_on_the_same_prefixes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policies = {name: access.iam_policy(name, BUCKETS) for name in access.GRANTS}
    on_aws = set().union(*(iam_grants(name, policy) for name, policy in policies.items()))
    assert on_aws == seaweedfs_grants(monkeypatch)


def test_each_job_may_touch_only_its_own_prefixes() -> None:
    """The table itself, read as least privilege: a backup is written by the extract alone and
    read by the load; only the archive writes the archive; reconcile and query write nothing."""
    grants = set().union(*(iam_grants(n, access.iam_policy(n, ["b"])) for n in access.GRANTS))
    writers = {(who, prefix) for who, action, _, prefix in grants if action == "s3:PutObject"}
    assert writers == {
        ("operator", ""),
        ("extract", "backup/"),
        ("load", "quarantine/"),
        ("archive", "archive/"),
        ("archive", "set-aside/"),
    }
    readers = {(who, prefix) for who, action, _, prefix in grants if action == "s3:GetObject"}
    assert ("load", "backup/") in readers and ("load", "archive/") not in readers
    assert {prefix for who, prefix in readers if who == "query"} == {"archive/"}
    listers = {(who, prefix) for who, action, _, prefix in grants if action == "s3:ListBucket"}
    assert listers == {(who, "") for who in access.GRANTS}, "Bucket.check lists the bucket"


def test_the_committed_policies_are_the_tables() -> None:
    folder = ROOT / "docs" / "s3-policies"
    committed = {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}
    assert committed == {name: access.iam_policy(name, ["ad-data"]) for name in access.GRANTS}, (
        "run `make iam-policies`"
    )


def test_a_prefix_scoped_list_becomes_an_s3_prefix_condition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No identity lists only a prefix today (every job's check lists the bucket); if one
    does, IAM scopes s3:ListBucket by the s3:prefix condition, as SeaweedFS scopes List."""
    monkeypatch.setitem(access.GRANTS, "query", [(("Read", "List"), "archive/")])
    policy = access.iam_policy("query", ["ad-data"])
    assert iam_grants("query", policy) == {
        ("query", "s3:GetObject", "ad-data", "archive/"),
        ("query", "s3:ListBucket", "ad-data", "archive/"),
    }
    assert access.seaweedfs_actions("query", ["ad-data"]) == [
        "Read:ad-data/archive/*",
        "List:ad-data/archive/*",
    ]
